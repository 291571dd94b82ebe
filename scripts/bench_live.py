"""Live streams under load: many watchers of one view while writes run (issue 12, a first
measurement; ``scripts/bench live``).

Starts its own Ray + Serve instance (port ``LIVE_BENCH_HTTP_PORT``, Redis
``LIVE_BENCH_REDIS_URL``, database ``LIVE_BENCH_PGDATABASE``; emptied), creates a board, then
runs the same paced writes (each a new best score, so each shows at the top) twice: without
watchers, and with ``--watchers`` streams of that view plus ``--others`` of other views. It
reports the write and read latency of both runs, the gateway replica's CPU, and for the watched
run the time from a write's answer to the first event that shows it, on a sample of watchers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from multiprocessing.connection import Connection
from typing import Any

PORT = int(os.environ.get("LIVE_BENCH_HTTP_PORT", "18830"))
os.environ.update({
    "REDIS_URL": os.environ.get("LIVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
    "PGDATABASE": os.environ.get("LIVE_BENCH_PGDATABASE", "leaderboard_live_bench"),
    "PORT": str(PORT), "RAY_NAMESPACE": "leaderboard-live-bench", "RATE_LIMITS_ENABLED": "false",
})
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("JWT_SECRET", "bench-secret-not-for-production-0123456789abcdef")

from leaderboard.serve.ray_env import haproxy_dir, serve_env  # noqa: E402

haproxy_dir(PORT).mkdir(parents=True, exist_ok=True)
os.environ.update(serve_env(
    PORT, stats_port=int(os.environ.get("LIVE_BENCH_STATS_PORT", str(PORT + 104))),
    metrics_port=int(os.environ.get("LIVE_BENCH_METRICS_PORT", str(PORT + 1101)))))

import httpx  # noqa: E402
import psutil  # noqa: E402
import ray  # noqa: E402
import redis  # noqa: E402
from ray import serve  # noqa: E402

from leaderboard.pipeline.db import ensure_database  # noqa: E402
from leaderboard.serve.app import build_app  # noqa: E402
from leaderboard.serve.auth import issue_token  # noqa: E402
from leaderboard.serve.config import load  # noqa: E402
from leaderboard.settings import Settings  # noqa: E402

BOARD = f"live{int(time.time())}"  # a new board each run (the database is kept)
REGIONS = ("EU", "NA", "ASIA")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Watcher:
    """One SSE connection over a raw socket; ``parse`` ones record (arrival, top score), the
    others only count events (the client must not be what limits the run)."""

    def __init__(self, path: str, parse: bool) -> None:
        self.path, self.parse = path, parse
        self.seen: list[tuple[float, int]] = []
        self.events = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT, limit=1 << 20)
        writer.write(f"GET {self.path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
                     .encode())
        await writer.drain()
        try:
            while True:
                if not self.parse:
                    chunk = await reader.read(1 << 16)
                    if not chunk:
                        return
                    self.events += chunk.count(b"\ndata: ")
                    if self.events:
                        self.ready.set()
                    continue
                line = await reader.readline()
                if not line:
                    return
                if line.startswith(b"data: "):
                    self.events += 1
                    self.ready.set()
                    entries = json.loads(line[6:])["top"]["entries"]
                    self.seen.append((time.monotonic(), entries[0]["score"] if entries else 0))
        finally:
            writer.close()


def watch_main(paths: list[str], sample: int, conn: Connection) -> None:
    """The watchers' own process: opens every stream, says ready, reports when told to stop."""
    asyncio.run(_watch(paths, sample, conn))


async def _watch(paths: list[str], sample: int, conn: Connection) -> None:
    watchers = [Watcher(p, i < sample) for i, p in enumerate(paths)]
    tasks = [asyncio.create_task(w.run()) for w in watchers]
    await asyncio.wait_for(asyncio.gather(*(w.ready.wait() for w in watchers)), 120)
    conn.send("ready")
    started = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    elapsed = time.monotonic() - started
    for task in tasks:
        task.cancel()
    conn.send(([w.seen for w in watchers if w.parse],
               statistics.mean(w.events for w in watchers) / elapsed))


def top_cpu(procs: list[psutil.Process], n: int = 8) -> list[tuple[float, str]]:
    """The ``n`` processes that used the most CPU since the last look, by title."""
    out = []
    for p in procs:
        try:
            title = " ".join(p.cmdline() or [p.name()])[:40].strip()
            out.append((p.cpu_percent(None), title))
        except psutil.Error:
            pass
    return sorted(out, reverse=True)[:n]


def gateway_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"])
            if "ServeReplica:live:Gateway" in " ".join(p.info["cmdline"] or [])]


class RawHttp:
    """One keep-alive HTTP/1.1 connection, spoken by hand: httpx would cost the load generator
    more CPU than the service it measures."""

    def __init__(self) -> None:
        self._io: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      token: str = "") -> tuple[int, bytes]:
        if self._io is None:
            self._io = await asyncio.open_connection("127.0.0.1", PORT)
        reader, writer = self._io
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: "
                     f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        return status, await reader.readexactly(length)


