"""CPU time per request of every process on each path: the inputs of docs/capacity.md.

Usage: capacity.py [--duration S] [--users N] [--paths TEXT] [--out FILE]

Starts its own Ray + Serve instance (port CAP_HTTP_PORT, default 18770), its own throwaway
redis-server (so Redis's CPU is ours alone) and database ``leaderboard_capacity``; drives each
path with wrk for ``--duration`` seconds and reads, from the processes' CPU counters, how much
CPU each process (gateway replica, ranking replica, shard actors, writers, HAProxy, Ray's own,
Redis, the Postgres backends of our database) spent per request. Writes are counted until the
writers drained them into Postgres. CPU counters are not disturbed by other load on the machine
the way throughput is, so these figures hold on a busy machine too (cache effects aside).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import bench_wrk
import psutil
from bench_wrk import WRK_BATCH, WRK_PATHS, WRK_WRITE, wait_ready

PORT = int(os.environ.get("CAP_HTTP_PORT", "18770"))
GROUPS = ("gateway", "ranker", "shards", "writers", "haproxy", "serve", "ray", "redis",
          "postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayRedis:
    """redis-server on a free port, nothing on disk; its CPU is ours alone."""

    def __enter__(self) -> ThrowawayRedis:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lb-cap-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True, check=False).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def group_of(proc: psutil.Process) -> str | None:
    """Which part of the service a process of our Ray tree is."""
    try:
        name = " ".join(proc.cmdline()[:1]) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    for needle, group in (("Gateway", "gateway"), ("Ranker", "ranker"),
                          ("RegionShardActor", "shards"), ("ray::Writer", "writers"),
                          ("haproxy", "haproxy"), ("ServeController", "serve"),
                          ("ProxyActor", "serve"), ("HAProxyManager", "serve")):
        if needle in name:
            return group
    return "ray"


@dataclass
class Sampler:
    """CPU seconds per group, read from every process of our tree plus Redis and Postgres."""

    redis_pid: int
    database: str

    def pg_pids(self) -> list[int]:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", os.environ.get("PGUSER", "postgres"), "-At", "-c",
             f"SELECT pid FROM pg_stat_activity WHERE datname = '{self.database}'", "postgres"],
            capture_output=True, text=True, check=False).stdout
        return [int(p) for p in out.split()]

    def sample(self) -> dict[str, float]:
        cpu: dict[str, float] = defaultdict(float)
        me = psutil.Process()
        # the throwaway redis-server is our child too: counted once, as "redis"
        procs = [(p, group_of(p)) for p in me.children(recursive=True)
                 if p.pid != self.redis_pid]
        procs += [(psutil.Process(self.redis_pid), "redis")]
        procs += [(psutil.Process(pid), "postgres") for pid in self.pg_pids()]
        for proc, group in procs:
            if group is None or proc.pid == me.pid:
                continue
            try:
                t = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            cpu[group] += t.user + t.system
            if group == "ray" and DETAIL:
                cpu["ray:" + _program(proc)] += t.user + t.system
        return dict(cpu)


DETAIL = os.environ.get("CAP_DETAIL") == "1"  # also print the "ray" group by program


def _program(proc: psutil.Process) -> str:
    try:
        return os.path.basename(proc.cmdline()[0])[:40] or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, IndexError):
        return "?"


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    keys = set(GROUPS) | {k for k in after if k.startswith("ray:")}
    return {g: max(0.0, after.get(g, 0.0) - before.get(g, 0.0)) for g in keys}





def wrk(url: str, script: str, duration: int, conns: int) -> tuple[int, int]:
    """(requests completed, failed requests) of one wrk run."""
    run = bench_wrk.wrk(url, script, duration, conns)
    return round(run.rps * duration), run.errors


async def seed(settings: object, users: int) -> list[str]:
    """Users written through the real write script, their accounts, and their tokens."""
    import asyncpg
    import redis.asyncio as aioredis

    from leaderboard.actors.shard import RegionShard, WriteCommand
    from leaderboard.keys import Keys
    from leaderboard.serve.auth import issue_token
    from leaderboard.settings import Settings
    from leaderboard.shards import Topology

    assert isinstance(settings, Settings)
    regions = settings.region_list
    cmds = [WriteCommand(f"bench-{i:06d}", f"Player {i}", regions[i % len(regions)], "set",
                         (i * 7919) % 100000) for i in range(users)]
    topology = Topology.of(settings)
    by_shard: dict[str, list[WriteCommand]] = defaultdict(list)
    for cmd in cmds:
        by_shard[topology.shard_for(cmd.region, cmd.user_id)].append(cmd)
    for shard, mine in by_shard.items():
        await RegionShard(settings, shard).write_many(mine)
    r = aioredis.Redis.from_url(settings.redis_url)
    await r.set(Keys(settings.board).epoch, "capacity")
    await r.aclose()
    conn = await asyncpg.connect(settings.dsn())
    try:
        await conn.execute("TRUNCATE leaderboard, credentials")
        await conn.executemany(
            "INSERT INTO credentials (user_id, name, region, password_hash) "
            "VALUES ($1, $2, $3, 'x')", [(c.user_id, c.name, c.region) for c in cmds])
    finally:
        await conn.close()
    return [issue_token(settings, c.user_id, c.name, c.region) for c in cmds]


async def backlog(url: str) -> int:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    try:
        return sum([await r.xlen(k) async for k in r.scan_iter("*:stream:*")])
    finally:
        await r.aclose()


def drained(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while asyncio.run(backlog(url)) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("the writers did not drain the streams")
        time.sleep(0.2)


def idle(sampler: Sampler, seconds: float) -> dict[str, float]:
    """CPU seconds per second each group spends with no request at all (background loops)."""
    before = sampler.sample()
    time.sleep(seconds)
    return {g: v / seconds for g, v in diff(sampler.sample(), before).items()}


def measure(sampler: Sampler, label: str, run: Callable[[], tuple[int, int]],
            redis_url: str, background: dict[str, float]) -> dict[str, object]:
    """CPU per group over the run (until drained), less the groups' idle background."""
    before = sampler.sample()
    start = time.perf_counter()
    done, errors = run()
    drained(redis_url)
    seconds = time.perf_counter() - start
    used = {g: max(0.0, v - background.get(g, 0.0) * seconds)
            for g, v in diff(sampler.sample(), before).items()}
    print(f"  {label}: {done:,} requests, {errors} errors, {seconds:.1f} s", flush=True)
    for name, v in sorted(used.items(), key=lambda kv: -kv[1]):
        if name.startswith("ray:") and v > 0:
            print(f"    {name}: {v * 1e6 / max(1, done):,.0f} µs per request", flush=True)
    return {"label": label, "requests": done, "errors": errors, "cpu": used,
            "seconds": seconds}


