"""The read cache's invalidation rule against a model board: every answer still cached after
any sequence of writes equals a fresh read, and writes that cannot change an answer leave it."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from pydantic_core import to_json

from leaderboard.boards import DEFAULT, Board
from leaderboard.changes import FLUSH, Change, message, parse
from leaderboard.serve.answers import gap_to_next, percentile
from leaderboard.serve.intervals import IntervalIndex
from leaderboard.serve.ranking import ReadRequest
from leaderboard.serve.view_cache import ViewCache

MAX_VERSION = 2**53 - 1


@dataclass
class ModelBoard:
    """One region's board as the ZSET orders it: sort key, then whoever reached it first."""

    asc: bool = False
    entries: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> score, reached
    clock: int = 0

    def sort_key(self, score: int) -> int:
        return -score if self.asc else score

    def ordered(self) -> list[tuple[str, int]]:
        def position(item: tuple[str, tuple[int, int]]) -> tuple[int, str]:
            user, (score, reached) = item
            return self.sort_key(score), f"{MAX_VERSION - reached:016d}{user}"

        return [(u, s) for u, (s, _) in sorted(self.entries.items(), key=position, reverse=True)]

    def write(self, user: str, score: int) -> Change:
        """A set, as the write script does it; the change it announces."""
        self.clock += 1
        old = self.entries.get(user)
        reached = old[1] if old is not None and old[0] == score else self.clock
        self.entries[user] = (score, reached)
        return Change("default", 1, ("EU",), None if old is None else self.sort_key(old[0]),
                      self.sort_key(score), user)

    def answer(self, request: ReadRequest) -> bytes | None:
        rows = self.ordered()
        ranked = [{"rank": i + 1, "user_id": u, "score": s} for i, (u, s) in enumerate(rows)]
        total = len(rows)
        if request.kind == "top":
            first = int(request.start[5:]) if request.start else 0
            return to_json({"entries": ranked[first:first + request.arg], "total": total})
        mine = next((i for i, (u, _) in enumerate(rows) if u == request.user_id), None)
        if mine is None:
            return None
        if request.kind == "rank":
            above = None if mine == 0 else str(self.sort_key(rows[mine - 1][1]))
            return to_json({**ranked[mine], "total": total,
                            "percentile": percentile(mine + 1, total),
                            "gap_to_next": gap_to_next(rows[mine][1], above,
                                                       "asc" if self.asc else "desc")})
        span = request.arg
        shown = ranked[max(0, mine - span):mine + span + 1]
        return to_json({"self": ranked[mine], "around": [e for e in shown if e != ranked[mine]],
                        "total": total})


def requests(users: list[str]) -> list[ReadRequest]:
    out = [ReadRequest("top", "EU", n, "") for n in (1, 3, 10)]
    out.append(ReadRequest("top", "EU", 3, "", start="rank:4"))
    for user in users[:8]:
        out += [ReadRequest("rank", "EU", 0, user), ReadRequest("around", "EU", 2, user)]
    return out


def board_of(model: ModelBoard) -> Board:
    return replace(DEFAULT, order="asc") if model.asc else DEFAULT


def fill_all(cache: ViewCache, model: ModelBoard, reads: list[ReadRequest]) -> None:
    for request in reads:
        key = (request, "")
        if cache.get(key) is None:
            cache.fill(cache.ticket(key), key, model.answer(request), board_of(model))


