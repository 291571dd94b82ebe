"""The gateway's cache of hot read answers, kept exact by the writes' own announcements.

A cached answer (top-N page, rank, around-me of a board's live season) is the encoded body the
ranking replica sent, with the interval of sort keys it depends on: ``[lo, hi]`` from its last
to its first entry (a page shorter than its limit reaches down to -inf; a rank reaches up to
the entry just above it). A write of user u moving from sort key ``old`` to ``new`` on that
board leaves the answer as it is when both lie strictly below ``lo`` (u is and stays below every
entry shown) or both strictly above ``hi`` (u is and stays above them: their ranks are the
same); otherwise it drops the answer. A new entry changes every total, and a write of another
season means the live season moved on: both drop every answer of the board's region.

Answers are filled only if nothing that could change them was announced between the read's
barrier and the fill (``Ticket``). See docs/performance.md, "Reads from the gateway's cache".
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic_core import from_json

from leaderboard.boards import Board
from leaderboard.changes import Change
from leaderboard.keys import DEFAULT_BOARD
from leaderboard.serve.intervals import End, IntervalIndex
from leaderboard.serve.ranking import ReadRequest

INF = float("inf")
SEASON_MARGIN_US = 1_000_000  # a live season's answers are not served in its last second

CacheKey = tuple[ReadRequest, str]  # the read, and the board's generation


@dataclass(slots=True)
class View:
    body: bytes
    expires_us: int  # 0: never (board default; boards without season ends)


@dataclass
class Bucket:
    """The cached answers of one board's region, all of its live season ``season``."""

    season: int = 0
    views: dict[CacheKey, View] = field(default_factory=dict)
    index: IntervalIndex[CacheKey] = field(default_factory=IntervalIndex)
    seq: int = 0  # changes announced for it
    # the changes a pending fill must be checked against (those after its ticket), and the
    # tickets out: seq at the ticket -> how many
    log: deque[tuple[int, Change]] = field(default_factory=deque)
    pending: dict[int, int] = field(default_factory=dict)
    dead: bool = False  # dropped as a whole: pending fills are void


class Ticket(NamedTuple):
    """A miss on its way to the ranking replica: where and when its answer may be kept."""

    bucket: Bucket
    seq: int
    epoch: int


class Bounds(NamedTuple):
    lo: End
    hi: End
    season: int


