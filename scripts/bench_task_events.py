"""Cost of Ray's task events per actor call: calls/s, CPU and GCS memory with and without.

Usage: ``.venv/bin/python scripts/bench_task_events.py [--calls 20000]``. Starts its own local
Ray (with the dashboard, for the state API) and, per setting, one async actor shaped like a shard (``num_cpus=0``,
``max_concurrency=1000``); reports sequential and pipelined (batches of 100 in flight) calls/s,
CPU seconds per 1,000 calls summed over the driver, the actor, the raylet and the GCS, the GCS
RSS growth, and how many of the calls Ray's state API lists. Figures: docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

import psutil
import ray
from ray.util.state import summarize_tasks

WINDOW = 100  # calls in flight in the pipelined phase


class Echo:
    """A shard-shaped async actor method: takes a list, returns a list."""

    async def write_many(self, cmds: list[int]) -> list[int]:
        return cmds

    def pid(self) -> int:
        return os.getpid()


def ray_pids(name: str) -> list[psutil.Process]:
    """This session's processes called ``name`` (children of this driver's Ray)."""
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if name in " ".join(p.cmdline()[:1])]


def cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def listed(address: str) -> int:
    """Finished ``write_many`` calls that the state API knows of (the dashboard's task table)."""
    summary = summarize_tasks(address=address, raise_on_missing_output=False)["cluster"]["summary"]
    return sum(int(v["state_counts"].get("FINISHED", 0)) for k, v in summary.items()
               if k.endswith("write_many"))


async def sequential(handle: Any, n: int) -> None:
    for i in range(n):
        await handle.write_many.remote([i])


async def pipelined(handle: Any, n: int) -> None:
    for start in range(0, n, WINDOW):
        await asyncio.gather(*(handle.write_many.remote([i]) for i in range(start, start + WINDOW)))


def run(enabled: bool, calls: int, address: str) -> dict[str, float]:
    """One setting: a fresh actor, warm-up, then both phases; figures per phase."""
    handle: Any = ray.remote(Echo).options(num_cpus=0, max_concurrency=1000, enable_task_events=enabled,
                                      name=f"echo-{enabled}").remote()
    actor = psutil.Process(ray.get(handle.pid.remote()))
    named = ray.get_actor(f"echo-{enabled}")  # what the gateway holds: a handle found by name
    asyncio.run(sequential(named, 500))
    procs = [psutil.Process(), actor, *ray_pids("gcs_server"), *ray_pids("raylet")]
    gcs = ray_pids("gcs_server")[0]
    out: dict[str, float] = {}
    rss0 = gcs.memory_info().rss
    for phase, fn in (("seq", sequential), ("pipe", pipelined)):
        c0, t0 = cpu(procs), time.perf_counter()
        asyncio.run(fn(named, calls))
        dt = time.perf_counter() - t0
        out[f"{phase}_calls_s"] = calls / dt
        out[f"{phase}_cpu_ms_per_1k"] = (cpu(procs) - c0) / calls * 1e6
    time.sleep(3)  # let the workers flush their task events to the GCS
    out["gcs_rss_growth_mib"] = (gcs.memory_info().rss - rss0) / 2**20
    out["tasks_listed"] = float(listed(address))
    ray.kill(handle)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20_000, help="calls per phase")
    args = p.parse_args()
    ctx = ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False)
    address = f"http://{ctx.dashboard_url}"  # other Ray instances may run on this machine
    try:
        seen = 0
        for enabled in (True, False):
            r = run(enabled, args.calls, address)
            r["tasks_listed"], seen = r["tasks_listed"] - seen, int(r["tasks_listed"])
            print(f"enable_task_events={enabled}: " + ", ".join(f"{k}={v:.1f}" for k, v in r.items()))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
