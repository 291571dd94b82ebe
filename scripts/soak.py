"""Soak run: the service under a steady, bounded mixed load, its memory sampled all along.

Run through ``scripts/soak`` (``--help`` lists every option). Without ``--url`` it starts the
service as ``make run`` does (``scripts/run``) on its own port, Redis index and database (both
emptied first; rate limits on, 1,000 writes a minute per player), with ``--url`` it loads a running one (pass ``--pid`` of its
``make run`` to sample its processes). Then: one write per player, the mix at ``--rate``
for ``--minutes``, a sample every ``--interval`` seconds, drain, and the checks. Exit status 1
when a request failed, a process grew faster than ``--max-slope`` MiB/h over the second half
of the run (the first half is the warm-up; ``--judge-from`` moves that line), a process went
away, or Postgres differs from Redis for a player once the streams are drained.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import psutil
import redis.asyncio as aioredis
from soak_load import Conn, Load, parse_mix, region_of
from soak_sample import Sampler, judge, now_minutes

from leaderboard.keys import Keys
from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
START_ATTEMPTS = 3  # Ray gives its raylet 30 s to register: a loaded machine may miss that


class StartupFailed(Exception):
    """The service exited before answering ``/health``."""


def options() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="load a running service (default: start one like `make run`)")
    p.add_argument("--pid", type=int, help="with --url: the service's root process, to sample")
    p.add_argument("--minutes", type=float, default=10.0, help="duration of the load")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--rate", type=float, default=250.0, help="requests per second")
    p.add_argument("--mix", default="write=8,rank=8,top=4", help="weights of write, rank, top")
    p.add_argument("--users", type=int, default=500, help="players")
    p.add_argument("--connections", type=int, default=20, help="HTTP connections")
    p.add_argument("--idem-share", type=float, default=0.5,
                   help="share of writes sent with an Idempotency-Key")
    p.add_argument("--max-slope", type=float, default=30.0,
                   help="MiB/h a process may grow over the 2nd half (30 = 5 MiB per 10 min)")
    p.add_argument("--noise-mib", type=float, default=3.0,
                   help="growth over the 2nd half below which a slope is noise")
    p.add_argument("--judge-from", type=float,
                   help="minute from which growth is judged (default: half the run; before it, "
                        "the warm-up)")
    p.add_argument("--judge", default="",
                   help="judge only processes whose name matches this regex (default: all)")
    p.add_argument("--port", type=int, default=int(env("SOAK_HTTP_PORT", "18900")))
    p.add_argument("--redis-url", default=env("SOAK_REDIS_URL", "redis://127.0.0.1:6379/11"))
    p.add_argument("--pgdatabase", default=env("SOAK_PGDATABASE", "leaderboard_soak"))
    p.add_argument("--board", default=env("BOARD", "default"))
    return p.parse_args()


def service_env(args: argparse.Namespace, state: Path) -> dict[str, str]:
    """``make run``'s environment on the soak's own port (HAProxy's and Ray's metrics ports
    derived from it), Redis index, database and namespace."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_SERVE_HAPROXY", "DATABASE_URL"))}
    return {**env, "PORT": str(args.port), "REDIS_URL": args.redis_url,
            "PGDATABASE": args.pgdatabase, "RAY_NAMESPACE": f"soak-{args.port}",
            "STATE_DIR": str(state), "BOARD": args.board,
            # limits on (buckets are a growth source to watch), generous enough for the mix
            "RATE_LIMITS_ENABLED": "true", "USER_RATE_LIMIT_COUNT": "1000",
            "RAY_SERVE_HAPROXY_STATS_PORT": str(args.port + 104),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(args.port + 1101),
            # Ray's metrics agent too: its default (8090) is make run's, or another soak's
            "METRICS_EXPORT_PORT": str(args.port + 1102)}


async def empty_stores(settings: Settings) -> None:
    """The soak's own Redis index and database start empty: the service migrates the schema
    afresh (every table goes, ``schema_version`` included), so sizes start from zero."""
    redis = aioredis.Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()
    try:
        conn = await asyncpg.connect(settings.dsn())
    except asyncpg.InvalidCatalogNameError:
        return  # the service creates it
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def wait_healthy(base: Conn, seconds: float, service: psutil.Process | None) -> None:
    """Until ``/health`` answers 200 and not warming (and the service has not exited)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if service is not None and (not service.is_running()
                                    or service.status() == psutil.STATUS_ZOMBIE):
            raise StartupFailed
        try:
            status, body = await base.request("GET", "/health")
            if status == 200 and b'"warming":false' in body.replace(b" ", b""):
                return
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            pass
        await asyncio.sleep(1)
    raise SystemExit(f"soak: no healthy answer from port {base.port} in {seconds:.0f}s")


async def drained(redis: aioredis.Redis, keys: Keys, seconds: float) -> int:
    """Waits until every shard stream is empty (all stored in Postgres); the events left."""
    deadline = time.monotonic() + seconds
    while True:
        left = 0
        async for key in redis.scan_iter(match=keys.stream("*"), count=1000):
            left += int(await redis.xlen(key))
        if left == 0 or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


async def differences(redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, users: list[str]) -> list[str]:
    """Players whose (score, version) in Postgres is not Redis's."""
    rows = {r["user_id"]: (int(r["score"]), int(r["version"])) for r in await pg.fetch(
        "SELECT user_id, score, version FROM leaderboard WHERE user_id = ANY($1)", users)}
    pipe = redis.pipeline(transaction=False)
    for u in users:
        pipe.hmget(keys.user(u), "score", "version")
    found = await pipe.execute()
    return [u for u, (score, version) in zip(users, found, strict=True)
            if score is None or rows.get(u) != (int(score), int(version))]


