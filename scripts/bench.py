"""One benchmark run: the service next to the limits of the parts underneath it.

Run through ``scripts/bench`` (it creates the venv, makes sure Redis, Postgres and wrk are
there). Starts its own Ray + Serve instance (port 18800, Redis index 10, database
``leaderboard_bench``; both are emptied) and measures, in this order:

  1. the ceilings: a trivial plain-ASGI deployment (the targets' ceiling) and a trivial
     FastAPI one, under the same Serve settings;
  2. single score writes over HTTP (limits off and on, alternated), with
  7. the write-to-Postgres lag measured by a probe during the first write run;
  4. the batch endpoint (score updates/s);
  3. top-100, rank and around-me reads;
  6. the writer pool (the app's writer actors) draining a backlog into Postgres, next to a bare
     ``unnest`` upsert of the same rows;
  5. the atomic write script called straight on Redis, one call at a time and pipelined;
  8. Redis memory per user and read latency at 10k versus N users (rebuilt from Postgres).

Every HTTP run follows a 1-s warm-up of its endpoint, starts once earlier runs' events are stored
and no replica is starting, and reports its slowest request and its slowest whole second (the
fewest responses in one second), so a stall is seen rather than averaged away. ``--only`` runs
some items (e.g. ``--only 6``).

It prints the table and its ratios against the targets and, with ``--out``, writes them into
that Markdown file between the ``bench:begin``/``bench:end`` markers (the rest is kept).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PORT = int(os.environ.get("BENCH_HTTP_PORT", "18800"))
os.environ.update(
    {
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"),
        "PGDATABASE": os.environ.get("BENCH_PGDATABASE", "leaderboard_bench"),
        "PORT": str(PORT),
        "RAY_NAMESPACE": "leaderboard-bench",
        "RATE_LIMITS_ENABLED": "false",
    }
)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("JWT_SECRET", "bench-secret-not-for-production-0123456789abcdef")

from leaderboard.serve.ray_env import haproxy_dir, serve_env  # noqa: E402

# its own HAProxy files and ports, whatever the calling environment says (a test run's, say)
haproxy_dir(PORT).mkdir(parents=True, exist_ok=True)
os.environ.update(serve_env(PORT, stats_port=PORT + 104, metrics_port=PORT + 1101))

import asyncpg  # noqa: E402
import ray  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from bench_wrk import (  # noqa: E402
    NAN,
    WRK_BATCH,
    WRK_PATHS,
    WRK_WRITE,
    Run,
    wait_ready,
    warm_up,
    wrk,
)
from fastapi import FastAPI  # noqa: E402
from ray import serve  # noqa: E402

from leaderboard.actors.shard import RegionShard, WriteCommand  # noqa: E402
from leaderboard.keys import Keys  # noqa: E402
from leaderboard.pipeline.db import ensure_database  # noqa: E402
from leaderboard.pipeline.events import StoredEvent  # noqa: E402
from leaderboard.pipeline.writer import upsert  # noqa: E402
from leaderboard.recovery import rebuild_from_postgres  # noqa: E402
from leaderboard.serve.app import build_app  # noqa: E402
from leaderboard.serve.auth import issue_token  # noqa: E402
from leaderboard.serve.config import load  # noqa: E402
from leaderboard.serve.ranking import Ranker  # noqa: E402
from leaderboard.settings import Settings  # noqa: E402
from leaderboard.shards import Topology  # noqa: E402

trivial_api = FastAPI()
QUIET_LOGS = load().logging_config  # the checked-in serve_config.yaml's


@serve.deployment(max_ongoing_requests=1000, logging_config=QUIET_LOGS)
@serve.ingress(trivial_api)
class Trivial:
    """The ceiling: a FastAPI ingress that does nothing."""

    @trivial_api.get("/")
    async def noop(self) -> dict[str, bool]:
        return {"ok": True}


async def _plain_ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A framework-free ASGI app answering {"ok": true} (lifespan acknowledged)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


@serve.deployment(max_ongoing_requests=1000, logging_config=QUIET_LOGS)
@serve.ingress()
class PlainTrivial:
    """The ceiling the targets use: a plain ASGI ingress (as the gateway is) that does nothing."""

    def __serve_build_asgi_app__(self) -> Any:
        return _plain_ok





@dataclass
class Result:
    key: str  # stable id used by the ratio table
    name: str
    value: float  # req/s, writes/s, rows/s, bytes ... (see unit)
    unit: str
    p50_ms: float = NAN
    p99_ms: float = NAN
    errors: int = 0
    max_ms: float = NAN  # the slowest request of the run
    slowest: int = -1  # HTTP runs: fewest responses in one whole second (-1: not measured)


RESULTS: dict[str, Result] = {}


def record(r: Result) -> Result:
    RESULTS[r.key] = r
    lat = "" if math.isnan(r.p50_ms) else f"  p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms"
    err = f"  errors {r.errors}" if r.errors else ""
    worst = "" if math.isnan(r.max_ms) else f"  max {r.max_ms:.0f} ms"
    worst += f"  slowest second {r.slowest:,} req" if r.slowest >= 0 else ""
    print(f"  {r.name}: {r.value:,.0f} {r.unit}{lat}{worst}{err}", flush=True)
    return r


# --- HTTP with wrk (bench_wrk) ------------------------------------------------------------

def settled(timeout: float = 120) -> None:
    """Until no replica of any app is starting or stopping (an autoscaling step in progress)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = serve.status().applications.values()
        busy = {state for app in apps for d in app.deployments.values()
                for state, n in d.replica_states.items() if n and state != "RUNNING"}
        if not busy:
            return
        time.sleep(0.2)
    print("  (replicas still changing after the wait: measuring anyway)", flush=True)


