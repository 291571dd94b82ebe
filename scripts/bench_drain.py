"""Drain benchmark: a backlog of N events on the shard streams -> Postgres by W writers.

This is what happens when Postgres comes back after an outage. Usage:
  .venv/bin/python scripts/bench_drain.py [--events 100000] [--users 20000] [--writers 2]
Uses Redis index 12 (BENCH_REDIS_URL) and database leaderboard_bench_drain; both are emptied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import asyncpg
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.keys import Keys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline.db import ensure_database
from leaderboard.pipeline.writer import StreamWriter, upsert
from leaderboard.settings import Settings

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


async def fill(settings: Settings, events: int, users: int) -> None:
    shards = {r: RegionShard(settings, r) for r in REGIONS}

    async def client(c: int) -> None:
        for i in range(c, events, 50):
            u = i % users
            region = REGIONS[u % 4]
            await shards[region].write(WriteCommand(f"d{u:07d}", "D", region, "set", i))

    await asyncio.gather(*(client(c) for c in range(50)))


async def bare_upsert(pg: asyncpg.Pool, events: int, users: int, conns: int, batch: int) -> float:
    """The same events straight into Postgres: the ceiling the writer pool is compared with."""
    rows = []
    for i in range(events):
        u = i % users
        rows.append(ScoreEvent(user_id=f"d{u:07d}", name="D", region=REGIONS[u % 4], score=i,
                               version=1_800_000_000_000_000 + i, reached=1, ts=0))
    chunks = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    t = time.perf_counter()

    async def worker(mine: list[list[ScoreEvent]]) -> None:
        for chunk in mine:
            await upsert(pg, chunk)

    await asyncio.gather(*(worker(chunks[w::conns]) for w in range(conns)))
    return events / (time.perf_counter() - t)


async def main(events: int, users: int, writers: int, batch: int) -> None:
    os.environ["PGDATABASE"] = "leaderboard_bench_drain"
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ.setdefault("JWT_SECRET", "bench-secret-not-for-production-0123456789abcdef")
    settings = Settings().model_copy(update={"rate_limits_enabled": False})  # type: ignore[call-arg]
    await ensure_database(settings)
    pg = await asyncpg.create_pool(settings.dsn(), min_size=writers, max_size=writers * 2)
    assert pg is not None
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys(settings.board)
    try:
        await pg.execute("TRUNCATE leaderboard")
        await redis.flushdb()
        await redis.set(keys.epoch, "bench")
        t = time.perf_counter()
        await fill(settings, events, users)
        print(f"backlog: {events:,} events for {users:,} users written in "
              f"{time.perf_counter() - t:.1f}s", flush=True)
        pool = [StreamWriter(redis, pg, keys, REGIONS, f"bench-{w}", batch_size=batch,
                             block_ms=10, claim_idle_ms=60_000) for w in range(writers)]
        for w in pool:
            await w.start()
        t = time.perf_counter()

        async def run(w: StreamWriter) -> None:
            while await w.step():
                pass

        await asyncio.gather(*(run(w) for w in pool))
        seconds = time.perf_counter() - t
        stored = await pg.fetchval("SELECT count(*) FROM leaderboard")
        print(f"drained {events:,} events ({stored:,} rows) with {writers} writers, batch {batch}, "
              f"in {seconds:.1f}s: {events / seconds:,.0f} events/s")
        await pg.execute("TRUNCATE leaderboard")
        bare = await bare_upsert(pg, events, users, writers, batch)
        print(f"bare unnest upsert of the same events ({writers} connections, batch {batch}): "
              f"{bare:,.0f} events/s; the writer pool reaches {events / seconds / bare:.0%} of it")
        await redis.flushdb()
        await pg.execute("TRUNCATE leaderboard")
    finally:
        await pg.close()
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    a = parser.parse_args()
    asyncio.run(main(a.events, a.users, a.writers, a.batch))