@pytest.mark.parametrize("asc", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_every_cached_answer_equals_a_fresh_read_after_any_writes(seed: int, asc: bool) -> None:
    rng = random.Random(seed)
    users = [f"u{i:02d}" for i in range(rng.choice([3, 12, 30]))]
    model = ModelBoard(asc=asc)
    for user in users[: len(users) // 2]:
        model.write(user, rng.randrange(0, 20))
    cache, reads = ViewCache(10_000), requests(users)
    left = 0
    for _ in range(60):
        fill_all(cache, model, reads)
        before = len(cache)
        cache.apply(model.write(rng.choice(users), rng.randrange(0, 20)))  # few values: ties
        left += len(cache) * (before > 0)
        for request in reads:
            view = cache.get((request, ""))
            if view is not None:
                assert view.body == model.answer(request), (request, model.ordered())
    assert left > 0  # writes that could not change an answer left it


@pytest.mark.parametrize("seed", range(40))
def test_a_fill_is_kept_only_if_nothing_since_its_ticket_could_change_it(seed: int) -> None:
    """The answer is computed at some moment between the ticket and the fill."""
    rng = random.Random(seed)
    users = [f"u{i:02d}" for i in range(12)]
    model = ModelBoard()
    for user in users:
        model.write(user, rng.randrange(0, 50))
    cache, kept = ViewCache(10_000), 0
    for request in requests(users) * 3:
        key = (request, "")
        ticket = cache.ticket(key)
        writes = rng.randrange(0, 3)
        answered_after = rng.randrange(0, writes + 1)
        body = model.answer(request)
        for i in range(writes):
            if i == answered_after:
                body = model.answer(request)
            cache.apply(model.write(rng.choice(users), rng.randrange(0, 50)))
        if writes and answered_after == writes:
            body = model.answer(request)
        if cache.fill(ticket, key, body, DEFAULT):
            kept += 1
            assert body == model.answer(request)
        cache.flush()
    assert kept > 0


@pytest.mark.parametrize("seed", range(30))
def test_fills_of_overlapping_misses_are_exact_and_the_log_stays_short(seed: int) -> None:
    """Many misses out at once, each answered at some moment after its ticket and filled in
    any order, while writes go on: whatever is kept equals a fresh read, and the log holds
    only what the oldest miss still out needs."""
    rng = random.Random(seed)
    users = [f"u{i:02d}" for i in range(15)]
    model = ModelBoard()
    for user in users:
        model.write(user, rng.randrange(0, 40))
    cache, reads = ViewCache(10_000), requests(users)
    out: list[tuple[Any, Any, bytes | None]] = []  # ticket, key, answer (None: not yet read)
    kept = 0
    for step in range(400):
        action = rng.random()
        if action < 0.3:
            key = (rng.choice(reads), "")
            out.append((cache.ticket(key), key, None))
        elif action < 0.55:
            cache.apply(model.write(rng.choice(users), rng.randrange(0, 40)))
        elif action < 0.8 and out:
            i = rng.randrange(len(out))
            ticket, key, answer = out[i]
            if answer is None:  # the ranking replica reads it now
                out[i] = (ticket, key, model.answer(key[0]))
        elif out:
            ticket, key, answer = out.pop(rng.randrange(len(out)))
            if answer is None:
                answer = model.answer(key[0])
            if cache.fill(ticket, key, answer, DEFAULT):
                kept += 1
                assert answer == model.answer(key[0]), (step, key)
        bucket = cache._buckets.get(("default", "EU"))
        if bucket is not None and bucket.pending:
            assert all(seq > min(bucket.pending) for seq, _ in bucket.log)
        elif bucket is not None:
            assert not bucket.log
    assert kept > 0


def test_a_top_page_is_left_by_writes_below_it_and_dropped_by_writes_into_it() -> None:
    model, cache = ModelBoard(), ViewCache(100)
    for i in range(20):
        model.write(f"u{i}", 100 + i)  # u19 first with 119 ... u0 with 100
    top = ReadRequest("top", "EU", 5, "")  # 119 .. 115
    fill_all(cache, model, [top])
    cache.apply(model.write("u3", 114))  # below the page
    cache.apply(model.write("u0", 50))
    assert cache.get((top, "")) is not None
    cache.apply(model.write("u2", 115))  # ties the last entry: may be shown, dropped
    assert cache.get((top, "")) is None
    fill_all(cache, model, [top])
    cache.apply(model.write("newcomer", 1))  # a new entry: the total changed
    assert cache.get((top, "")) is None


def test_answers_of_another_season_and_flushes_drop_everything() -> None:
    model, cache = ModelBoard(), ViewCache(100)
    model.write("a", 5)
    reads = requests(["a"])
    fill_all(cache, model, reads)
    assert len(cache) == len(reads)
    cache.apply(Change("default", 2, ("EU",), 1, 1, "zz"))
    assert len(cache) == 0
    fill_all(cache, model, reads)
    ticket = cache.ticket((reads[0], ""))
    cache.flush()
    assert len(cache) == 0 and not cache.fill(ticket, (reads[0], ""), b'{"entries":[]}', DEFAULT)


def test_other_boards_and_regions_are_not_touched() -> None:
    model, cache = ModelBoard(), ViewCache(100)
    model.write("a", 5)
    reads = requests(["a"])
    fill_all(cache, model, reads)
    cache.apply(Change("other", 1, ("EU", "GLOBAL"), None, 9, "b"))
    cache.apply(Change("default", 1, ("NA", "GLOBAL"), None, 9, "b"))
    assert len(cache) == len(reads)
    cache.drop_boards()  # a board was created or deleted: default's answers stay
    assert len(cache) == len(reads)


def test_the_oldest_answers_go_first_when_full() -> None:
    model, cache = ModelBoard(), ViewCache(3)
    model.write("a", 5)
    reads = [ReadRequest("top", "EU", n, "") for n in (1, 2, 3, 4)]
    fill_all(cache, model, reads)
    assert len(cache) == 3 and cache.get((reads[0], "")) is None
    assert cache.get((reads[3], "")) is not None


def test_what_is_not_kept() -> None:
    cache = ViewCache(100)
    assert not cache.cacheable(ReadRequest("top", "EU", 5, "", start="after:5:x"))
    assert not cache.cacheable(ReadRequest("top", "EU", 5, "", board="b", season=3))
    assert not cache.cacheable(ReadRequest("ranks", "EU", 0, "a,b"))
    assert not ViewCache(0).cacheable(ReadRequest("top", "EU", 5, ""))
    rank = ReadRequest("rank", "EU", 0, "a")
    for answer in (None, b'{"rank":1,"score":3,"warming":true}', ValueError("refused")):
        assert not cache.fill(cache.ticket((rank, "")), (rank, ""), answer, DEFAULT)
    assert len(cache) == 0 and cache._buckets == {}  # nothing pending is left behind


def test_a_live_season_is_not_served_in_its_last_second() -> None:
    now = time.time_ns() // 1000
    request = ReadRequest("top", "EU", 5, "", board="b")
    body = b'{"entries":[],"total":0,"season":1}'
    cache = ViewCache(10)
    young = Board("b", "b", "desc", "set", 3600, now - 10_000_000, "g1")
    assert cache.fill(cache.ticket((request, "g1")), (request, "g1"), body, young)
    assert cache.get((request, "g1")) is not None
    ending = Board("b", "b", "desc", "set", 3600, now - 3_599_500_000, "g2")
    assert not cache.fill(cache.ticket((request, "g2")), (request, "g2"), body, ending)
    cache._buckets[("b", "EU")].views[(request, "g1")].expires_us = now  # the season ran out
    assert cache.get((request, "g1")) is None


def test_messages_round_trip() -> None:
    change = Change("b-1", 3, ("EU", "GLOBAL"), None, -42, "user.1")
    assert parse(message(change)) == change and parse(message(change).encode()) == change
    assert parse(FLUSH) is None and change.resized
    with pytest.raises(ValueError):
        parse(b"default/EU")  # the old announcement


@pytest.mark.parametrize("seed", range(20))
def test_the_interval_index_finds_exactly_the_overlapping_intervals(seed: int) -> None:
    rng = random.Random(seed)
    index: IntervalIndex[int] = IntervalIndex()
    spans: dict[int, tuple[Any, Any]] = {}
    for key in range(300):
        lo = rng.choice([-float("inf"), rng.randrange(-1000, 1000)])
        hi = rng.choice([float("inf"), lo + rng.choice([0, 1, 5, 100, 5000])]) if lo != -float(
            "inf") else rng.randrange(-1000, 1000)
        index.add(key, lo, hi)
        spans[key] = (lo, hi)
    for key in rng.sample(range(300), 100):
        index.remove(key)
        del spans[key]
    assert len(index) == len(spans)
    for _ in range(200):
        a = rng.randrange(-1200, 1200)
        b = a + rng.choice([0, 3, 50, 3000])
        assert sorted(index.overlapping(a, b)) == sorted(
            k for k, (lo, hi) in spans.items() if lo <= b and hi >= a)
