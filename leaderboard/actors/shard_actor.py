"""The shard as a Ray actor: ``RegionShard``'s writes, reached over the direct channel
(``channel.py``), plus the loops that guard its Redis instance (recovery), end seasons
(rollover), confirm unstored writes and report metrics."""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from leaderboard.actors.channel import Address, ChannelServer, channel_token
from leaderboard.actors.shard import RegionShard, WriteCommand, WriteResult
from leaderboard.actors.shard_types import Row, commands_of, result_rows
from leaderboard.heap import freeze_startup_heap
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.pipeline.db import create_pool
from leaderboard.recovery import BoardGuard
from leaderboard.redis_client import connect
from leaderboard.settings import GLOBAL, Settings

log = logging.getLogger(__name__)


def node_address() -> str:
    """This node's address as Ray's own servers use it (127.0.0.1 on one machine)."""
    import ray

    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


class RegionShardActor(RegionShard):
    """The shard as a Ray actor: also guards its instance against Redis losing its data and
    ends seasons (``leaderboard.rollover``), every ``GUARD_INTERVAL_S``."""

    GUARD_INTERVAL_S = 0.5

    async def __init__(self, settings: Settings, shard: str) -> None:  # type: ignore[misc]
        from leaderboard.actors.shard_report import ShardReporter
        from leaderboard.board_cache import BoardCache
        from leaderboard.metrics.record import WriteCounts
        from leaderboard.rollover import Rollover
        from leaderboard.serve.pg import Postgres

        main = connect(settings.redis_url)
        self._cache = BoardCache(Postgres(settings, max_size=1), main, Keys(settings.board))
        super().__init__(settings, shard, self._cache.get)
        boards = partial(self.topology.boards_on, self.url)
        self._guard = BoardGuard(self._redis, self._keys, shard, self.unstored, boards,
                                 self._cache.get)
        instances = {url: self._redis if url == self.url else connect(url)
                     for url in self.topology.urls()}
        self._rollover = Rollover(self._redis, main, self._keys, shard, self.topology,
                                  self.unstored, self._cache, instances)
        self._counts = WriteCounts(settings.board, settings.metrics_board_list)
        self._report = ShardReporter(settings.board, shard, self._redis, self._keys,
                                     lambda: self._guard.progress,
                                     shard == GLOBAL and len(self.topology.urls()) > 1)
        self._channel = ChannelServer(self.write_rows, channel_token(
            settings.jwt_secret.get_secret_value(), settings.board, shard))
        await self._channel.start(node_address())
        self._guard_task = asyncio.create_task(self._guard_loop())
        self._cache_task = asyncio.create_task(self._cache.run())
        self._report_task = asyncio.create_task(self._report.run())
        freeze_startup_heap(settings)

    async def write_many(self, cmds: list[WriteCommand]) -> list[WriteResult]:
        """As ``RegionShard.write_many``; a board this shard has not heard of yet (created a
        moment ago through a gateway) is looked up once before its writes are refused."""
        for board in {c.board for c in cmds if c.board != DEFAULT_BOARD}:
            await self._cache.lookup(board)
        results = await super().write_many(cmds)
        changed = [i for i, r in enumerate(results) if r.status == "board_changed"]
        if changed:  # deleted or created again since this cache loaded it: reload, resend once
            await self._cache.refresh()
            again = await super().write_many([cmds[i] for i in changed])
            for i, result in zip(changed, again, strict=True):
                results[i] = result
        self._counts.count(self._shard, cmds, results)
        return results

    async def write_rows(self, rows: list[Row]) -> list[Row]:
        """``write_many`` with commands and results as plain tuples (``shard_types``): what
        the gateways call, over the direct channel or Ray (tuples pickle far cheaper)."""
        return result_rows(await self.write_many(commands_of(rows)))

    async def channel_address(self) -> Address:
        """Where this shard's direct channel listens (``leaderboard/actors/channel.py``)."""
        return self._channel.address

    async def _guard_loop(self) -> None:
        pg = None
        while True:
            try:
                if pg is None:
                    pg = await create_pool(self._settings, max_size=2)
                outcome = await self._guard.check(pg)
                if outcome in ("rebuilt", "replayed"):
                    self._report.gauges.rebuilt(outcome)
                await self.unstored.confirm(pg)
                await self._rollover.tick(pg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis or Postgres away: look again shortly
                log.warning("shard %s: board guard: %r", self._shard, exc)
            await asyncio.sleep(self.GUARD_INTERVAL_S)

    async def unstored_count(self) -> int:
        """Writes of this shard that Postgres may not hold yet."""
        return len(self.unstored)
