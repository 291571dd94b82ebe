"""HTTP benchmark: the service's writes and reads next to a trivial deployment, in one run.

Starts its own Ray + Serve instance (port 18800, Redis index 12, database leaderboard_bench),
seeds users, and drives each endpoint with wrk (-t1 -c32 by default). Prints a Markdown table
and, with --out, writes it to a file.

Usage: .venv/bin/python scripts/bench.py [--duration 10] [--connections 32] [--users 1000]
                                          [--out docs/performance.md] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PORT = 18800
os.environ.update(
    {
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
        "PGDATABASE": os.environ.get("BENCH_PGDATABASE", "leaderboard_bench"),
        "PORT": str(PORT),
        "RAY_NAMESPACE": "leaderboard-bench",
        "RATE_LIMITS_ENABLED": "false",
    }
)
os.environ.setdefault("JWT_SECRET", "bench-secret-not-for-production-0123456789abcdef")

from leaderboard.serve.ray_env import apply_serve_env  # noqa: E402

apply_serve_env(PORT, stats_port=18904, metrics_port=19901)

import ray  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from ray import serve  # noqa: E402

from leaderboard.actors.shard import RegionShard, WriteCommand  # noqa: E402
from leaderboard.pipeline.db import ensure_database  # noqa: E402
from leaderboard.serve.app import build_app  # noqa: E402
from leaderboard.serve.auth import issue_token  # noqa: E402
from leaderboard.serve.config import load  # noqa: E402
from leaderboard.settings import Settings  # noqa: E402

trivial_api = FastAPI()
QUIET_LOGS = load().logging_config  # the checked-in serve_config.yaml's


@serve.deployment(max_ongoing_requests=1000, logging_config=QUIET_LOGS)
@serve.ingress(trivial_api)
class Trivial:
    """The ceiling: a FastAPI ingress that does nothing."""

    @trivial_api.get("/")
    async def noop(self) -> dict[str, bool]:
        return {"ok": True}


WRK_WRITE = """
local tokens = {%s}
local i = 0
request = function()
  i = i + 1
  local body = '{"score":' .. math.random(0, 1000000) .. '}'
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[(i %% #tokens) + 1]}
  return wrk.format("POST", "%s/score/update", headers, body)
end
"""

WRK_PATHS = """
local n = %d
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", string.format("%s", i %% n))
end
"""


@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def parse_wrk(name: str, out: str) -> Result:
    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
        return float(m.group(1)) * scale

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (
        sum(int(g) for g in sock.groups()) if sock else 0
    )
    return Result(name, rps, ms("50%"), ms("99%"), errors)


def wrk(name: str, url: str, script: str | None, duration: int, conns: int) -> Result:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if script:
            f.write(script)
            cmd[1:1] = ["-s", f.name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = parse_wrk(name, out)
    print(f"  {name}: {result.rps:,.0f} req/s  p50 {result.p50_ms:.1f} ms  "
          f"p99 {result.p99_ms:.1f} ms  errors {result.errors}", flush=True)
    return result


async def seed_credentials(settings: Settings, users: int) -> None:
    """Accounts for the seeded users (the batch endpoint looks names and regions up there)."""
    import asyncpg

    regions = settings.region_list
    conn = await asyncpg.connect(settings.dsn())
    try:
        await conn.execute("TRUNCATE credentials")
        await conn.execute(
            "INSERT INTO credentials (user_id, name, region, password_hash) "
            "SELECT u, n, r, 'x' FROM unnest($1::text[], $2::text[], $3::text[]) AS t(u, n, r)",
            [f"bench-{i:06d}" for i in range(users)], [f"Player {i}" for i in range(users)],
            [regions[i % len(regions)] for i in range(users)])
    finally:
        await conn.close()


LAG: list[Result] = []

WRK_BATCH = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local n = %d
local parts = {}
for i = 0, 999 do
  parts[#parts + 1] = string.format('{"user_id":"bench-%%06d","score":%%d}', i %% n, i)
end
wrk.body = '{"items":[' .. table.concat(parts, ",") .. ']}'
"""


async def seed(settings: Settings, users: int) -> list[str]:
    """Users spread over the regions with scores, written through the real write script."""
    r = aioredis.Redis.from_url(settings.redis_url)
    await r.flushdb()
    await r.aclose()
    regions = settings.region_list
    shards = {region: RegionShard(settings, region) for region in regions}
    tokens = []
    for i in range(users):
        region = regions[i % len(regions)]
        uid = f"bench-{i:06d}"
        await shards[region].write(WriteCommand(uid, f"Player {i}", region, "set", (i * 7919) % 100000))
        tokens.append(issue_token(settings, uid, f"Player {i}", region))
    return tokens


async def direct_writes(settings: Settings, label: str, total: int, clients: int = 50) -> Result:
    """The atomic write script called straight on Redis (no HTTP, no Ray): writes/s."""
    shard = RegionShard(settings, "EU")
    per_client = total // clients

    async def client(c: int) -> None:
        for i in range(per_client):
            await shard.write(WriteCommand(f"direct-{c}-{i % 50}", "D", "EU", "set", i))

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    rate = per_client * clients / (time.perf_counter() - start)
    print(f"  {label}: {rate:,.0f} writes/s", flush=True)
    return Result(label, rate, float("nan"), float("nan"), 0)


def batch_result(r: Result) -> Result:
    """Batches/s as score updates/s."""
    print(f"    = {r.rps * 1000:,.0f} score updates/s", flush=True)
    return Result(r.name + " [score updates/s]", r.rps * 1000, r.p50_ms, r.p99_ms, r.errors)


class LagProbe:
    """Write-to-Postgres lag under load: a probe write every 100 ms, timed until Postgres has it."""

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
        import asyncpg

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
        lags = sorted(self.lags_ms) or [float("nan")]
        p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"  write-to-Postgres lag: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
              f"({len(self.lags_ms)} probes)", flush=True)
        return Result(f"write-to-Postgres lag during the write run ({len(self.lags_ms)} probes)",
                      float("nan"), p50, p99, 0)


def median(results: list[Result]) -> Result:
    ranked = sorted(results, key=lambda r: r.rps)
    mid = ranked[len(ranked) // 2]
    return Result(f"{mid.name} (median of {len(results)})", mid.rps, mid.p50_ms, mid.p99_ms,
                  sum(r.errors for r in results))


def write_pair(base: str, tokens: str, d: int, c: int, rounds: int) -> list[Result]:
    """Writes with limits off and on, alternated so machine noise hits both alike."""
    off: list[Result] = []
    on: list[Result] = []
    for i in range(rounds):
        if i == 0:  # the first run also measures how long writes take to reach Postgres
            with LagProbe(Settings()) as probe:  # type: ignore[call-arg]
                off.append(wrk("POST /score/update, limits off", base, WRK_WRITE % (tokens, ""),
                               d, c))
            LAG.append(probe.result())
        else:
            off.append(wrk("POST /score/update, limits off", base, WRK_WRITE % (tokens, ""),
                           d, c))
        on.append(wrk("POST /score/update, limits on", base, WRK_WRITE % (tokens, "/limited"),
                      d, c))
    return [median(off), median(on)]


def markdown(results: list[Result], args: argparse.Namespace) -> str:
    ceiling = results[0].rps
    lines = [
        "| endpoint | req/s | p50 ms | p99 ms | errors | share of ceiling |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if math.isnan(r.p50_ms):  # measured without HTTP: no latency, no ceiling to compare
            lines.append(f"| {r.name} | {r.rps:,.0f} | - | - | - | - |")
            continue
        if math.isnan(r.rps):  # a latency only
            lines.append(f"| {r.name} | - | {r.p50_ms:.0f} | {r.p99_ms:.0f} | - | - |")
            continue
        share = "-" if "updates/s" in r.name else f"{r.rps / ceiling:.0%}"
        lines.append(f"| {r.name} | {r.rps:,.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.errors} "
                     f"| {share} |")
    head = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
            f"{os.cpu_count()} cores ({platform.machine()}), wrk -t1 -c{args.connections} "
            f"-d{args.duration}s, {args.users} users; one run each unless marked as a median.\n"
            f"Command: `.venv/bin/python scripts/bench.py --duration {args.duration} "
            f"--connections {args.connections} --users {args.users}`\n")
    return head + "\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of the limits off/on write runs")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="2 s per endpoint, 100 users")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.users, args.rounds = 2, 100, 1
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed (Debian: apt-get install wrk)")
    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(ensure_database(settings))
    tokens = asyncio.run(seed(settings, args.users))
    asyncio.run(seed_credentials(settings, args.users))
    n = 2000 if args.quick else 20000
    high = {"rate_limits_enabled": True, "user_rate_limit_count": 10**9,
            "region_rate_limit_per_sec": 10**9, "queue_reject_length": 10**9}
    asyncio.run(direct_writes(settings, "warm-up", n // 4))
    script_off: list[Result] = []
    script_on: list[Result] = []
    for _ in range(args.rounds):
        script_off.append(asyncio.run(direct_writes(
            settings, "write script on Redis, limits off (50 clients)", n)))
        script_on.append(asyncio.run(direct_writes(
            settings.model_copy(update=high), "write script on Redis, limits on (50 clients)", n)))
    script_results = [median(script_off), median(script_on)]
    asyncio.run(seed(settings, args.users))  # drop the direct writes' events again
    ray.init(num_cpus=8, include_dashboard=False, namespace=settings.ray_namespace,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        serve.run(Trivial.bind(), name="trivial", route_prefix="/trivial", logging_config=QUIET_LOGS)
        serve.run(build_app(settings), name="leaderboard", route_prefix="/",
                  logging_config=QUIET_LOGS)
        # the same graph with every limit on, set high enough that every write is admitted:
        # the difference to the plain write is the cost of admission itself
        limited = settings.model_copy(update={
            "board": "benchlimits", "rate_limits_enabled": True,
            "user_rate_limit_count": 10**9, "region_rate_limit_per_sec": 10**9,
            "queue_reject_length": 10**9})
        serve.run(build_app(limited), name="limited", route_prefix="/limited",
                  logging_config=QUIET_LOGS)
        base = f"http://127.0.0.1:{PORT}"
        token_list = ",".join(f'"{t}"' for t in tokens)
        n = args.users
        wrk("warm-up", f"{base}/top", None, 2, args.connections)
        d, c = args.duration, args.connections
        results = [
            wrk("trivial deployment (ceiling)", f"{base}/trivial/", None, d, c),
            *write_pair(base, token_list, d, c, args.rounds),
            batch_result(wrk("POST /scores/batch, 1,000 items (4 connections)",
                             f"{base}/scores/batch",
                             WRK_BATCH % (issue_token(settings, "bench-server", "Server",
                                                      "GLOBAL", role="server"), n), d, 4)),
            wrk("GET /top?limit=100", f"{base}/top?limit=100", None, d, c),
            wrk("GET /rank/{id}", base, WRK_PATHS % (n, "/rank/bench-%06d"), d, c),
            wrk("GET /around/{id}?range=10", base,
                WRK_PATHS % (n, "/around/bench-%06d?range=10"), d, c),
        ]
    finally:
        serve.shutdown()
        ray.shutdown()
    table = markdown(results + script_results + LAG, args)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


if __name__ == "__main__":
    main()