class ViewCache:
    """At most ``size`` answers (0: no cache), oldest dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.epoch = 0
        self._buckets: dict[tuple[str, str], Bucket] = {}
        self._order: dict[CacheKey, Bucket] = {}  # insertion order: what to drop first
        self.hits = self.misses = self.fills = self.dropped = 0

    def __len__(self) -> int:
        return len(self._order)

    def stats(self) -> dict[str, int]:
        return {"views": len(self), "hits": self.hits, "misses": self.misses,
                "fills": self.fills, "dropped": self.dropped, "resets": self.epoch}

    def cacheable(self, request: ReadRequest) -> bool:
        """Live reads of the kinds the cache keeps: pages from a rank, ranks, around-me."""
        return self.size > 0 and request.season == 0 and (
            request.kind in ("rank", "around")
            or (request.kind == "top" and not request.start.startswith("after:")))

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: CacheKey) -> View | None:
        """The answer held for ``key`` (only a barrier makes it one to serve), and counted."""
        view = self.peek(key)
        if view is None:
            self.misses += 1
        else:
            self.hits += 1
        return view

    def peek(self, key: CacheKey) -> View | None:
        """The answer held for ``key``, if any, not counted."""
        bucket = self._buckets.get(_bucket_key(key[0]))
        if bucket is None:
            return None
        view = bucket.views.get(key)
        if view is not None and view.expires_us and time.time_ns() // 1000 >= view.expires_us:
            self._remove(bucket, key)
            return None
        return view

    def ticket(self, key: CacheKey) -> Ticket:
        """Before the miss is sent: changes announced from here on are checked at the fill."""
        bucket = self._buckets.setdefault(_bucket_key(key[0]), Bucket())
        bucket.pending[bucket.seq] = bucket.pending.get(bucket.seq, 0) + 1
        return Ticket(bucket, bucket.seq, self.epoch)

    def fill(self, ticket: Ticket, key: CacheKey, answer: Any, board: Board) -> bool:
        """Keep ``answer`` (a body) unless something announced since the ticket may have
        changed it; anything else (not on the board, a refusal) only ends the ticket."""
        bucket = ticket.bucket
        kept = False
        if isinstance(answer, bytes) and not bucket.dead and ticket.epoch == self.epoch:
            bounds = bounds_of(key[0], answer, board)
            if bounds is not None and not _changed_since(bucket.log, ticket.seq, bounds):
                kept = self._store(bucket, key, answer, bounds, board)
        _end_ticket(bucket, ticket.seq)
        if not bucket.pending and not bucket.views and not bucket.dead:
            self._buckets.pop(_bucket_key(key[0]), None)
        return kept

    def _store(self, bucket: Bucket, key: CacheKey, body: bytes, bounds: Bounds,
               board: Board) -> bool:
        if bucket.views and bounds.season != bucket.season:
            if bounds.season < bucket.season:
                return False  # read just before the season moved on
            self._clear(bucket)  # the live season moved on: the older answers go
        bucket.season = bounds.season
        end = board.schedule.bounds(bounds.season)[1]
        expires = 0 if end is None else end - SEASON_MARGIN_US
        if expires and time.time_ns() // 1000 >= expires:
            return False
        bucket.views[key] = View(body, expires)
        bucket.index.add(key, bounds.lo, bounds.hi)
        self._order[key] = bucket
        self.fills += 1
        while len(self._order) > self.size:
            oldest = next(iter(self._order))
            self._remove(self._order[oldest], oldest)
        return True

    # -- what the writes announce --------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """One write: drop the answers it may have changed."""
        for region in change.boards:
            bucket = self._buckets.get((change.board, region))
            if bucket is None:
                continue
            bucket.seq += 1
            if bucket.pending:
                bucket.log.append((bucket.seq, change))
            if not bucket.views:
                continue
            if change.season != bucket.season or change.resized:
                self._clear(bucket)
                continue
            assert change.old is not None and change.new is not None
            for key in bucket.index.overlapping(min(change.old, change.new),
                                                max(change.old, change.new)):
                self._remove(bucket, key)

    def flush(self) -> None:
        """Anything may have changed (a rename, an erasure, a rebuild; the subscription lost)."""
        self.epoch += 1
        for bucket in self._buckets.values():
            bucket.dead = True
        self.dropped += len(self._order)
        self._buckets.clear()
        self._order.clear()

    def drop_boards(self) -> None:
        """A board was created or deleted: every board's answers but default's go."""
        for bucket_key in [k for k in self._buckets if k[0] != DEFAULT_BOARD]:
            bucket = self._buckets.pop(bucket_key)
            bucket.dead = True
            self._clear(bucket)

    def _clear(self, bucket: Bucket) -> None:
        for key in list(bucket.views):
            self._remove(bucket, key)

    def _remove(self, bucket: Bucket, key: CacheKey) -> None:
        if bucket.views.pop(key, None) is not None:
            bucket.index.remove(key)
            self._order.pop(key, None)
            self.dropped += 1


def _bucket_key(request: ReadRequest) -> tuple[str, str]:
    return request.board or DEFAULT_BOARD, request.region


def _changed_since(log: deque[tuple[int, Change]], seq: int, bounds: Bounds) -> bool:
    """Whether a change logged after ``seq`` may change an answer with these bounds."""
    for logged, change in reversed(log):
        if logged <= seq:
            return False
        if _changes(bounds, change):
            return True
    return False


def _end_ticket(bucket: Bucket, seq: int) -> None:
    """One ticket less; the log keeps only what the oldest ticket still out needs."""
    left = bucket.pending[seq] - 1
    if left:
        bucket.pending[seq] = left
    else:
        del bucket.pending[seq]
    oldest = min(bucket.pending, default=None)
    if oldest is None:
        bucket.log.clear()
        return
    while bucket.log and bucket.log[0][0] <= oldest:
        bucket.log.popleft()


def _changes(bounds: Bounds, change: Change) -> bool:
    """Whether ``change`` may change an answer with these bounds."""
    if change.season != bounds.season or change.old is None or change.new is None:
        return True
    return bounds.lo <= max(change.old, change.new) and bounds.hi >= min(change.old, change.new)


def bounds_of(request: ReadRequest, body: bytes | None, board: Board) -> Bounds | None:
    """The sort keys an answer depends on; None when it is not kept: a user not on the board
    (rare in hot reads), an answer from Postgres while the board is rebuilt (``warming``)."""
    if body is None:
        return None
    data = from_json(body)
    if data.get("warming"):
        return None
    season = int(data.get("season", 1))
    asc = board.order == "asc"

    def key(entry: dict[str, Any]) -> int:
        return -int(entry["score"]) if asc else int(entry["score"])

    if request.kind == "top":
        entries = data["entries"]
        if not entries:
            return Bounds(-INF, INF, season)
        lo = key(entries[-1]) if len(entries) == request.arg else -INF
        return Bounds(lo, key(entries[0]), season)
    if request.kind == "rank":
        gap = data.get("gap_to_next")
        mine = key(data)
        # the entry just above: gap_to_next moves the user one past its sort key
        above = INF if gap is None else mine + (-gap if asc else gap) - 1
        return Bounds(mine, above, season)
    shown = [key(e) for e in (data["self"], *data["around"])]
    return Bounds(min(shown), max(shown), season)
