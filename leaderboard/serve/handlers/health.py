"""``/health``: each component's state; 503 when a Redis instance or Postgres is unreachable."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from leaderboard.errors import Unavailable
from leaderboard.fold import FoldLag, InstanceHealth, oldest_event_ages
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.rollover import dead_lettered
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context
from leaderboard.shards import redacted


async def health(ctx: Context, _: Call) -> Reply:
    """Each component's state; 503 when a Redis instance or Postgres cannot be reached."""
    states, pg_state = await asyncio.gather(
        asyncio.gather(*(_instance(ctx, url) for url in ctx.instances)), _postgres(ctx))
    redis_ok = all(st.state == "ok" for st in states)
    ok = redis_ok and pg_state == "ok"
    body: dict[str, Any] = {
        "status": "ok" if ok else "degraded",
        "redis": "ok" if redis_ok else "unreachable",
        "postgres": pg_state,
        "warming": any(st.warming for st in states),
        "backlog": {k: v for st in states for k, v in st.backlog.items()},
        "dead_letters": {k: v for st in states for k, v in st.dead.items()},
        "live": ctx.live.stats(),  # this replica's streams (docs/live.md)
        "read_cache": ctx.reads.stats(),  # this replica's cached answers (docs/performance.md)
    }
    if any(body["dead_letters"].values()) and redis_ok:
        body["archive_blocked"] = await _archive_blocked(ctx)
    if len(states) > 1:
        body["redis_instances"] = {redacted(url): st.state
                                   for url, st in zip(ctx.instances, states, strict=True)}
        body["global"] = await _global(ctx, states)
    return Reply.json(body, 200 if ok else 503)


async def _instance(ctx: Context, url: str) -> InstanceHealth:
    """One instance: reachable, per shard on it the backlog and the dead letters, warming."""
    shards = ctx.topology.shards_on(url)
    redis, keys = ctx.instances[url], ctx.keys
    try:
        async with asyncio.timeout(2):
            async with redis.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.xlen(keys.stream(shard))
                    pipe.xlen(keys.dead(shard))
                pipe.exists(keys.epoch)
                pipe.exists(keys.warming)
                *counts, epoch, flag = [int(n) for n in await pipe.execute()]
            oldest = await oldest_event_ages(redis, keys, shards)
    except (TimeoutError, *REDIS_DOWN):
        return InstanceHealth("unreachable")
    backlog = dict(zip(shards, counts[0::2], strict=True))
    dead = dict(zip(shards, counts[1::2], strict=True))
    return InstanceHealth("ok", backlog, dead, bool(flag) or not epoch, oldest)


async def _global(ctx: Context, states: list[InstanceHealth]) -> dict[str, Any]:
    """GLOBAL staleness: the fold-lag histogram, and the oldest event not yet folded for sure."""
    remote = set(ctx.topology.remote_shards())
    unconfirmed = {k: v for st in states for k, v in st.oldest.items() if k in remote}
    try:
        async with asyncio.timeout(2):
            stats = await ctx.redis.hgetall(ctx.keys.fold_stats)
    except (TimeoutError, *REDIS_DOWN):
        stats = {}
    return {**FoldLag.from_hash(stats).as_dict(),
            "oldest_unconfirmed_ms": max(unconfirmed.values(), default=0),
            "unconfirmed_by_shard": unconfirmed}


async def _archive_blocked(ctx: Context) -> list[dict[str, Any]]:
    """Ended seasons not archived because a write of theirs is in a dead-letter stream."""
    now = int(time.time() * 1_000_000)
    blocked = []
    for board_id, season in sorted(await dead_lettered(ctx.instances, ctx.topology, ctx.keys)):
        board = ctx.boards.get(board_id)
        if board is None or not board.resets:
            continue
        end = board.schedule.bounds(season)[1]
        if end is not None and end <= now and season > ctx.boards.archived(board_id):
            blocked.append({"board": board_id, "season": season})
    return blocked


async def _postgres(ctx: Context) -> str:
    try:
        async with asyncio.timeout(2):
            await ctx.pg.fetchval("SELECT 1")
        return "ok"
    except (TimeoutError, Unavailable):
        return "unreachable"
