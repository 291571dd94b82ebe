"""Ending seasons without a request or a cron daemon: run by every shard actor's maintenance loop.

Each round, on the shard's own Redis instance (docs/boards.md, "Rollover"):

1. **Fence**: raise the instance clock to ``F = max(TIME, clock)`` and note each stream's last
   entry. Every later write there has ``t > F``, so every season ending at or before ``F`` is
   closed on this instance, whatever any host clock does next.
2. **Drain mark**: once every stream on the instance has moved past its fence (entries leave a
   stream only after their Postgres commit), the epoch is unchanged and this shard keeps no
   unconfirmed write of a closed season, Postgres holds every write made here before ``F``:
   ``drain_marks(shard) = F``.
3. **Archive**: with ``W`` the lowest mark over all shards, every season ending at or before
   ``W`` is complete in Postgres; ``archive.archive`` copies it, exactly once.
4. **Free**: seasons at or below a board's ``archived_through`` leave this instance's Redis.

All steps are idempotent; any number of shards, restarts and races may run them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from leaderboard import archive
from leaderboard.board_cache import BoardCache
from leaderboard.board_purge import entry_order
from leaderboard.board_registry import bump
from leaderboard.boards import Board
from leaderboard.keys import Keys, user_of
from leaderboard.pipeline.events import BadEvent, board_of
from leaderboard.recovery import Unstored
from leaderboard.settings import GLOBAL
from leaderboard.shards import Topology

log = logging.getLogger(__name__)

MARK_EVERY_S = 5.0
REPAIR_EVERY_S = 5.0
ANALYZE_EVERY_S = 60.0  # archive_entries statistics refreshed after archiving, at most this often  # the registry is compared with Postgres this often  # a mark also moves this often when no season ended (idle boards)
FREE_CHUNK = 1000

# KEYS: clock, epoch, warming, then the streams on the instance.
# Returns {F, epoch or '', warming 0/1, last entry id of each stream ('' when empty)}.
FENCE = """
local now = redis.call('TIME')
local f = tonumber(now[1]) * 1000000 + tonumber(now[2])
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c > f then f = c end
redis.call('SET', KEYS[1], string.format('%d', f))
local out = {string.format('%d', f), redis.call('GET', KEYS[2]) or '',
             redis.call('EXISTS', KEYS[3])}