async def writes(tokens: list[str], rate: int, seconds: float,
                 start_score: int) -> tuple[list[tuple[float, int]], list[float], list[float]]:
    """Paced writes (increasing scores) and a read every 10th tick: (answer time, score) of each
    write, write latencies, read latencies."""
    answered: list[tuple[float, int]] = []
    write_ms: list[float] = []
    read_ms: list[float] = []
    idle = [RawHttp() for _ in range(64)]

    async def one(i: int) -> None:
        conn = idle.pop() if idle else RawHttp()
        score = start_score + i
        t0 = time.monotonic()
        status, text = await conn.request("POST", f"/boards/{BOARD}/scores",
                                          b'{"score":%d}' % score, tokens[i % len(tokens)])
        assert status == 200, text
        done = time.monotonic()
        write_ms.append((done - t0) * 1000)
        answered.append((done, score))
        if i % 10 == 0:
            t0 = time.monotonic()
            status, _ = await conn.request("GET", f"/boards/{BOARD}/top?limit=10")
            assert status == 200
            read_ms.append((time.monotonic() - t0) * 1000)
        idle.append(conn)

    start = time.monotonic()
    if rate <= 0:  # as fast as 32 clients go, one request at a time each
        counter = iter(range(1 << 62))

        async def client() -> None:
            while time.monotonic() - start < seconds:
                await one(next(counter))

        await asyncio.gather(*(client() for _ in range(32)))
        return answered, write_ms, read_ms
    tasks = []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return answered, write_ms, read_ms


def visible_after(answered: list[tuple[float, int]], seen: list[tuple[float, int]]) -> list[float]:
    """Per write, ms from its answer to the first event whose top score reaches it."""
    out = []
    for at, score in answered:
        shown = next((t for t, top in seen if top >= score), None)
        if shown is not None:
            out.append(max(0.0, shown - at) * 1000)
    return out


async def phase(base: str, tokens: list[str], args: argparse.Namespace, watched: bool,
                start_score: int) -> dict[str, Any]:
    procs = gateway_processes()
    seen: list[list[tuple[float, int]]] = []
    rate: float | None = None
    spawn = multiprocessing.get_context("spawn")  # not a fork of a process running Ray
    conn, child = spawn.Pipe()
    watchers = None
    if watched:
        paths = [f"/boards/{BOARD}/live?region=GLOBAL&limit=10"] * args.watchers
        paths += [f"/boards/{BOARD}/live?region={REGIONS[i % 3]}&limit={5 + i % 20}"
                  for i in range(args.others)]
        watchers = spawn.Process(target=watch_main, args=(paths, args.sample, child))
        watchers.start()
        assert conn.recv() == "ready"
        procs.append(psutil.Process(watchers.pid))
    everyone = [psutil.Process(p.pid) for p in psutil.process_iter()]
    for p in [*procs, *everyone]:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    t0 = time.monotonic()
    answered, write_ms, read_ms = await writes(tokens, args.rate, args.seconds, start_score)
    await asyncio.sleep(1.0)
    cpu = [p.cpu_percent(None) for p in procs]
    print(f"busiest processes, watchers={watched}: " + ", ".join(
        f"{name} {pc:.0f}%" for pc, name in top_cpu(everyone)), flush=True)
    elapsed = time.monotonic() - t0
    live = json.loads((await RawHttp().request("GET", "/health"))[1])["live"]
    if watchers is not None:
        conn.send("stop")
        seen, rate = conn.recv()
        watchers.join()
    lat = [v for s in seen for v in visible_after(answered, s)]
    return {"watchers": args.watchers + args.others if watched else 0,
            "writes/s": len(answered) / (elapsed - 1.0),
            "write p50 ms": pct(write_ms, 0.5), "write p99 ms": pct(write_ms, 0.99),
            "read p99 ms": pct(read_ms, 0.99), "gateway CPU %": sum(cpu[:len(cpu) - watched]),
            "watchers' client CPU %": cpu[-1] if watched else None,
            "write→event p50 ms": pct(lat, 0.5) if watched else None,
            "write→event p99 ms": pct(lat, 0.99) if watched else None,
            "events/watcher/s": rate,
            "view reads/s (all views)": live["view_reads"] / elapsed if watched else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--others", type=int, default=100)
    parser.add_argument("--sample", type=int, default=20, help="watchers that parse events")
    parser.add_argument("--rate", type=int, default=200,
                        help="writes per second (0: as fast as 32 clients go)")
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    settings = Settings()  # type: ignore[call-arg]
    redis.Redis.from_url(settings.redis_url).flushdb()
    asyncio.run(ensure_database(settings))
    ray.init(address="local", num_cpus=8, include_dashboard=False,
             namespace=settings.ray_namespace, log_to_driver=False)
    # Ray runs its workers at nice 15: the load generators get the same share, not more
    os.nice(15)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        serve.run(build_app(settings), name="live", route_prefix="/",
                  logging_config=load().logging_config)
        base = f"http://127.0.0.1:{PORT}"
        admin = issue_token(settings, "ops", "Ops", "GLOBAL", role="admin")
        r = httpx.post(f"{base}/boards", json={"id": BOARD}, timeout=30,
                       headers={"Authorization": f"Bearer {admin}"})
        assert r.status_code == 201, r.text
        tokens = [issue_token(settings, f"w{i}", f"Writer {i}", REGIONS[i % 3])
                  for i in range(200)]
        rows = [asyncio.run(phase(base, tokens, args, False, 1_000_000_000)),
                asyncio.run(phase(base, tokens, args, True, 2_000_000_000))]
    finally:
        serve.shutdown()
        ray.shutdown()
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join("-" if row[k] is None else f"{row[k]:.1f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
