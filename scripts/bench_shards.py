"""GLOBAL staleness with two Redis instances: how long GLOBAL lacks a write of a remote region.

Starts two throwaway redis-servers (free ports, no persistence) and puts EU and ASIA on the
second; GLOBAL and NA stay on the first. Shards and writers run in this process (no Ray, no HTTP)
under a concurrent write load, and every fold into GLOBAL records its lag: the time from the
regional write script (its version is that instance's clock in µs) to the fold's completion.
Both servers run on this machine, so their clocks are the same clock.

  fast path   the shard folds right after its write (the normal case)
  safety net  the shard's fold fails (as if GLOBAL's instance were briefly unreachable), so
              only the writers fold, before acknowledging each batch
  one instance  the same load with every region on one Redis (no fold), for the write rate

Usage: .venv/bin/python scripts/bench_shards.py [--writes 20000] [--clients 50] [--users 5000]
Uses the database leaderboard_bench_shards (emptied) on the usual Postgres (PG* variables).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import subprocess
import tempfile
import time
from typing import Any

import asyncpg
import redis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.fold import GlobalFold
from leaderboard.keys import Keys
from leaderboard.pipeline.db import ensure_database
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.redis_client import REDIS_DOWN, connect
from leaderboard.settings import Settings
from leaderboard.shards import Topology

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server on a free port, without persistence; its process and URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", tempfile.gettempdir()],
                            stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            if redis.Redis(port=port).ping():
                break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


def recording(fold: GlobalFold, lags: list[int]) -> None:
    """Record, per folded row, now - its version (µs) once the fold has returned."""
    apply = fold.apply

    async def timed(rows: list[Any], source: str) -> list[int]:
        ranks = await apply(rows, source)
        now = time.time_ns() // 1000
        lags.extend(now - int(row[4]) for row in rows)
        return ranks

    fold.apply = timed  # type: ignore[method-assign]


async def failing(rows: list[Any], source: str) -> list[int]:
    raise REDIS_DOWN[0]("GLOBAL's instance unreachable (simulated)")


async def run(settings: Settings, mode: str, writes: int, clients: int, users: int
              ) -> tuple[float, list[int]]:
    """One load; returns writes per second and the recorded fold lags (µs)."""
    topo = Topology.of(settings)
    for url in topo.urls():
        r = connect(url)
        await r.flushdb()
        await r.set(Keys(settings.board).epoch, "bench")
        await r.aclose()
    pg = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=4)
    assert pg is not None
    await pg.execute("TRUNCATE leaderboard")
    shards = {s: RegionShard(settings, s) for s in topo.all_shards()}
    lags: list[int] = []
    for shard in shards.values():
        if shard._fold is not None:
            if mode == "fast path":
                recording(shard._fold, lags)
            else:
                shard._fold.apply = failing  # type: ignore[method-assign]
    keys = Keys(settings.board)
    writers = []
    for url in topo.urls():
        fold = None if url == topo.global_url else GlobalFold(connect(topo.global_url), keys)
        if fold is not None and mode == "safety net":
            recording(fold, lags)
        w = StreamWriter(connect(url, retries=0), pg, keys, topo.shards_on(url), "bench",
                         batch_size=1000, block_ms=settings.writer_batch_wait_ms,
                         claim_idle_ms=60_000, fold=fold)
        await w.start()
        writers.append(w)
    done = asyncio.Event()

    async def drain(w: StreamWriter) -> None:
        while await w.step() or not done.is_set():
            pass

    async def client(c: int) -> None:
        for i in range(c, writes, clients):
            u = (i * 7919) % users
            region = REGIONS[u % 4]
            user = f"b{u:06d}"
            await shards[topo.shard_for(region, user)].write(
                WriteCommand(user, "B", region, "set", i % 1000))

    draining = [asyncio.create_task(drain(w)) for w in writers]
    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    rate = writes / (time.perf_counter() - start)
    done.set()
    await asyncio.gather(*draining)
    await pg.close()
    return rate, lags


def pct(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1000


async def main(args: argparse.Namespace) -> None:
    logging.getLogger("leaderboard").setLevel(logging.ERROR)  # the simulated outage's warnings
    (main_proc, main_url), (second_proc, second_url) = start_redis(), start_redis()
    try:
        base = Settings(  # type: ignore[call-arg]
            REDIS_URL=main_url, PGDATABASE="leaderboard_bench_shards", BOARD="bench",
            RATE_LIMITS_ENABLED="false", WRITER_BATCH_WAIT_MS="20",
            JWT_SECRET=os.environ.get("JWT_SECRET", "bench-secret-not-for-production-0123456789"))
        await ensure_database(base)
        two = base.model_copy(update={"redis_shards": f"EU={second_url},ASIA={second_url}"})
        print(f"{args.writes} writes, {args.clients} concurrent clients, {args.users} users "
              f"(half of them on the second instance)")
        for mode, settings in (("one instance", base), ("fast path", two), ("safety net", two)):
            rate, lags = await run(settings, mode, args.writes, args.clients, args.users)
            line = f"{mode:>12}: {rate:8.0f} writes/s"
            if lags:
                line += (f"  GLOBAL fold lag over {len(lags)} remote writes: "
                         f"p50 {pct(lags, 0.5):.2f} ms  p99 {pct(lags, 0.99):.2f} ms  "
                         f"max {max(lags) / 1000:.2f} ms  mean {statistics.mean(lags) / 1000:.2f} ms")
            print(line)
    finally:
        for proc in (main_proc, second_proc):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--users", type=int, default=5000)
    asyncio.run(main(parser.parse_args()))
