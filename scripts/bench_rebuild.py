"""Rebuild benchmark: N users in Postgres -> boards in an empty Redis, as after data loss.

Usage: .venv/bin/python scripts/bench_rebuild.py [--users 1000000] [--chunk 10000]
Uses Redis index 12 (BENCH_REDIS_URL) and database leaderboard_bench_rebuild; both are emptied.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable

import asyncpg
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.pipeline.db import ensure_database
from leaderboard.recovery import rebuild_from_postgres
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings, StoreSettings

SEED = """
INSERT INTO leaderboard (user_id, name, region, score, version, reached, updated_at)
SELECT 'user-' || lpad(i::text, 8, '0'), 'Player ' || i,
       (ARRAY['GLOBAL','ASIA','EU','NA'])[1 + i % 4], (random() * 1000000)::bigint,
       1700000000000000 + i, 1700000000000000 + i, now()
FROM generate_series(1, $1) AS i
"""


async def read_latency(keys: Keys, users: int, calls: int = 500) -> None:
    """Read scripts on the rebuilt board, one at a time: p50/p99 in ms (ranks cost O(log N))."""
    os.environ.setdefault("JWT_SECRET", "bench-secret-not-for-production-0123456789abcdef")
    settings = Settings().model_copy(update={  # type: ignore[call-arg]
        "board": keys.board_name,
        "redis_url": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")})
    ranker = Ranker(settings)
    rng = random.Random(1)

    async def timed(call: Callable[[], Awaitable[object]]) -> str:
        samples = []
        for _ in range(calls):
            t = time.perf_counter()
            await call()
            samples.append((time.perf_counter() - t) * 1000)
        samples.sort()
        return f"p50 {samples[len(samples) // 2]:.2f} ms, p99 {samples[int(len(samples) * .99)]:.2f} ms"

    def user() -> str:
        return f"user-{rng.randrange(1, users + 1):08d}"

    print(f"  top-100 on GLOBAL: {await timed(lambda: ranker.top('GLOBAL', 100))}")
    print(f"  rank on GLOBAL:    {await timed(lambda: ranker.rank('GLOBAL', user()))}")
    print(f"  around (10):       {await timed(lambda: ranker.around('GLOBAL', user(), 10))}")


async def main(users: int, chunk: int) -> None:
    os.environ["PGDATABASE"] = "leaderboard_bench_rebuild"
    store = StoreSettings()
    await ensure_database(store)
    pg = await asyncpg.create_pool(store.dsn(), min_size=1, max_size=2)
    assert pg is not None
    redis = aioredis.Redis.from_url(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                                    decode_responses=True)
    keys = Keys("rebuildbench")
    try:
        await pg.execute("TRUNCATE leaderboard")
        t = time.perf_counter()
        await pg.execute(SEED, users)
        print(f"seeded {users:,} rows in Postgres in {time.perf_counter() - t:.1f}s", flush=True)
        await redis.flushdb()
        before = int((await redis.info("memory"))["used_memory"])
        t = time.perf_counter()
        applied = await rebuild_from_postgres(redis, pg, keys, chunk=chunk)
        seconds = time.perf_counter() - t
        used = int((await redis.info("memory"))["used_memory"]) - before
        members = await redis.zcard(keys.board("GLOBAL")) + sum(
            [await redis.zcard(keys.board(r)) for r in ("ASIA", "EU", "NA")])
        print(f"rebuilt {applied:,} users ({members:,} ZSET members) in {seconds:.1f}s: "
              f"{applied / seconds:,.0f} users/s, {members / seconds:,.0f} members/s; "
              f"Redis memory {used / applied:,.0f} bytes per user")
        await redis.set(keys.epoch, "bench")
        await read_latency(keys, users)
        await redis.flushdb()
        await pg.execute("TRUNCATE leaderboard")
    finally:
        await pg.close()
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.chunk))