def drained(boards: list[Settings], timeout: float = 120) -> None:
    """Until the writers have stored what earlier runs queued, so no run pays for another."""
    deadline = time.monotonic() + timeout
    while any(asyncio.run(backlog(s)) for s in boards) and time.monotonic() < deadline:
        time.sleep(0.1)


def quiet(boards: list[Settings]) -> None:
    """Before a measured run: earlier runs' backlog stored, their dead rows gone, no replica
    starting."""
    drained(boards)
    vacuum(boards[0])
    settled()


def vacuum(settings: Settings) -> None:
    """``VACUUM ANALYZE leaderboard``: every write run starts from the same table, whatever ran
    before it on this database. Each update leaves a dead row behind, and with autovacuum off
    (as on the machine these figures come from) 1,000 users' rows had 680,000 dead ones after a
    few bench runs, which every later upsert and confirmation waded through."""
    asyncio.run(pg_execute(settings, "VACUUM ANALYZE leaderboard"))


def http(key: str, name: str, url: str, script: str | None, d: int, c: int) -> Result:
    warm_up(url, script, c)
    settled()
    return record(result_of(key, name, wrk(url, script, d, c)))


def result_of(key: str, name: str, run: Run, errors: int | None = None) -> Result:
    return Result(key, name, run.rps, "req/s", run.p50_ms, run.p99_ms,
                  run.errors if errors is None else errors, run.max_ms, run.slowest)


