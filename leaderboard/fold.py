"""GLOBAL across Redis instances: writes of regions on other instances folded into GLOBAL.

The shard of a region on another instance than GLOBAL folds its writes right after its own
script, in the same micro-batch (the fast path, which also gives the write its GLOBAL rank).
The writers fold every event of such a shard's stream again before acknowledging it (the safety
net), so an event leaves its stream only once Postgres *and* GLOBAL hold it. Both go through one
version-guarded script, so a second application is a no-op.

Every board folds: each event goes to its board's season (prefix, sort key by the board's
order), and one call may mix boards (``Targets``). GLOBAL's registry decides whether a board's
events still fold (docs/boards.md, "Stream events and the writers").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from leaderboard.apply_scripts import FOLD_GLOBAL, FOLD_LAG_BUCKETS_US
from leaderboard.boards import DEFAULT, Board
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.pipeline.events import StoredEvent
from leaderboard.targets import Targets

# what FOLD_GLOBAL answers instead of a 0-based rank
WARMING = -1  # folded, but GLOBAL is warming: no rank yet
DROPPED = -2  # not folded: the board was deleted or created again, or the season freed there
DEFERRED = -3  # not folded: GLOBAL's instance does not know the board (yet); fold it again later

AsyncBoardLookup = Callable[[str], Awaitable[Board | None]]


class FoldEvent(NamedTuple):
    """One write to fold: a fold row (its first seven fields), its board and season."""

    user_id: str
    name: str
    region: str
    score: int
    version: int
    reached: int
    ts: int
    board: Board = DEFAULT
    season: int = 1
    metadata: str = ""  # compact JSON; '' = none


class FoldDeferred(Exception):
    """GLOBAL's instance lacks a board the writers' events belong to: keep them, fold later."""


async def _no_boards(board_id: str) -> Board | None:
    return None


class GlobalFold:
    """Applies events to GLOBAL on GLOBAL's instance and returns the users' GLOBAL ranks.

    ``boards`` looks up the boards of stream events (the writers' board cache); without it only
    board default's events are folded by ``apply_stored``.
    """

    def __init__(self, redis: aioredis.Redis, keys: Keys,
                 boards: AsyncBoardLookup = _no_boards) -> None:
        self._keys = keys
        self._boards = boards
        self._script = redis.register_script(FOLD_GLOBAL)

    async def apply(self, rows: Sequence[FoldEvent], source: str) -> list[int]:
        """Fold the rows (in order; boards and seasons mixed); per row the 0-based GLOBAL rank
        afterwards, or ``WARMING``, ``DROPPED``, ``DEFERRED``."""
        if not rows:
            return []
        k = self._keys
        targets = Targets(k)
        events: list[str | int] = []
        for row in rows:
            events += [targets.index(row.board, row.season), *row[:7], row.metadata]
        reply = await self._script(
            keys=[k.clock, k.epoch, k.warming, k.fold_stats, k.boards],
            args=[source, *targets.args(), *events])
        return [WARMING if r is None else int(r) for r in reply]

    async def apply_stored(self, events: Sequence[StoredEvent], source: str) -> int:
        """Fold events read from a stream; returns how many were folded or already there.

        An event of a board the cache no longer has (deleted: its keys are purged once the
        streams drained) is left out. Raises ``FoldDeferred`` when GLOBAL's instance does not
        know one of the boards yet, so the caller keeps the events and tries again.
        """
        boards: dict[str, Board | None] = {DEFAULT_BOARD: DEFAULT}
        rows = []
        for e in events:
            if e.board not in boards:
                boards[e.board] = await self._boards(e.board)
            board = boards[e.board]
            if board is not None:
                rows.append(FoldEvent(*e[:7], board, e.season, e.metadata))
        ranks = await self.apply(rows, source)
        if DEFERRED in ranks:
            raise FoldDeferred("GLOBAL's instance does not know a board of these events yet")
        return sum(1 for r in ranks if r != DROPPED)


@dataclass(frozen=True)
class FoldLag:
    """The fold-lag histogram on GLOBAL's instance: how long GLOBAL missed a remote write."""

    counts: dict[str, int]  # bucket upper bound ('<=1ms' ...) -> folded events
    max_ms: float
    last_ms: float
    applied_fast: int
    applied_net: int

    @classmethod
    def from_hash(cls, h: Mapping[Any, Any]) -> FoldLag:
        bounds: list[int | str] = [*FOLD_LAG_BUCKETS_US, "inf"]
        counts = {label(b): int(h.get(f"le_{b}", 0)) for b in bounds}
        return cls(counts, int(h.get("max_us", 0)) / 1000, int(h.get("last_us", 0)) / 1000,
                   int(h.get("applied_fast", 0)), int(h.get("applied_net", 0)))

    def cumulative(self) -> list[tuple[str, int]]:
        """(``le`` in seconds, as Prometheus buckets write it, events folded with at most that
        lag) per bucket, the last ``+Inf``: the histogram in Prometheus's cumulative form."""
        les = [f"{b / 1e6:g}" for b in FOLD_LAG_BUCKETS_US] + ["+Inf"]
        running, out = 0, []
        for le, n in zip(les, self.counts.values(), strict=True):
            running += n
            out.append((le, running))
        return out

    def as_dict(self) -> dict[str, object]:
        return {"lag_ms_histogram": self.counts, "max_lag_ms": self.max_ms,
                "last_lag_ms": self.last_ms, "folded_fast": self.applied_fast,
                "folded_by_writers": self.applied_net}


def label(bound_us: int | str) -> str:
    """A histogram bucket's label: '<=1ms', '<=10s', '>10s'."""
    if bound_us == "inf":
        return f">{FOLD_LAG_BUCKETS_US[-1] // 1_000_000}s"
    us = int(bound_us)
    return f"<={us // 1000}ms" if us < 1_000_000 else f"<={us // 1_000_000}s"


async def oldest_event_ages(redis: aioredis.Redis, keys: Keys, shards: list[str]) -> dict[str, int]:
    """Per shard, the age (ms, by this Redis's clock) of its oldest event still on its stream.

    For a shard on another instance than GLOBAL's this bounds GLOBAL's staleness: an event leaves
    the stream only after the writers folded it into GLOBAL (0: nothing waiting).
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for shard in shards:
            pipe.xrange(keys.stream(shard), count=1)
        now, *firsts = await pipe.execute()
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    ages: dict[str, int] = {}
    for shard, first in zip(shards, firsts, strict=True):
        ages[shard] = max(0, now_ms - int(first[0][0].split("-")[0])) if first else 0
    return ages


@dataclass
class InstanceHealth:
    """One Redis instance as /health sees it."""

    state: str
    backlog: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    warming: bool = False
    oldest: dict[str, int] = field(default_factory=dict)
