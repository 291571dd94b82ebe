"""What a shard actor reports every ``GAUGE_PERIOD_S``: its stream's backlog and oldest event,
its dead letters, whether its instance is warming, its rebuild; the shard ``GLOBAL``, when there
are several Redis instances, also reports GLOBAL's fold lag (kept on GLOBAL's instance)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis

from leaderboard.fold import FoldLag
from leaderboard.keys import Keys
from leaderboard.metrics.record import GAUGE_PERIOD_S, FoldGauges, ShardGauges, ShardState
from leaderboard.recovery import RebuildProgress

log = logging.getLogger(__name__)


async def read_state(redis: aioredis.Redis, keys: Keys, shard: str,
                     progress: RebuildProgress) -> ShardState:
    """The shard's state in one round trip."""
    stream = keys.stream(shard)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.xlen(stream)
        pipe.xlen(keys.dead(shard))
        pipe.xrange(stream, count=1)
        pipe.exists(keys.epoch)
        pipe.exists(keys.warming)
        now, backlog, dead, first, epoch, flag = await pipe.execute()
    now_ms = int(now[0]) * 1000 + int(now[1]) // 1000
    oldest_ms = max(0, now_ms - int(first[0][0].split("-")[0])) if first else 0
    return ShardState(int(backlog), int(dead), oldest_ms / 1000, bool(flag) or not epoch,
                      progress.running, progress.rows)


class ShardReporter:
    """The loop that sets a shard's gauges (Ray forgets gauges that are not set again)."""

    def __init__(self, namespace: str, shard: str, redis: aioredis.Redis, keys: Keys,
                 progress: Callable[[], RebuildProgress], reports_fold: bool) -> None:
        self.gauges = ShardGauges(namespace, shard)
        self._fold = FoldGauges(namespace) if reports_fold else None
        self._redis, self._keys, self._shard = redis, keys, shard
        self._progress = progress
        self._failing = False

    async def report(self) -> None:
        self.gauges.set(await read_state(self._redis, self._keys, self._shard,
                                         self._progress()))
        if self._fold is not None:
            lag = FoldLag.from_hash(await self._redis.hgetall(self._keys.fold_stats))
            self._fold.set(lag.cumulative(), lag.max_ms / 1000, lag.last_ms / 1000,
                           lag.applied_fast, lag.applied_net)

    async def run(self) -> None:
        while True:
            try:
                await self.report()
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the gauges age out, which says so
                if not self._failing:
                    log.warning("shard %s: metrics not read: %r", self._shard, exc)
                self._failing = True
            await asyncio.sleep(GAUGE_PERIOD_S)