def middle(values: list[float]) -> float:
    """The median (of an even count, the upper of the two middle values)."""
    return sorted(values)[len(values) // 2]


def median_suffix(n: int) -> str:
    return f" (median of {n})" if n > 1 else ""


def median_of(key: str, name: str, runs: list[Run]) -> Result:
    suffix = median_suffix(len(runs))
    worst = min(runs, key=lambda r: r.slowest)  # a stall in any run is reported, not hidden
    median = sorted(runs, key=lambda r: r.rps)[len(runs) // 2]
    run = Run(median.rps, median.p50_ms, median.p99_ms, 0, max(r.max_ms for r in runs),
              worst.slowest)
    return record(result_of(key, name + suffix, run, sum(r.errors for r in runs)))


# --- seeding --------------------------------------------------------------------------------

def user_id(i: int) -> str:
    return f"bench-{i:06d}"


async def write_all(settings: Settings, cmds: list[WriteCommand]) -> None:
    """Commands through the real write script, on each user's shard, 500 per round trip."""
    topology = Topology.of(settings)
    by_shard: dict[str, list[WriteCommand]] = {}
    for cmd in cmds:
        by_shard.setdefault(topology.shard_for(cmd.region, cmd.user_id), []).append(cmd)
    for shard, mine in by_shard.items():
        writer = RegionShard(settings, shard)
        for at in range(0, len(mine), 500):
            await writer.write_many(mine[at:at + 500])


async def seed_board(settings: Settings, users: int) -> list[str]:
    """Users spread over the regions, written through the real write script (on whichever
    Redis instance each shard lives), the boards marked complete; the users' tokens."""
    regions = settings.region_list
    cmds = [WriteCommand(user_id(i), f"Player {i}", regions[i % len(regions)], "set",
                         (i * 7919) % 100000) for i in range(users)]
    await write_all(settings, cmds)
    for url in Topology.of(settings).urls():  # complete: the board guard must not rebuild it
        r = aioredis.Redis.from_url(url)
        await r.set(Keys(settings.board).epoch, "bench")
        await r.aclose()
    return [issue_token(settings, c.user_id, c.name, c.region) for c in cmds]


async def seed(settings: Settings, users: int) -> list[str]:
    """An emptied Redis index, the seeded board, and the users' accounts."""
    r = aioredis.Redis.from_url(settings.redis_url)
    await r.flushdb()
    await r.aclose()
    tokens = await seed_board(settings, users)
    regions = settings.region_list
    conn = await asyncpg.connect(settings.dsn())
    try:  # accounts: the batch endpoint looks names and regions up there
        await conn.execute("TRUNCATE credentials")
        await conn.execute(
            "INSERT INTO credentials (user_id, name, region, password_hash) "
            "SELECT u, n, r, 'x' FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, n, r)",
            [user_id(i) for i in range(users)], [f"Player {i}" for i in range(users)],
            [regions[i % len(regions)] for i in range(users)])
    finally:
        await conn.close()
    return tokens




# --- 5. the write script straight on Redis ---------------------------------------------------

async def direct_script(settings: Settings, total: int, clients: int, per_call: int) -> float:
    """Writes/s of the atomic write script through the shard's own Python client: ``clients``
    callers, ``per_call`` scripts per round trip (1: one at a time; more: one pipeline)."""
    shard = RegionShard(settings, "EU")
    rounds = max(1, total // (clients * per_call))

    async def client(c: int) -> None:
        for i in range(rounds):
            await shard.write_many([
                WriteCommand(f"direct-{c}-{(i * per_call + j) % 200}", "D", "EU", "set", i + j)
                for j in range(per_call)])

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return rounds * clients * per_call / (time.perf_counter() - start)


def script_on_redis(settings: Settings, total: int) -> float:
    """Writes/s of the write script driven by redis-benchmark (C, 4 connections, pipelined
    100 deep) over 100k random users: what Redis itself sustains, without a Python client."""
    shard = RegionShard(settings, "EU")
    keys, args = shard._script_call(WriteCommand("__rand_int__", "Bench", "EU", "set", 42))

    async def load() -> str:
        r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
        try:
            return str(await r.script_load(shard._write.script))
        finally:
            await r.aclose()

    sha = asyncio.run(load())
    url = settings.redis_url.split("//", 1)[1]
    hostport, _, db = url.partition("/")
    host, _, port = hostport.rpartition(":")
    out = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", port, "--dbnum", db or "0", "-n", str(total),
         "-c", "4", "-P", "100", "-r", "100000", "-q",
         "EVALSHA", sha, str(len(keys)), *keys, *map(str, args)],
        capture_output=True, text=True, check=True).stdout
    m = re.search(r"([\d.]+) requests per second", out)
    if m is None:
        raise RuntimeError(f"redis-benchmark printed no rate:\n{out}")
    return float(m.group(1))


# --- 7. write-to-Postgres lag ---------------------------------------------------------------

class LagProbe:
    """A probe write every 100 ms during a load run, timed until Postgres holds its version."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stop = threading.Event()
        self.lags_ms: list[float] = []
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> LagProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        shard = RegionShard(self._settings, "EU")
        pg = await asyncpg.connect(self._settings.dsn())
        try:
            i = 0
            while not self._stop.is_set():
                i += 1
                start = time.perf_counter()
                result = await shard.write(WriteCommand("lag-probe", "Probe", "EU", "set", i))
                while not self._stop.is_set():
                    v = await pg.fetchval(
                        "SELECT version FROM leaderboard WHERE user_id = 'lag-probe'")
                    if v is not None and v >= result.version:
                        self.lags_ms.append((time.perf_counter() - start) * 1000)
                        break
                    await asyncio.sleep(0.002)
                await asyncio.sleep(0.1)
        finally:
            await pg.close()

    def result(self) -> Result:
        lags = sorted(self.lags_ms) or [NAN]
        p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        return record(Result("lag", f"write-to-Postgres lag during the write run "
                             f"({len(self.lags_ms)} probes)", len(self.lags_ms), "probes",
                             p50, p99))


# --- scale-out (issue 5): 1 vs 2 ranking replicas, 1 vs 2 Redis instances -------------------

WRK_REGION_RANKS = """
local n = %d
local regions = {%s}
local i = 0
request = function()
  i = i + 1
  local u = i %% n
  return wrk.format("GET", string.format("%s/rank/bench-%%06d?region=%%s", u,
                                         regions[(u %% #regions) + 1]))
end
"""


def drop_apps(apps: dict[str, Settings | None]) -> None:
    """Delete Serve apps (together: one by one took ~3 s each) and stop the shard and writer
    actors of their boards (they are detached; ``None``: an app without a board)."""
    from leaderboard.actors.router import shard_actor_name
    from leaderboard.pipeline.pool import writer_actor_name

    for name in apps:
        serve.delete(name, _blocking=False)
    deadline = time.monotonic() + 120
    while set(apps) & set(serve.status().applications) and time.monotonic() < deadline:
        time.sleep(0.1)
    for settings in filter(None, apps.values()):
        names = [shard_actor_name(settings, shard) for shard in Topology.of(settings).all_shards()]
        names += [writer_actor_name(settings, i) for i in range(settings.writer_pool_size)]
        for actor in names:
            try:
                ray.kill(ray.get_actor(actor, namespace=settings.ray_namespace), no_restart=True)
            except ValueError:
                pass  # gone already (two apps may share a board)


class SecondRedis:
    """A throwaway redis-server on a free port (no persistence), stopped on exit."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="lb-bench-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("the second redis-server did not start")
            time.sleep(0.05)
        return f"redis://127.0.0.1:{self.port}/0"

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def scale_out(settings: Settings, users: int, d: int, c: int) -> None:
    """Reads with a Ranker of 1 vs 2 fixed replicas (same board), then with the region boards on
    1 vs 2 Redis instances (2 replicas each); one region-board rank per request."""
    from leaderboard.serve.config import deployment_options

    opts = deployment_options()
    gateway = {**opts["Gateway"], "num_replicas": 1}

    def ranker(n: int) -> dict[str, Any]:
        fixed = {k: v for k, v in opts["Ranker"].items() if k != "autoscaling_config"}
        return {**fixed, "num_replicas": n}

    regions = ",".join(f'"{r}"' for r in settings.region_list)
    with SecondRedis() as second:
        db = f"{settings.database_name()}_scale"  # each board keeps its durable record apart
        # no read cache: every read goes to a ranking replica and Redis, the parts compared
        one = settings.model_copy(update={"board": "scale1", "pgdatabase": db,
                                          "read_cache_size": 0})
        shards = ",".join(f"{r}={second}" for r in settings.region_list if r != "GLOBAL")
        two = one.model_copy(update={"board": "scale2", "redis_shards": shards})
        asyncio.run(ensure_database(one))
        for s in (one, two):
            asyncio.run(seed_board(s, users))
        serve.run_many([  # together: their replicas start side by side, not one app at a time
            serve.RunTarget(build_app(s, {"Ranker": ranker(n), "Gateway": gateway}), name,
                            f"/{name}", QUIET_LOGS)
            for name, s, n in (("r1", one, 1), ("r2", one, 2), ("i2", two, 2))])
        base = f"http://127.0.0.1:{PORT}"
        for name in ("r1", "r2", "i2"):
            wait_ready(f"{base}/{name}")
        def script(prefix: str) -> str:
            return WRK_REGION_RANKS % (users, regions, prefix)

        label = "GET /rank/{id}?region=<the user's> "
        http("scale_r1", label + "with 1 ranking replica", base, script("/r1"), d, c)
        http("scale_r2", label + "with 2 ranking replicas (1 Redis instance)", base,
             script("/r2"), d, c)
        http("scale_i2", label + "with 2 ranking replicas, region boards on a 2nd Redis instance",
             base, script("/i2"), d, c)
        drop_apps({"r1": one, "r2": one, "i2": two})


# --- 6. writer pool vs bare upsert ----------------------------------------------------------

def backlog_events(settings: Settings, events: int, users: int) -> list[WriteCommand]:
    regions = settings.region_list
    return [WriteCommand(f"drain-{i % users:07d}", "D", regions[(i % users) % len(regions)],
                         "set", i) for i in range(events)]


async def backlog(settings: Settings) -> int:
    r = aioredis.Redis.from_url(settings.redis_url)
    try:
        keys = Keys(settings.board)
        return sum([await r.xlen(keys.stream(s)) for s in settings.region_list])
    finally:
        await r.aclose()


async def until_empty(settings: Settings) -> None:
    """Until every shard stream is empty, looking every 20 ms through one connection (a new
    event loop and connection per look cost the two cores as much as a writer)."""
    r = aioredis.Redis.from_url(settings.redis_url)
    streams = [Keys(settings.board).stream(s) for s in settings.region_list]
    try:
        while True:
            async with r.pipeline(transaction=False) as pipe:
                for name in streams:
                    pipe.xlen(name)
                if not any(await pipe.execute()):
                    return
            await asyncio.sleep(0.02)
    finally:
        await r.aclose()


async def pg_execute(settings: Settings, sql: str) -> None:
    conn = await asyncpg.connect(settings.dsn())
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def drain_writer_pool(settings: Settings, writers: list[Any], events: int, users: int,
                      rounds: int) -> None:
    """The writer pool's drain and the bare upsert of the same events, alternated ``rounds``
    times (a checkpoint or a background loop then weighs on both alike); the median of each."""
    pool, bare = [], []
    for _ in range(rounds):
        pool.append(drain_once(settings, writers, events, users))
        bare.append(asyncio.run(bare_upsert(settings, events, users, len(writers))))
    suffix = median_suffix(rounds)
    queued = pool[0][0]
    record(Result("pool", f"writer pool ({len(writers)} writer actors, batch "
                  f"{settings.writer_batch_size}) draining {queued:,} events of {users:,} "
                  f"users{suffix}", middle([rate for _, rate in pool]), "events/s"))
    record(Result("bare", f"bare `unnest` upsert of the same events ({len(writers)} connections, "
                  f"batch {settings.writer_batch_size}){suffix}", middle(bare), "events/s"))


def drain_once(settings: Settings, writers: list[Any], events: int,
               users: int) -> tuple[int, float]:
    """Pause the app's writers, queue ``events``, resume, and time until the streams are empty:
    (events queued, events/s)."""
    ray.get([w.pause.remote() for w in writers])
    asyncio.run(pg_execute(settings, "TRUNCATE leaderboard"))
    cmds = backlog_events(settings, events, users)
    asyncio.run(write_all(settings, cmds))
    queued = asyncio.run(backlog(settings))
    start = time.perf_counter()
    ray.get([w.resume.remote() for w in writers])
    asyncio.run(until_empty(settings))
    return queued, queued / (time.perf_counter() - start)


async def bare_upsert(settings: Settings, events: int, users: int, conns: int) -> float:
    """The same events straight into Postgres (events/s): the writer pool's ceiling."""
    await pg_execute(settings, "TRUNCATE leaderboard")
    regions = settings.region_list
    rows = [StoredEvent(f"drain-{i % users:07d}", "D", regions[(i % users) % len(regions)], i,
                        1_800_000_000_000_000 + i, 1, 0) for i in range(events)]
    batch = settings.writer_batch_size
    chunks = [rows[i:i + batch] for i in range(0, len(rows), batch)]
    pg = await asyncpg.create_pool(settings.dsn(), min_size=conns, max_size=conns)
    assert pg is not None
    try:
        start = time.perf_counter()

        async def worker(mine: list[list[StoredEvent]]) -> None:
            for chunk in mine:
                await upsert(pg, chunk)

        await asyncio.gather(*(worker(chunks[w::conns]) for w in range(conns)))
        rate = events / (time.perf_counter() - start)
    finally:
        await pg.close()
    await pg_execute(settings, "TRUNCATE leaderboard")
    return rate


# --- 8. memory and read latency vs board size -----------------------------------------------

SEED_ROWS = """
INSERT INTO leaderboard (user_id, name, region, score, version, reached, updated_at)
SELECT 'user-' || lpad(i::text, 8, '0'), 'Player ' || i,
       (ARRAY['GLOBAL','ASIA','EU','NA'])[1 + i % 4], (random() * 1000000)::bigint,
       1700000000000000 + i, 1700000000000000 + i, now()
FROM generate_series(1, $1) AS i
"""


BLOCKS = 5  # item 8's read timings: blocks of ``calls`` calls


async def board_size(settings: Settings, users: int, calls: int) -> None:
    """Rebuild ``users`` rows from Postgres into an empty Redis index; memory and read p99."""
    pg = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=2)
    assert pg is not None
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    keys = Keys("sizebench")
    try:
        await pg.execute("TRUNCATE leaderboard")
        await pg.execute(SEED_ROWS, users)
        await redis.flushdb()
        before = int((await redis.info("memory"))["used_memory"])
        start = time.perf_counter()
        applied = await rebuild_from_postgres(redis, pg, keys, chunk=10_000)
        seconds = time.perf_counter() - start
        per_user = (int((await redis.info("memory"))["used_memory"]) - before) / applied
        await redis.set(keys.epoch, "bench")
        ranker = Ranker(settings.model_copy(update={"board": "sizebench"}))
        rng = random.Random(1)

        def someone() -> str:
            return f"user-{rng.randrange(1, users + 1):08d}"

        async def timed(key: str, what: str, call: Callable[[], Awaitable[object]]) -> None:
            """p50 of every call; p99 the median of BLOCKS blocks' p99s, so that one stall of
            a shared two-core machine does not decide a sub-millisecond figure."""
            blocks = []
            for _ in range(BLOCKS):
                block = []
                for _ in range(calls):
                    t = time.perf_counter()
                    await call()
                    block.append((time.perf_counter() - t) * 1000)
                blocks.append(sorted(block))
            record(Result(f"{key}@{users}", f"{what} at {users:,} users ({BLOCKS} x {calls} "
                          "calls, one at a time; p99: median of the blocks)", BLOCKS * calls,
                          "calls", middle([x for block in blocks for x in block]),
                          middle([block[int(calls * 0.99)] for block in blocks])))

        record(Result(f"mem@{users}", f"Redis memory per user at {users:,} users (rebuilt at "
                      f"{applied / seconds:,.0f} users/s)", per_user, "bytes"))
        await timed("top", "top-100 read script", lambda: ranker.top("GLOBAL", 100))
        await timed("rank", "rank read script", lambda: ranker.rank("GLOBAL", someone()))
        await timed("around", "around(10) read script",
                    lambda: ranker.around("GLOBAL", someone(), 10))
    finally:
        await redis.flushdb()
        await pg.execute("TRUNCATE leaderboard")
        await pg.close()
        await redis.aclose()


# --- the report -----------------------------------------------------------------------------

def ratio_rows(big: int) -> list[tuple[str, str, str, bool | None]]:
    """(what, measured, target, met) for every target of issue 6 the run has figures for."""
    R = RESULTS  # noqa: N806 - short: the expressions below read as formulas
    rows: list[tuple[str, str, str, bool | None]] = []

    def share(a: str, b: str, what: str, target: float) -> None:
        if a in R and b in R and R[b].value:
            ratio = R[a].value / R[b].value
            rows.append((what, f"{ratio:.0%}", f">= {target:.0%}", ratio >= target))

    def absolute(a: str, what: str, target: float) -> None:
        if a in R:
            rows.append((what, f"{R[a].value:,.0f} req/s", f">= {target:,.0f} req/s",
                         R[a].value >= target))

    ceiling = "plain" if "plain" in R else "ceiling"
    share("update", ceiling, f"single writes / {ceiling} ceiling", 0.40)
    for k, label in (("top", "top-100"), ("rank", "rank"), ("around", "around-me")):
        share(k, ceiling, f"{label} reads / {ceiling} ceiling", 0.50)
    share("batch", "script_redis" if "script_redis" in R else "script_pipelined",
          "batch endpoint / write script pipelined on Redis", 0.25)
    share("pool", "bare", "writer pool / bare upsert", 0.70)
    if "lag" in R:
        rows.append(("write-to-Postgres lag p99", f"{R['lag'].p99_ms:,.0f} ms", "< 1,000 ms",
                     R["lag"].p99_ms < 1000))
    if f"top@{big}" in R and "top@10000" in R:
        ratio = R[f"top@{big}"].p99_ms / R["top@10000"].p99_ms
        rows.append((f"top-100 p99 at {big:,} / at 10,000 users", f"{ratio:.2f}x", "<= 2x",
                     ratio <= 2))
    for a, b, what in (("scale_r2", "scale_r1", "rank reads: 2 ranking replicas / 1"),
                       ("scale_i2", "scale_r2", "rank reads: 2 Redis instances / 1")):
        if a in R and b in R and R[b].value:
            rows.append((what, f"{R[a].value / R[b].value:.2f}x", "(no target; issue 5)", None))
    absolute("update", "score update vs UpRank (1,550)", 1550)
    absolute("top", "top-100 vs UpRank (1,970)", 1970)
    absolute("around", "around-me vs UpRank (5,340)", 5340)
    absolute("rank", "rank vs half of UpRank (11,060 / 2)", 5530)
    return rows


def markdown(args: argparse.Namespace, seconds: float) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} "
        f"cores ({platform.machine()}) in one run of {seconds / 60:.1f} min: "
        f"`{' '.join(['scripts/bench', *sys.argv[1:]])}` (wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, {args.users:,} users).",
        "",
        "| # | measurement | value | p50 ms | p99 ms | max ms | slowest second | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    item = {"ceiling": 1, "plain": 1, "update": 2, "update_limits": 2, "top": 3, "rank": 3, "around": 3,
            "batch": 4, "script_single": 5, "script_pipelined": 5, "script_pipelined_limits": 5,
            "script_redis": 5,
            "pool": 6, "bare": 6, "lag": 7}
    for r in RESULTS.values():
        n = "scale" if r.key.startswith("scale_") else item.get(r.key, 8)
        p50 = "-" if math.isnan(r.p50_ms) else f"{r.p50_ms:.1f}"
        p99 = "-" if math.isnan(r.p99_ms) else f"{r.p99_ms:.1f}"
        value = "-" if r.unit in ("calls", "probes") else f"{r.value:,.0f} {r.unit}"
        top = "-" if math.isnan(r.max_ms) else f"{r.max_ms:.1f}"
        slowest = "-" if r.slowest < 0 else f"{r.slowest:,} req"
        lines.append(f"| {n} | {r.name} | {value} | {p50} | {p99} | {top} | {slowest} "
                     f"| {r.errors} |")
    lines += ["", "| target | measured | target | met |", "|---|---:|---:|---|"]
    for what, got, target, met in ratio_rows(args.scale_users):
        verdict = "-" if met is None else "yes" if met else "**no**"
        lines.append(f"| {what} | {got} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


def write_report(path: Path, table: str, marker: str = "bench") -> None:
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    block = f"{begin}\n{table}{end}"
    text = path.read_text() if path.exists() else "# Performance\n\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        head, _, rest = text.partition("\n\n")
        text = f"{head}\n\n{block}\n\n{rest}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


HIGH_LIMITS = {"rate_limits_enabled": True, "user_rate_limit_count": 10**9,
               "region_rate_limit_per_sec": 10**9, "queue_reject_length": 10**9}
ITEMS = ("1", "2", "3", "4", "5", "6", "7", "8", "scale")


def script_items(settings: Settings, quick: bool) -> None:
    """Item 5: the write script straight on Redis."""
    print("5. the write script straight on Redis", flush=True)
    n = 5_000 if quick else 50_000
    asyncio.run(direct_script(settings, n // 5, 50, 1))  # warm-up
    record(Result("script_single", "write script on Redis, one call at a time (50 clients)",
                  asyncio.run(direct_script(settings, n, 50, 1)), "writes/s"))
    record(Result("script_pipelined", "write script on Redis, pipelined 100 per round trip "
                  "(4 clients)", asyncio.run(direct_script(settings, n * 2, 4, 100)), "writes/s"))
    high = settings.model_copy(update=HIGH_LIMITS)
    record(Result("script_pipelined_limits", "the same with every limit on (set high enough to "
                  "admit all)", asyncio.run(direct_script(high, n * 2, 4, 100)), "writes/s"))
    if shutil.which("redis-benchmark"):
        record(Result("script_redis", "write script driven by redis-benchmark (C client, 4 "
                      "connections, pipelined 100)", script_on_redis(settings, n * 4), "writes/s"))


def write_runs(settings: Settings, base: str, tokens: list[str], args: argparse.Namespace,
               only: set[str]) -> None:
    """Items 2 and 7: single writes with limits off and on, alternated; the lag probe."""
    d, c = args.duration, args.connections
    token_list = ",".join(f'"{t}"' for t in tokens)
    plain, limited = WRK_WRITE % (token_list, ""), WRK_WRITE % (token_list, "/limited")
    warm_up(base, plain, c)
    warm_up(base, limited, c)
    off, on = [], []
    for i in range(args.rounds):
        vacuum(settings)
        if i == 0 and "7" in only:
            with LagProbe(settings) as probe:
                off.append(wrk(base, plain, d, c))
            probe.result()
        else:
            off.append(wrk(base, plain, d, c))
        vacuum(settings)
        on.append(wrk(base, limited, d, c))
    median_of("update", "POST /score/update, limits off", off)
    median_of("update_limits", "POST /score/update, limits on (high)", on)


def read_runs(settings: Settings, base: str, users: int, d: int, c: int) -> None:
    """Item 3: top-100, rank and around-me reads, at the ranking replica count the read load
    scales to: a first warm-up long enough for the autoscaler to act (a replica that starts
    during a measured run starves it on two cores; see docs/performance.md)."""
    from leaderboard.serve.config import deployment_options

    auto = deployment_options()["Ranker"].get("autoscaling_config") or {}
    warm_up(f"{base}/top?limit=100", None, c, math.ceil(auto.get("upscale_delay_s", 0)) + 3)
    settled()
    http("top", "GET /top?limit=100", f"{base}/top?limit=100", None, d, c)
    http("rank", "GET /rank/{id}", base, WRK_PATHS % (users, "/rank/bench-%06d"), d, c)
    http("around", "GET /around/{id}?range=10", base,
         WRK_PATHS % (users, "/around/bench-%06d?range=10"), d, c)


def deploy_apps(settings: Settings, limited: Settings, only: set[str]) -> None:
    """The apps the chosen items measure, deployed together (their replicas start side by side,
    not one app after the other), then ready: the ceilings, the app, the app with limits."""
    targets = [serve.RunTarget(build_app(settings), "leaderboard", "/", QUIET_LOGS)]
    if "1" in only:
        targets += [serve.RunTarget(Trivial.bind(), "trivial", "/trivial", QUIET_LOGS),
                    serve.RunTarget(PlainTrivial.bind(), "plain", "/plain", QUIET_LOGS)]
    if only & {"2", "7"}:
        targets.append(serve.RunTarget(build_app(limited), "limited", "/limited", QUIET_LOGS))
    serve.run_many(targets)
    base = f"http://127.0.0.1:{PORT}"
    if only & {"2", "7"}:
        wait_ready(f"{base}/limited")
    wait_ready(base)


def serve_items(settings: Settings, args: argparse.Namespace, only: set[str]) -> None:
    """Items 1-4, 6, 7 and scale-out: everything that needs Ray and Serve."""
    d, c = args.duration, args.connections
    tokens = asyncio.run(seed(settings, args.users))
    ray.init(address="local", num_cpus=8, include_dashboard=False, namespace=settings.ray_namespace,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        base = f"http://127.0.0.1:{PORT}"
        # the same graph with every limit on, set high enough that every write is admitted:
        # the difference to the plain write is the cost of admission itself
        limited = settings.model_copy(update={"board": "benchlimits", **HIGH_LIMITS})
        deploy_apps(settings, limited, only)
        print("1-4, 7. HTTP", flush=True)
        if "1" in only:
            http("ceiling", "trivial FastAPI deployment (the old ceiling)", f"{base}/trivial/",
                 None, d, c)
            # the ceiling every target divides by: a median, as the write runs it is held to
            warm_up(f"{base}/plain/", None, c)
            median_of("plain", "trivial plain-ASGI deployment (the ceiling)",
                      [wrk(f"{base}/plain/", None, d, c) for _ in range(args.rounds)])
            # each measurement with only the apps it needs deployed
            drop_apps({"trivial": None, "plain": None})
        if only & {"2", "7"}:
            quiet([settings, limited])
            write_runs(settings, base, tokens, args, only)
            drop_apps({"limited": limited})
        if "4" in only:
            quiet([settings])
            server = issue_token(settings, "bench-server", "Server", "GLOBAL", role="server")
            batch = http("batch", "POST /scores/batch, 1,000 items per request (4 connections)",
                         f"{base}/scores/batch", WRK_BATCH % (server, args.users), d, 4)
            batch.value, batch.unit = batch.value * 1000, "score updates/s"
        if "3" in only:
            quiet([settings])  # the batch run's events stored, its abandoned requests done
            read_runs(settings, base, args.users, d, c)
        if "scale" in only:
            print("issue 5: reads with 1 vs 2 ranking replicas and 1 vs 2 Redis instances",
                  flush=True)
            scale_out(settings, args.users, d, c)
        if "6" in only:
            quiet([settings])
            print("6. writer pool vs bare upsert", flush=True)
            from leaderboard.pipeline.pool import writer_actor_name

            writers = [ray.get_actor(writer_actor_name(settings, i),
                                     namespace=settings.ray_namespace)
                       for i in range(settings.writer_pool_size)]
            drain_writer_pool(settings, writers, args.drain_events,
                              max(1, args.drain_events // 5), args.rounds)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000, help="users the HTTP runs rotate over")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of which the median is kept: the plain ceiling, the limits off/on write runs "
                             "(alternated) and the writer pool against the bare upsert (alternated)")
    parser.add_argument("--drain-events", type=int, default=100_000)
    parser.add_argument("--scale-users", type=int, default=1_000_000,
                        help="the large board of item 8 (compared with 10,000 users)")
    parser.add_argument("--out", type=Path, help="Markdown file to write the table into")
    parser.add_argument("--only",
                        help="comma-separated items to run (1-8, scale), e.g. --only 6 "
                             "(default: all; with --quick all but scale)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke check: 3 s per endpoint, 100 users, small backlog and "
                             "board, no scale-out unless --only names it")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.users, args.rounds = 3, 100, 1
        args.drain_events, args.scale_users = 5_000, 20_000
    if args.only is None:  # the smoke leaves out the scale-out: three more apps, ~25 s
        args.only = ",".join(i for i in ITEMS if not (args.quick and i == "scale"))
    unknown = set(args.only.split(",")) - set(ITEMS)
    if unknown:
        parser.error(f"--only: unknown items {sorted(unknown)}; choose from {', '.join(ITEMS)}")
    return args


def main() -> None:
    args = parse_args()
    only = set(args.only.split(","))
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (scripts/bench installs it; Debian: apt-get "
                 "install wrk)")
    started = time.perf_counter()
    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(ensure_database(settings))
    if "5" in only:
        script_items(settings, args.quick)
    if only & {"1", "2", "3", "4", "6", "7", "scale"}:
        serve_items(settings, args, only)
    if "8" in only:
        print("8. memory and read latency vs board size", flush=True)
        calls = 200 if args.quick else 500
        for users in (10_000, args.scale_users):
            asyncio.run(board_size(settings, users, calls))

    table = markdown(args, time.perf_counter() - started)
    print("\n" + table)
    if args.out:
        write_report(args.out, table)
        print(f"written into {args.out}")


if __name__ == "__main__":
    main()