def table(rows: list[dict[str, object]], background: dict[str, float]) -> str:
    """Marginal CPU µs per request per group, and the idle background in ms per second."""
    head = "| path | requests/s | " + " | ".join(GROUPS) + " | total |"
    lines = [head, "|---|---:|" + "---:|" * (len(GROUPS) + 1)]
    for row in rows:
        n = max(1, int(row["requests"]))  # type: ignore[call-overload]
        cpu: dict[str, float] = row["cpu"]  # type: ignore[assignment]
        rate = n / float(row["seconds"])  # type: ignore[arg-type]
        cells = [f"{cpu[g] * 1e6 / n:,.0f}" for g in GROUPS]
        total = sum(cpu.values()) * 1e6 / n
        lines.append(f"| {row['label']} | {rate:,.0f} | " + " | ".join(cells)
                     + f" | {total:,.0f} |")
    idle_cells = [f"{background[g] * 1e3:,.0f}" for g in GROUPS]
    lines.append("| idle background (CPU ms per second) | - | " + " | ".join(idle_cells)
                 + f" | {sum(background.values()) * 1e3:,.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--idle", type=float, default=10, help="seconds of the idle baseline")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--paths", default="", help="only paths whose label holds this text "
                        "(e.g. 'score/update'); all by default")
    args = parser.parse_args()
    with ThrowawayRedis() as redis_server:
        run(args, redis_server)


