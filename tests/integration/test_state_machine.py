"""A stateful model check of the real write path (atomic Lua script) and the read scripts.

Hypothesis drives RegionShard.write against the real Redis test index with set/add/create
writes, with and without Idempotency-Key, and compares every answer and every board
(top, rank, around) with a plain Python model of the boards:

- a user has a fixed region and is on that region's board and on GLOBAL (GLOBAL users on
  GLOBAL only);
- boards are ordered by score, descending; equal scores by who reached the score first;
  writing the same score again keeps the place, leaving a score and coming back reaches it
  anew;
- a result with |score| > 2^53 - 1 is ``out_of_range`` and changes nothing; ``create`` on
  an existing entry is ``exists`` and changes nothing;
- a key already applied for the user answers ``replay`` with the first answer (score,
  version, rank, metadata) and changes nothing; the same key with another (mode, value,
  metadata) answers ``key_reused``; refused writes are not remembered;
- an applied write sets the entry's metadata to the one it carries (none: ``{}``), and every
  read answers it with the entry;
- versions strictly increase (per user, and across the instance: one clock).

The machine is synchronous: it owns a private event loop, and its shards and ranker are
created inside that loop.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import redis as redis_sync
from hypothesis import HealthCheck, event, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from leaderboard.actors.shard import RegionShard, WriteCommand, WriteResult
from leaderboard.cursor import Cursor
from leaderboard.keys import Keys
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import GLOBAL, MAX_SCORE, Settings

REGIONS = ("GLOBAL", "ASIA", "EU", "NA")
# fixed users and their regions; ids of different shapes (prefixes of each other, dots, dashes)
USERS: dict[str, str] = {
    "ann": "EU",
    "ann.b": "EU",
    "bo": "NA",
    "Cy-9": "NA",
    "dee": "ASIA",
    "e_1": "ASIA",
    "gus": "GLOBAL",
    "zed": "GLOBAL",
}
NAMES = ("", " II")  # a write carries one of two names per user: the last applied one shows
KEYS_POOL = ("k1", "k2", "k3:x")
METAS = ("", '{"car":"red"}', '{"n":[1,2.5],"é":null}')  # compact encodings; '' = none

# values that collide (ties), values near the edge of the range, and anything in between
SMALL = st.integers(-3, 3)
EDGE = st.sampled_from([MAX_SCORE, MAX_SCORE - 1, -MAX_SCORE, -MAX_SCORE + 1, 0])
WIDE = st.integers(-MAX_SCORE, MAX_SCORE)
# a set/create value the API refuses but the script must still refuse on its own
BEYOND = st.sampled_from([MAX_SCORE + 1, -MAX_SCORE - 1, MAX_SCORE + 2, -MAX_SCORE - 2])
SET_VALUES = st.one_of(SMALL, SMALL, SMALL, EDGE, WIDE, BEYOND)
# add deltas stay within the API's bound |delta| <= MAX_SCORE; sums still leave the range
ADD_VALUES = st.one_of(
    SMALL, SMALL, SMALL, st.sampled_from([MAX_SCORE, -MAX_SCORE, MAX_SCORE - 1, 1 - MAX_SCORE]),
    WIDE,
)
MODES = st.sampled_from(["set", "add", "create"])


def value_for(mode: str) -> st.SearchStrategy[int]:
    return ADD_VALUES if mode == "add" else SET_VALUES


@st.composite
def write_commands(draw: st.DrawFn, keyed: bool) -> WriteCommand:
    user = draw(st.sampled_from(sorted(USERS)))
    mode = draw(MODES)
    value = draw(value_for(mode))
    key = draw(st.sampled_from(KEYS_POOL)) if keyed else None
    name = user + draw(st.sampled_from(NAMES))
    meta = draw(st.sampled_from(METAS))
    return WriteCommand(user, name, USERS[user], mode, value, key,  # type: ignore[arg-type]
                        metadata=meta)


@dataclass
class Entry:
    score: int
    reached: int  # model sequence number of the write that reached this score
    name: str
    meta: str = ""


@dataclass
class Model:
    entries: dict[str, Entry] = field(default_factory=dict)
    seq: int = 0
    # (user, key) -> (fingerprint, first answer's score, version, rank)
    idem: dict[tuple[str, str], tuple[tuple[str, int, str], int, int, int]] = field(
        default_factory=dict
    )
    last_version: dict[str, int] = field(default_factory=dict)
    clock: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0))

    def board(self, region: str) -> list[str]:
        users = [u for u in self.entries if region == GLOBAL or USERS[u] == region]
        return sorted(users, key=lambda u: (-self.entries[u].score, self.entries[u].reached))

    def ranked(self, region: str) -> list[dict[str, Any]]:
        return [self.entry(u, i + 1) for i, u in enumerate(self.board(region))]

    def entry(self, user: str, rank: int) -> dict[str, Any]:
        e = self.entries[user]
        return {"rank": rank, "user_id": user, "name": e.name, "region": USERS[user],
                "score": e.score, "metadata": json.loads(e.meta) if e.meta else {}}

    def expect(self, cmd: WriteCommand) -> tuple[str, int | None]:
        """The status a write should get, and the score it would leave (None: unchanged)."""
        if cmd.idempotency_key is not None:
            prev = self.idem.get((cmd.user_id, cmd.idempotency_key))
            if prev is not None:
                same = prev[0] == (cmd.mode, cmd.value, cmd.metadata)
                return ("replay" if same else "key_reused"), None
        cur = self.entries.get(cmd.user_id)
        if cmd.mode == "create" and cur is not None:
            return "exists", None
        if abs(cmd.value) > MAX_SCORE:  # no exact double: refused even as an add delta
            return "out_of_range", None
        new = (cur.score if cur else 0) + cmd.value if cmd.mode == "add" else cmd.value
        if abs(new) > MAX_SCORE:
            return "out_of_range", None
        return "ok", new

    def apply(self, cmd: WriteCommand, new: int) -> None:
        self.seq += 1
        cur = self.entries.get(cmd.user_id)
        reached = cur.reached if cur is not None and cur.score == new else self.seq
        self.entries[cmd.user_id] = Entry(new, reached, cmd.name, cmd.metadata)
        self.events[cmd.region] += 1


class LeaderboardMachine(RuleBasedStateMachine):
    sent = Bundle("sent")  # keyed commands already sent (retried as-is, or reused differently)

    def __init__(self) -> None:
        super().__init__()
        self.settings = Settings()  # type: ignore[call-arg]
        assert self.settings.redis_url.rsplit("/", 1)[-1] not in ("", "0"), "not Redis index 0"
        assert not self.settings.limits().user.enabled, "rate limits must be off in tests"
        self.keys = Keys(self.settings.board)
        flush = redis_sync.Redis.from_url(self.settings.redis_url)
        try:
            flush.flushdb()
            flush.set(self.keys.epoch, "test")  # the board is complete (as in tests/conftest.py)
        finally:
            flush.close()
        self.loop = asyncio.new_event_loop()
        self.shards: dict[str, RegionShard] = {}
        self.ranker: Ranker = self.run(self._make())
        self.model = Model()

    async def _make(self) -> Ranker:
        for region in REGIONS:
            self.shards[region] = RegionShard(self.settings, region)
        return Ranker(self.settings)

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def close() -> None:
            for shard in self.shards.values():
                await shard._redis.aclose()
            await self.ranker._redis.aclose()

        try:
            self.run(close())
        finally:
            self.loop.close()

    # -- writes ---------------------------------------------------------------------------

    def do_write(self, cmd: WriteCommand) -> WriteResult:
        model = self.model
        status, new = model.expect(cmd)
        result: WriteResult = self.run(self.shards[cmd.region].write(cmd))
        note(f"{cmd} -> {result} (model: {status}, {new})")
        assert result.status == status, (cmd, result, status)
        event(f"status {status}")
        if status == "ok":
            assert new is not None
            model.apply(cmd, new)
            if sum(e.score == new for e in model.entries.values()) > 1:
                event("write makes or joins a tie")
            assert result.score == new
            assert result.metadata == cmd.metadata
            expected_rank = model.board(GLOBAL).index(cmd.user_id) + 1
            assert result.rank == expected_rank, (cmd, result, expected_rank)
            assert result.version > model.last_version.get(cmd.user_id, 0)
            assert result.version > model.clock  # one clock per Redis instance
            model.last_version[cmd.user_id] = result.version
            model.clock = result.version
            if cmd.idempotency_key is not None:
                model.idem[(cmd.user_id, cmd.idempotency_key)] = (
                    (cmd.mode, cmd.value, cmd.metadata), result.score, result.version,
                    result.rank,
                )
        elif status == "replay":
            assert cmd.idempotency_key is not None
            fp, score, version, rank = model.idem[(cmd.user_id, cmd.idempotency_key)]
            assert (result.score, result.version, result.rank) == (score, version, rank)
            assert result.metadata == fp[2]
        return result

    @rule(cmd=write_commands(keyed=False))
    def write(self, cmd: WriteCommand) -> None:
        self.do_write(cmd)

    @rule(target=sent, cmd=write_commands(keyed=True))
    def keyed_write(self, cmd: WriteCommand) -> WriteCommand:
        self.do_write(cmd)
        return cmd

    @rule(cmd=sent, rename=st.booleans())
    def retry(self, cmd: WriteCommand, rename: bool) -> None:
        """The same request again (a client retry); the name is not part of the request."""
        if rename:
            other = cmd.user_id + NAMES[1] if cmd.name == cmd.user_id else cmd.user_id
            cmd = WriteCommand(cmd.user_id, other, cmd.region, cmd.mode, cmd.value,
                               cmd.idempotency_key, metadata=cmd.metadata)
        self.do_write(cmd)

    @rule(cmd=sent, change=st.sampled_from(["mode", "value", "both", "metadata"]),
          data=st.data())
    def reuse_key(self, cmd: WriteCommand, change: str, data: st.DataObject) -> None:
        """The same user and key with another request: another mode, value, both, or only
        other metadata."""
        mode: Any = cmd.mode
        value, meta = cmd.value, cmd.metadata
        if change == "metadata":
            meta = data.draw(st.sampled_from([m for m in METAS if m != meta]))
        if change in ("mode", "both"):
            mode = data.draw(st.sampled_from([m for m in ("set", "add", "create") if m != mode]))
        if change in ("value", "both"):
            value = data.draw(value_for(mode).filter(lambda v: v != cmd.value))
        self.do_write(WriteCommand(cmd.user_id, cmd.name, cmd.region, mode, value,
                                   cmd.idempotency_key, metadata=meta))

    @rule(cmd=consumes(sent), data=st.data())
    def same_key_other_user(self, cmd: WriteCommand, data: st.DataObject) -> None:
        """Keys are per user: another user's identical request is a write of its own."""
        user = data.draw(st.sampled_from(sorted(u for u in USERS if u != cmd.user_id)))
        self.do_write(WriteCommand(user, user, USERS[user], cmd.mode, cmd.value,
                                   cmd.idempotency_key, metadata=cmd.metadata))

    @precondition(lambda self: bool(self.model.entries))
    @rule(data=st.data())
    def tie_dance(self, data: st.DataObject) -> None:
        """Move a user onto another user's exact score (a tie), maybe via add, maybe twice."""
        entries = self.model.entries
        target = data.draw(st.sampled_from(sorted(entries)))
        user = data.draw(st.sampled_from(sorted(USERS)))
        score = entries[target].score
        cur = entries[user].score if user in entries else 0
        if data.draw(st.booleans()) and abs(score - cur) <= MAX_SCORE:
            cmd = WriteCommand(user, user, USERS[user], "add", score - cur)
        else:
            cmd = WriteCommand(user, user, USERS[user], "set", score)
        self.do_write(cmd)
        if data.draw(st.booleans()):
            self.do_write(cmd if cmd.mode == "set" else
                          WriteCommand(user, user, USERS[user], "add", 0))

    # -- reads ----------------------------------------------------------------------------

    @invariant()
    def boards_match(self) -> None:
        for region in REGIONS:
            expected = self.model.ranked(region)
            top = self.run(self.ranker.top(region, 1000))
            assert top == {"region": region, "entries": expected, "total": len(expected),
                           "next": None}, region

    @rule(region=st.sampled_from(REGIONS), limit=st.integers(1, 10))
    def top_limit(self, region: str, limit: int) -> None:
        """Pages by cursor walk the whole board in rank order, each entry once."""
        expected = self.model.ranked(region)
        top = self.run(self.ranker.top(region, limit))
        pages, seen = 1, list(top["entries"])
        while top["next"] is not None:
            assert len(top["entries"]) == limit and top["total"] == len(expected)
            cursor = Cursor.decode(top["next"])
            top = self.run(self.ranker.top(region, limit, f"after:{cursor.sort_key}:"
                                                          f"{cursor.member}"))
            seen += top["entries"]
            pages += 1
        assert seen == expected and pages == max(1, -(-len(expected) // limit))

    @rule(region=st.sampled_from(REGIONS), first=st.integers(1, 12), limit=st.integers(1, 4))
    def top_from_rank(self, region: str, first: int, limit: int) -> None:
        expected = self.model.ranked(region)
        top = self.run(self.ranker.top(region, limit, f"rank:{first - 1}"))
        assert top["entries"] == expected[first - 1:first - 1 + limit]

    @rule(region=st.sampled_from(REGIONS), user=st.sampled_from(sorted(USERS)),
          span=st.integers(1, 5))
    def rank_and_around(self, region: str, user: str, span: int) -> None:
        board = self.model.board(region)
        got_rank = self.run(self.ranker.rank(region, user))
        got_around = self.run(self.ranker.around(region, user, span))
        if user not in board:
            assert got_rank is None and got_around is None, (region, user)
            return
        i = board.index(user)
        ranked = self.model.ranked(region)
        total = len(ranked)
        # the gap: one more than the entry above (who reached that score first keeps the tie)
        gap = None if i == 0 else ranked[i - 1]["score"] + 1 - ranked[i]["score"]
        if gap is not None and ranked[i]["score"] + gap > MAX_SCORE:
            gap = None
        assert got_rank == {**self.model.entry(user, i + 1), "total": total,
                            "percentile": int(10_000 * (total - i - 1) / total) / 100,
                            "gap_to_next": gap}
        window = ranked[max(0, i - span): i + span + 1]
        assert got_around == {
            "region": region,
            "self": ranked[i],
            "around": [e for e in window if e["user_id"] != user],
            "total": total,
        }

    @invariant()
    def one_event_per_applied_write(self) -> None:
        xlen = self.run(self._xlens())
        assert xlen == self.model.events

    async def _xlens(self) -> dict[str, int]:
        redis = self.ranker._redis
        return {r: int(await redis.xlen(self.keys.stream(r))) for r in REGIONS}

    @initialize()
    def empty_boards(self) -> None:
        for region in REGIONS:
            assert self.run(self.ranker.top(region, 10))["total"] == 0


LeaderboardMachine.TestCase.settings = hsettings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLeaderboardStateMachine = LeaderboardMachine.TestCase
