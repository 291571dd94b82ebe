"""GLOBAL across Redis instances: writes of regions on other instances folded into GLOBAL.

The shard of a region on another instance than GLOBAL folds its writes right after its own
script, in the same micro-batch (the fast path, which also gives the write its GLOBAL rank).
The writers fold every event of such a shard's stream again before acknowledging it (the safety
net), so an event leaves its stream only once Postgres *and* GLOBAL hold it. Both go through one
version-guarded script, so a second application is a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from leaderboard.keys import FOLD_GLOBAL, FOLD_LAG_BUCKETS_US, Keys
from leaderboard.settings import GLOBAL

# user_id, name, region, score, version, reached, ts (a StoredEvent's further fields are unused)
FoldRow = Sequence[str | int]


class GlobalFold:
    """Applies events to GLOBAL on GLOBAL's instance and returns the users' GLOBAL ranks."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._script = redis.register_script(FOLD_GLOBAL)

    async def apply(self, rows: list[FoldRow], source: str) -> list[int]:
        """Fold the rows (in order); per row the 0-based GLOBAL rank afterwards, -1 if unknown."""
        if not rows:
            return []
        k = self._keys
        args: list[str | int] = [k.prefix, source]
        for row in rows:
            args.extend(row[:7])
        reply = await self._script(
            keys=[k.board(GLOBAL), k.clock, k.epoch, k.warming, k.fold_stats], args=args)
        return [-1 if r is None else int(r) for r in reply]


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
