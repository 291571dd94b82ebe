"""The soak's samples: RSS of every process of the service, Redis and Postgres sizes; slopes.

Processes are the descendants of the service's root process (``make run``'s), named by their
process title: Ray workers by what they run (``ray::ServeReplica:leaderboard:Gateway``,
``ray::RegionShardActor``...), the rest by their program (``gcs_server``, ``raylet``,
``haproxy``, ``agent.py``...). A process is one row, keyed by its pid.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

import asyncpg
import psutil
import redis.asyncio as aioredis

MIB = 2**20


def label(proc: psutil.Process) -> str:
    """A readable name for one process of the service."""
    cmd: list[str] = proc.cmdline()
    if not cmd:
        return str(proc.name())
    if cmd[0].startswith("ray::"):  # the title names the method running, if any: not part of it
        return cmd[0].split()[0].split(".")[0]
    prog = os.path.basename(cmd[0])
    if prog.startswith("python"):
        script = next((a for a in cmd[1:] if a.endswith(".py") or not a.startswith("-")), "python")
        return "python " + ("-m " + cmd[cmd.index("-m") + 1] if "-m" in cmd else os.path.basename(script))
    return prog


@dataclass
class Series:
    """One row of the table: a value per sample time (minutes since the load started)."""

    name: str
    kind: str  # "process" (RSS in MiB, judged), "store" (MiB, reported) or "count" (reported)
    points: dict[float, float] = field(default_factory=dict)

    def slope_per_hour(self, since: float) -> float | None:
        """Least-squares slope over the samples at or after ``since`` minutes, per hour."""
        pts = [(t, v) for t, v in self.points.items() if t >= since]
        if len(pts) < 2:
            return None
        n = len(pts)
        mt, mv = sum(t for t, _ in pts) / n, sum(v for _, v in pts) / n
        var = sum((t - mt) ** 2 for t, _ in pts)
        return 60 * sum((t - mt) * (v - mv) for t, v in pts) / var if var else None

    def growth(self, since: float) -> float:
        """Last value minus the first at or after ``since``."""
        pts = [v for t, v in sorted(self.points.items()) if t >= since]
        return pts[-1] - pts[0] if pts else 0.0


class Sampler:
    """Takes one sample of everything at a time; keeps the series."""

    def __init__(self, root_pid: int | None, redis: aioredis.Redis, pg: asyncpg.Pool,
                 prefix: str) -> None:
        self.root = psutil.Process(root_pid) if root_pid else None
        self.redis, self.pg, self.prefix = redis, pg, prefix
        self.series: dict[str, Series] = {}
        self.names: dict[int, str] = {}

    def _put(self, key: str, kind: str, t: float, value: float) -> None:
        self.series.setdefault(key, Series(key, kind)).points[t] = value

    def processes(self) -> list[psutil.Process]:
        """The root process and every descendant (Ray's own included)."""
        if self.root is None:
            return []
        try:
            return [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    async def sample(self, t: float) -> None:
        for proc in self.processes():
            try:
                name, rss = label(proc), proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if name != "ray::IDLE":
                name = self.names.setdefault(proc.pid, f"{name} [{proc.pid}]")
                self._put(name, "process", t, rss / MIB)
        await self._stores(t)

    async def _stores(self, t: float) -> None:
        info = await self.redis.info("memory")  # the whole server's, other databases included
        self._put("redis used_memory (server)", "store", t, int(info["used_memory"]) / MIB)
        counts = {"idem": 0, "bucket": 0, "user": 0}
        streams: dict[str, int] = {"stream": 0, "dead": 0}
        every: dict[str, list[str]] = {}
        async for key in self.redis.scan_iter(match=f"{self.prefix}*", count=5000):
            kind = key.removeprefix(self.prefix).split(":", 1)[0]
            every.setdefault(kind, []).append(key)
            if kind in counts:
                counts[kind] += 1
            elif kind in streams:
                streams[kind] += int(await self.redis.xlen(key))
        for kind, n in {**counts, **streams}.items():
            self._put(f"redis {kind} {'keys' if kind in counts else 'entries'}", "count", t, n)
        self._put("redis board keys (est.)", "store", t, await self._estimate(every) / MIB)
        row = await self.pg.fetchrow(
            "SELECT pg_table_size('leaderboard') AS t, pg_indexes_size('leaderboard') AS i, "
            "(SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'leaderboard') AS d")
        assert row is not None
        self._put("postgres leaderboard table", "store", t, row["t"] / MIB)
        self._put("postgres leaderboard indexes", "store", t, row["i"] / MIB)
        self._put("postgres dead tuples", "count", t, float(row["d"] or 0))

    async def _estimate(self, every: dict[str, list[str]]) -> float:
        """Bytes of this board's keys: per kind, the count times the mean MEMORY USAGE of 20."""
        total = 0.0
        for keys in every.values():
            sizes = [int(await self.redis.memory_usage(k) or 0) for k in keys[:20]]
            total += len(keys) * sum(sizes) / len(sizes)
        return total

    async def key_costs(self) -> str:
        """Per kind of key: how many, bytes each (MEMORY USAGE, mean of up to 50) and how many
        have no expiry (idempotency records and buckets must all expire)."""
        found: dict[str, list[str]] = {}
        async for key in self.redis.scan_iter(match=f"{self.prefix}*", count=5000):
            found.setdefault(key.removeprefix(self.prefix).split(":", 1)[0], []).append(key)
        parts = []
        for kind, keys in sorted(found.items()):
            sample = keys[:50]
            sizes = [int(await self.redis.memory_usage(k) or 0) for k in sample]
            forever = 0
            for i in range(0, len(keys), 1000):
                pipe = self.redis.pipeline(transaction=False)
                for k in keys[i:i + 1000]:
                    pipe.ttl(k)
                forever += sum(ttl == -1 for ttl in await pipe.execute())
            parts.append(f"{kind} {len(keys):,} keys x {sum(sizes) / len(sample):.0f} B, "
                         f"{forever:,} without expiry")
        return "redis keys: " + "; ".join(parts)

    def progress(self, t: float) -> str:
        """One line per sample: the GCS, the sum over processes, Redis and Postgres."""
        now = {s.name: s.points[t] for s in self.series.values() if t in s.points}
        gcs = next((v for k, v in now.items() if k.startswith("gcs_server")), 0.0)
        procs = sum(now[s.name] for s in self.series.values() if s.kind == "process" and s.name in now)
        return (f"minute {t:g}: gcs_server {gcs:.1f} MiB, all processes {procs:.0f} MiB, redis "
                f"{now.get('redis board keys (est.)', 0):.1f} MiB, postgres table "
                f"{now.get('postgres leaderboard table', 0):.1f} MiB")

    def table(self, since: float) -> str:
        """The Markdown table: a row per series, a column per sample, the slope from minute
        ``since`` on (the judged part of the run)."""
        times = sorted({t for s in self.series.values() for t in s.points})
        head = ("| series | " + " | ".join(f"{t:g}" for t in times)
                + f" | slope MiB/h (from minute {since:g}) |")
        lines = [head, "|" + "---|" * (len(times) + 2)]
        order = {"process": 0, "store": 1, "count": 2}
        for s in sorted(self.series.values(), key=lambda s: (order[s.kind], s.name)):
            cells = [fmt(s.points.get(t), s.kind) for t in times]
            slope = s.slope_per_hour(since)
            lines.append(f"| {s.name} | " + " | ".join(cells)
                         + f" | {'' if slope is None else f'{slope:+.1f}'} |")
        return "\n".join(lines)


def fmt(v: float | None, kind: str) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if kind == "count" else f"{v:.1f}"


def judge(sampler: Sampler, since: float, max_slope: float, noise_mib: float,
          only: str = "") -> list[str]:
    """Processes growing faster than ``max_slope`` MiB/h (and by more than ``noise_mib``)
    from minute ``since`` on (before it: the warm-up), and processes that went away before the end (restarted or died;
    Serve replicas and HAProxy excepted: the autoscaler may stop one, a reload replaces it)."""
    last = max((t for s in sampler.series.values() for t in s.points), default=0.0)
    problems = []
    for s in sampler.series.values():
        if s.kind != "process" or not re.search(only, s.name):
            continue
        slope = s.slope_per_hour(since)
        if slope is not None and slope > max_slope and s.growth(since) > noise_mib:
            problems.append(f"{s.name} grows {slope:+.1f} MiB/h from minute {since:g} on "
                            f"(+{s.growth(since):.1f} MiB; limit {max_slope:g} MiB/h)")
        # replicas: autoscaled; haproxy: Serve reloads it (a new process) when replicas change
        if last not in s.points and not s.name.startswith(("ray::ServeReplica", "haproxy")):
            problems.append(f"{s.name} went away before the end of the run")
    return problems


def now_minutes(start: float) -> float:
    return round((time.monotonic() - start) / 60, 2)