for i = 4, #KEYS do
  local last = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
  out[#out + 1] = last[1] and last[1][1] or ''
end
return out
"""

# KEYS: freed. ARGV: season. Raise the freed mark (never lower it).
RAISE_FREED = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
return cur
"""


@dataclass(frozen=True)
class Fence:
    at: int  # F, µs on the instance's clock
    epoch: str
    warming: bool
    last: dict[str, str]  # stream -> last entry id at the fence ('' when empty)


class Rollover:
    """One shard's part of ending seasons: fence, mark, archive, free (``tick`` each round)."""

    def __init__(self, redis: aioredis.Redis, main: aioredis.Redis, keys: Keys, shard: str,
                 topology: Topology, unstored: Unstored, cache: BoardCache,
                 instances: dict[str, aioredis.Redis] | None = None) -> None:
        self._redis, self._main, self._keys = redis, main, keys
        self._instances = instances or {topology.url_of_shard(shard): redis}
        self._shard, self._topology = shard, topology
        self._url = topology.url_of_shard(shard)
        self._streams = [keys.stream(s) for s in topology.shards_on(self._url)]
        self._unstored, self._cache = unstored, cache
        self._fence = redis.register_script(FENCE)
        self._raise_freed = redis.register_script(RAISE_FREED)
        self._marked, self._marked_at = 0, 0.0
        self._w = 0  # the last W this shard saw: seasons ending by it are archivable
        self._repaired_at = 0.0
        self._pending: Fence | None = None  # the fence waiting for the streams to drain
        self._said_at = 0.0
        self._analyzed_at = -ANALYZE_EVERY_S
        self._freed: dict[tuple[str, str], int] = {}  # (board, generation) -> seasons freed here
        regions = [r for r in topology.regions if r != GLOBAL and topology.instance[r] == self._url]
        self._zsets = [*([GLOBAL] if self._url == topology.global_url else []), *regions]

    async def tick(self, pg: asyncpg.Pool) -> None:
        if time.monotonic() - self._repaired_at >= REPAIR_EVERY_S:
            await self.repair_registry()
            self._repaired_at = time.monotonic()
        boards = [b for b in self._cache.all() if b.resets]
        if not boards:
            return
        # a fence is kept until the streams drained past it: taking a new one every round
        # would never see them drained while writes keep coming (the newest are always queued)
        fence = self._pending = self._pending or await self.fence()
        due = self._due(fence, boards)
        if not due:
            self._pending = None
        if due and await self._may_mark(fence):
            self._pending = None
            await archive.mark(pg, self._shard, fence.at)
            self._marked, self._marked_at = fence.at, time.monotonic()
            await self.archive_ready(pg, boards)
        elif any(archive.archivable(b, self._cache.archived(b.id), self._w) for b in boards):
            # held back last time (a dead letter since repaired, a race): retried every round,
            # not only when a mark is due
            await self.archive_ready(pg, boards)
        await self.free(boards)

    async def repair_registry(self) -> int:
        """Make this instance's registry hold exactly the live boards Postgres holds (a create
        or delete interrupted between its steps, a registry restored from an old copy).
        Refreshes the cache first, so a board created or deleted just now is seen as it is."""
        await self._cache.refresh()
        live = {b.id: b.generation for b in self._cache.all() if b.generation}
        held = {str(k): str(v) for k, v in (await self._redis.hgetall(self._keys.boards)).items()}
        wrong = {k: v for k, v in live.items() if held.get(k) != v}
        gone = [k for k in held if k not in live]
        if wrong:
            await self._redis.hset(self._keys.boards, items=[x for kv in wrong.items() for x in kv])
        if gone:
            await self._redis.hdel(self._keys.boards, *gone)
        if wrong or gone:
            log.warning("shard %s: registry repaired (%d set, %d removed)", self._shard,
                        len(wrong), len(gone))
        return len(wrong) + len(gone)

    async def fence(self) -> Fence:
        k = self._keys
        reply = await self._fence(keys=[k.clock, k.epoch, k.warming, *self._streams])
        return Fence(int(reply[0]), str(reply[1]), int(reply[2]) == 1,
                     dict(zip(self._streams, map(str, reply[3:]), strict=True)))

    def _due(self, fence: Fence, boards: list[Board]) -> bool:
        """Whether a mark at this fence is worth writing: a season ended since the last mark
        (or the last is old: idle boards need no mark twice a second)."""
        return time.monotonic() - self._marked_at >= MARK_EVERY_S or any(
            _ended_between(b, self._marked, fence.at) for b in boards)

    async def _may_mark(self, fence: Fence) -> bool:
        """Whether Postgres holds every write made on this instance before the fence. A data
        loss since the fence (another epoch, warming) drops it: the next round fences again."""
        if fence.warming or not fence.epoch or await self._redis.get(self._keys.epoch) != \
                fence.epoch:
            self._pending = None
            return False
        if self._holds_closed(fence.at):
            self._waiting(fence, "a write of an ended season is not confirmed in Postgres yet")
            return False
        if not await self._drained(fence):
            self._waiting(fence, "the streams have not drained past the fence yet")
            return False
        return True

    def _waiting(self, fence: Fence, why: str) -> None:
        """Say (every 5 s at most) why a fence waits long: archives wait for it."""
        waited = (time.time_ns() // 1000 - fence.at) / 1e6
        if waited >= 5 and time.monotonic() - self._said_at >= 5:
            self._said_at = time.monotonic()
            log.warning("shard %s: drain mark waits %.0f s: %s", self._shard, waited, why)

    def _holds_closed(self, f: int) -> bool:
        """Whether this shard keeps an unconfirmed write of a season that ended by ``f``."""
        for event in self._unstored.events():
            board = self._cache.get(event.board)
            if board is not None and board.resets:
                end = board.schedule.bounds(event.season)[1]
                if end is not None and end <= f:
                    return True
        return False

    async def _drained(self, fence: Fence) -> bool:
        """Whether every stream's oldest entry lies past its fence (or the stream is empty)."""
        for stream, last in fence.last.items():
            if not last:
                continue
            first = await self._redis.xrange(stream, "-", "+", count=1)
            if first and entry_order(str(first[0][0])) <= entry_order(last):
                return False
        return True

    async def archive_ready(self, pg: asyncpg.Pool, boards: list[Board]) -> int:
        """Archive every season that ended by W; returns how many boards moved."""
        w = await archive.drained_through(pg, self._topology.all_shards())
        if w is None:
            return 0
        self._w = w
        moved = 0
        blocked = await self.dead_lettered()
        for board in boards:
            through = archive.archivable(board, self._cache.archived(board.id), w)
            held = [s for b, s in blocked if b == board.id and s <= through]
            if held:  # Postgres refused a write of that season: publishing it would lose it
                log.warning("board %s: season %d not archived: a write of it is in a dead-letter "
                            "stream (scripts/reconcile, then remove the dead letter)",
                            board.id, min(held))
                through = min(held) - 1 if min(held) - 1 > self._cache.archived(board.id) else 0
            if through and await archive.archive(pg, board, through):
                moved += 1
                log.info("board %s: archived through season %d", board.id, through)
        if moved:
            if time.monotonic() - self._analyzed_at >= ANALYZE_EVERY_S:
                # fresh statistics, so archive reads pick the rank index they need (with
                # autovacuum off, nothing else would)
                await pg.execute("ANALYZE archive_entries")
                self._analyzed_at = time.monotonic()
            await bump(self._main, self._keys)
            await self._cache.refresh()
        return moved

    async def dead_lettered(self) -> set[tuple[str, int]]:
        return await dead_lettered(self._instances, self._topology, self._keys)

    async def free(self, boards: list[Board]) -> None:
        """Remove archived seasons' keys from this instance."""
        for board in boards:
            done = self._cache.archived(board.id)
            slot = (board.id, board.generation)
            if done > self._freed.get(slot, 0):
                await self.free_board(board, done)
                self._freed[slot] = done

    async def free_board(self, board: Board, through: int) -> None:
        k = self._keys
        seasons_key = k.seasons(board.id, board.generation)
        await self._raise_freed(keys=[k.freed(board.id, board.generation)], args=[through])
        for season in sorted(int(s) for s in await self._redis.smembers(seasons_key)):
            if season <= through:
                await self._free_season(k.season(board.id, board.generation, season).prefix,
                                        board.id, season)
                await self._redis.srem(seasons_key, season)

    async def _free_season(self, prefix: str, board_id: str, season: int) -> None:
        r = self._redis
        zsets = [f"{prefix}board:{z}" for z in self._zsets]
        for zset in zsets:
            while members := await r.zrange(zset, 0, FREE_CHUNK - 1):
                async with r.pipeline(transaction=False) as pipe:
                    pipe.unlink(*(f"{prefix}user:{user_of(str(m))}" for m in members))
                    pipe.zrem(zset, *members)
                    await pipe.execute()
        await r.unlink(*zsets)
        log.info("board %s season %d: keys freed on %s", board_id, season, self._shard)


def _ended_between(board: Board, after: int, upto: int) -> bool:
    """Whether a season of ``board`` ended in ``(after, upto]``."""
    k = board.schedule.season_at(upto)
    if k is None or k == 1:
        return False
    return board.schedule.bounds(k)[0] > after


async def dead_lettered(instances: dict[str, aioredis.Redis], topology: Topology,
                        keys: Keys) -> set[tuple[str, int]]:
    """(board, season) of every dead-lettered write on the given instances: seasons that must
    not be archived until an operator repairs them."""
    found: set[tuple[str, int]] = set()
    for shard in topology.all_shards():
        redis = instances.get(topology.url_of_shard(shard))
        if redis is None:
            continue
        for _, fields in await redis.xrange(keys.dead(shard)) or []:
            try:
                found.add(board_of({str(k): str(v) for k, v in (fields or {}).items()}))
            except BadEvent:
                continue  # not an event of ours at all: nothing to hold back
    return found