async def soak(args: argparse.Namespace, settings: Settings, root_pid: int | None) -> list[str]:
    """Load, samples, drain and checks; the list of problems (empty: passed)."""
    target = urlsplit(args.url or f"http://127.0.0.1:{args.port}")
    host, port = target.hostname or "127.0.0.1", target.port or 80
    service = psutil.Process(root_pid) if root_pid else None
    await wait_healthy(Conn(host, port), 240, service)  # the service has created the database
    redis = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    pg = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=2)
    assert pg is not None
    keys = Keys(settings.board)
    try:
        users = [f"soak-{i}" for i in range(args.users)]
        tokens = {u: issue_token(settings, u, u, region_of(i), ttl_seconds=int(args.minutes * 60) + 3600)
                  for i, u in enumerate(users)}
        load = Load(host, port, tokens, parse_mix(args.mix), args.idem_share)
        seeded = await load.seed(min(args.connections, 16))
        print(f"seed: {seeded.summary()}")
        if seeded.total_ok < len(users):
            return [f"seed: only {seeded.total_ok} of {len(users)} players could be written"]
        sampler = Sampler(root_pid, redis, pg, keys.prefix)
        start, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
        await sampler.sample(0.0)
        task = asyncio.create_task(load.run(args.rate, args.minutes * 60, args.connections))
        tick = 1
        while True:
            await asyncio.wait({task}, timeout=max(0.0, start + tick * args.interval - time.monotonic()))
            if task.done():
                break
            t = now_minutes(start)
            await sampler.sample(t)
            print(f"{sampler.progress(t)}; requests {load.tally.total_ok} ok, "
                  f"{load.tally.total_failed} failed")
            tick += 1
        await task
        await sampler.sample(now_minutes(start))  # the end of the load
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        since = args.minutes / 2 if args.judge_from is None else args.judge_from
        print(sampler.table(since))
        print(load.tally.summary())
        print(await sampler.key_costs())
        print(f"load generator CPU: {cpu.ru_utime + cpu.ru_stime - cpu0.ru_utime - cpu0.ru_stime:.1f} s "
              f"for {time.monotonic() - start:.0f} s of load")
        problems = judge(sampler, since, args.max_slope, args.noise_mib, args.judge)
        if load.tally.total_failed:
            problems.append(f"{load.tally.total_failed} requests failed")
        left = await drained(redis, keys, 120)
        diff = await differences(redis, pg, keys, users)
        print(f"drained: {left} events left in the streams; Postgres differs from Redis for "
              f"{len(diff)} of {len(users)} players {diff[:5]}")
        if left or diff:
            problems.append(f"not drained ({left} events) or Postgres != Redis ({len(diff)} players)")
        return problems
    finally:
        await redis.aclose()
        await pg.close()


def start_service(args: argparse.Namespace, state: Path) -> subprocess.Popen[bytes]:
    """``scripts/run`` in its own session, its output in ``state/run.log``."""
    log = (state / "run.log").open("ab")
    return subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=service_env(args, state),
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_service(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to ``scripts/run`` (it stops Serve, Ray and its services); then whatever is left
    of the processes it started, by pid."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:  # already gone (it exited during start-up)
        children = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def run_spawned(args: argparse.Namespace, settings: Settings, state: Path) -> list[str]:
    """Start the service (again, if it exits during start-up), soak it, stop it."""
    for attempt in range(1, START_ATTEMPTS + 1):
        proc = start_service(args, state)
        print(f"soak: service on port {args.port} (pid {proc.pid}), log {state / 'run.log'}")
        try:
            return asyncio.run(soak(args, settings, proc.pid))
        except StartupFailed:
            print(f"soak: the service exited during start-up (attempt {attempt}), see its log")
        finally:
            stop_service(proc)
    return [f"the service did not start in {START_ATTEMPTS} attempts"]


def main() -> None:
    args = options()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.url:  # the running service's stores and secret: from the environment, like make run
        secret = os.environ.get("JWT_SECRET") or (
            ROOT / os.environ.get("STATE_DIR", ".data") / "jwt_secret").read_text().strip()
        settings = Settings(JWT_SECRET=secret)  # type: ignore[call-arg,arg-type]
        problems = asyncio.run(soak(args, settings, args.pid))
    else:
        if args.redis_url.rstrip("/").rsplit("/", 1)[-1] in ("", "0") or args.pgdatabase == "leaderboard":
            raise SystemExit("soak: refusing to empty Redis index 0 or the service's database")
        state = Path(tempfile.mkdtemp(prefix="lb-soak-"))
        secret = secrets.token_urlsafe(48)
        os.environ.pop("DATABASE_URL", None)
        settings = Settings(JWT_SECRET=secret, REDIS_URL=args.redis_url,  # type: ignore[call-arg,arg-type]
                            PGDATABASE=args.pgdatabase, BOARD=args.board)
        asyncio.run(empty_stores(settings))
        os.environ["JWT_SECRET"] = secret
        problems = run_spawned(args, settings, state)
    for p in problems:
        print(f"FAIL: {p}")
    print("soak: passed" if not problems else "soak: failed")
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