def run(args: argparse.Namespace, redis_server: ThrowawayRedis) -> None:
    redis_url = f"redis://127.0.0.1:{redis_server.port}/0"
    os.environ.update({"REDIS_URL": redis_url, "PGDATABASE": "leaderboard_capacity",
                       "PORT": str(PORT), "RAY_NAMESPACE": "leaderboard-capacity",
                       "RATE_LIMITS_ENABLED": "false"})
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("JWT_SECRET", "capacity-secret-not-for-production-0123456789abcdef")
    from leaderboard.serve.ray_env import haproxy_dir, serve_env

    haproxy_dir(PORT).mkdir(parents=True, exist_ok=True)
    os.environ.update(serve_env(PORT, stats_port=PORT + 104, metrics_port=PORT + 1101))
    import ray
    from ray import serve

    from leaderboard.pipeline.db import ensure_database
    from leaderboard.serve.app import build_app
    from leaderboard.serve.auth import issue_token
    from leaderboard.serve.config import deployment_options, load
    from leaderboard.settings import Settings

    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(ensure_database(settings))
    tokens = asyncio.run(seed(settings, args.users))
    sampler = Sampler(redis_server.proc.pid, settings.database_name())
    ray.init(address="local", num_cpus=8, include_dashboard=False,
             namespace=settings.ray_namespace, log_to_driver=False)
    rows = []
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        # one replica of each, fixed: an autoscaler starting a replica mid-measurement would
        # count its start-up (seconds of CPU) as background or as a request's cost
        opts = deployment_options()
        ranker = {k: v for k, v in opts["Ranker"].items() if k != "autoscaling_config"}
        options = {"Ranker": {**ranker, "num_replicas": 1},
                   "Gateway": {**opts["Gateway"], "num_replicas": 1}}
        serve.run(build_app(settings, options), name="leaderboard", route_prefix="/",
                  logging_config=load().logging_config)
        base = f"http://127.0.0.1:{PORT}"
        wait_ready(base, timeout=90)
        d, c, n = args.duration, args.connections, args.users
        token_list = ",".join(f'"{t}"' for t in tokens)
        server = issue_token(settings, "cap-server", "Server", "GLOBAL", role="server")
        paths = [
            ("POST /score/update", lambda: wrk(base, WRK_WRITE % (token_list, ""), d, c)),
            ("POST /scores/batch (per item)", lambda: scaled(
                wrk(f"{base}/scores/batch", WRK_BATCH % (server, n), d, 4), 1000)),
            ("GET /top?limit=100", lambda: wrk(base, WRK_PATHS % (1, "/top?limit=100"), d, c)),
            ("GET /rank/{id}", lambda: wrk(base, WRK_PATHS % (n, "/rank/bench-%06d"), d, c)),
            ("GET /around/{id}?range=10", lambda: wrk(
                base, WRK_PATHS % (n, "/around/bench-%06d?range=10"), d, c)),
        ]
        wrk(base, WRK_PATHS % (n, "/rank/bench-%06d"), 2, c)  # warm-up
        drained(redis_url)
        background = idle(sampler, args.idle)
        for label, go in paths:
            if args.paths not in label:
                continue
            rows.append(measure(sampler, label, go, redis_url, background))
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    out = table(rows, background)
    print("\nCPU microseconds per request (per item for the batch), by process, idle "
          "background subtracted:\n\n" + out)
    if args.out:
        write_report(args.out, out)


def scaled(result: tuple[int, int], items: int) -> tuple[int, int]:
    return result[0] * items, result[1]


def write_report(path: Path, table_md: str) -> None:
    begin, end = "<!-- capacity:begin -->", "<!-- capacity:end -->"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = (f"{begin}\nMeasured {stamp}: `scripts/capacity {' '.join(sys.argv[1:])}` "
             f"(CPU µs per request).\n\n{table_md}{end}")
    text = path.read_text() if path.exists() else "# Capacity\n\n"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
