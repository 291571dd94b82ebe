"""Deleting a board's data once nothing of it can arrive any more.

A deleted board is first removed from the registry on every instance, so no write script
applies a write of it again. Events of it written before may still wait in the shard streams:
the purge takes each stream's last id as a fence and waits until every stream's first remaining
entry (the writers delete what they stored) lies past its fence. From then on Postgres holds
every write of the board and none can follow, so deleting its rows cannot be undone by a late
upsert. Every step is idempotent: any gateway may run it again after a crash.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.shards import Topology

log = logging.getLogger(__name__)

SCAN_COUNT = 1000


class Executes(Protocol):
    async def execute(self, sql: str, *args: object) -> str: ...


def entry_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def fences(instances: dict[str, aioredis.Redis], topology: Topology,
                 keys: Keys) -> dict[tuple[str, str], str]:
    """(instance, stream) -> the last id added to that stream so far."""
    out: dict[tuple[str, str], str] = {}
    for url, redis in instances.items():
        for shard in topology.shards_on(url):
            stream = keys.stream(shard)
            if await redis.exists(stream):
                info = await redis.xinfo_stream(stream)
                out[(url, stream)] = str(info["last-generated-id"])
    return out


async def drained(instances: dict[str, aioredis.Redis],
                  fenced: dict[tuple[str, str], str]) -> bool:
    """Whether every stream's first remaining entry lies past its fence."""
    for (url, stream), fence in fenced.items():
        first = await instances[url].xrange(stream, "-", "+", count=1)
        if first and entry_order(str(first[0][0])) <= entry_order(fence):
            return False
    return True


async def unlink_prefix(redis: aioredis.Redis, pattern: str) -> int:
    """UNLINK every key matching ``pattern``, a chunk at a time."""
    removed, batch = 0, []
    async for key in redis.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= SCAN_COUNT:
            removed += await redis.unlink(*batch)
            batch = []
    if batch:
        removed += await redis.unlink(*batch)
    return removed


async def wait_drained(instances: dict[str, aioredis.Redis], topology: Topology, keys: Keys,
                       timeout_s: float, poll_s: float = 0.2) -> bool:
    """Until the streams drained past fences taken now; False when ``timeout_s`` passed first."""
    fenced = await fences(instances, topology, keys)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await drained(instances, fenced):
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(poll_s)
    return True


async def purge(pg: Executes, instances: dict[str, aioredis.Redis], topology: Topology,
                keys: Keys, board_id: str, generation: str, timeout_s: float = 600) -> bool:
    """Remove every key and row of a deleted (tombstoned, unregistered) board; False when the
    streams did not drain in time (the tombstone stays and a later purge finishes the job)."""
    if not await wait_drained(instances, topology, keys, timeout_s):
        log.warning("board %s: streams not drained in %.0f s; purge postponed", board_id,
                    timeout_s)
        return False
    pattern = f"{keys.board_prefix(board_id, generation)}*"
    removed = sum(await asyncio.gather(*(unlink_prefix(r, pattern) for r in instances.values())))
    await pg.execute("DELETE FROM leaderboard WHERE board = $1", board_id)
    await pg.execute("DELETE FROM season_archive WHERE board = $1", board_id)
    await pg.execute("DELETE FROM boards WHERE id = $1 AND deleted_at IS NOT NULL", board_id)
    log.info("board %s purged (%d Redis keys)", board_id, removed)
    return True
