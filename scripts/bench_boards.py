"""Boards and seasons, measured (issue 10): ``scripts/bench boards [--quick] [--out FILE]``.

Starts its own Ray + Serve (as ``scripts/bench.py``: port 18800, Redis index 10, database
``leaderboard_bench``, both emptied) and measures:

  B1. single writes (POST /boards/{b}/scores) spread over 1,000 boards versus all on one board;
  B2. batch writes (1,000 items per request) spread over 1,000 boards versus one;
  B3. creating 1,000 boards over HTTP (boards/s, 8 connections);
  B4. Redis memory per entry with 1,000 boards x 1,000 entries, next to one board of 1,000,000;
  B5. a season of 100,000 entries rolling over: from the boundary until the archive is complete
      in Postgres and until its keys are freed; write p99 across the boundary versus away;
  B6. past-season top-100 and rank p50/p99 next to the live ones;
  B7. (issue 11) friends' ranks with 100 ids, and a page deep in the 1,000,000-entry board of
      B4 (``from_rank=900000``) next to its first page;
  B8. (issue 11) what rank's new fields cost: the rank script and answer before and after
      (``scripts/bench_rank_fields.py``), against a whole rank read.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import bench  # sets the bench environment (ports, Redis index, database) before Ray starts
import httpx
import ray
import redis.asyncio as aioredis
from bench import PORT, QUIET_LOGS, Result, median_of, quiet, record, seed, user_id
from bench_wrk import wait_ready, warm_up, wrk
from ray import serve

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.board_cache import BoardCache
from leaderboard.keys import Keys
from leaderboard.pipeline.db import create_pool, ensure_database
from leaderboard.serve.app import build_app
from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings
from leaderboard.shards import Topology

MANY = 1000

WRK_BOARD_WRITE = """
local tokens = {%s}
local boards = %d
local i = 0
request = function()
  i = i + 1
  local body = '{"score":' .. math.random(0, 1000000) .. '}'
  local headers = {["Content-Type"] = "application/json",
                   ["Authorization"] = "Bearer " .. tokens[(i %% #tokens) + 1]}
  return wrk.format("POST", string.format("/boards/%s/scores", i %% boards), headers, body)
end
"""

WRK_BOARD_BATCH = """
local boards = %d
local users = %d
local n = 0
request = function()
  n = n + 1
  local parts = {}
  for i = 0, 999 do
    parts[#parts + 1] = string.format('{"user_id":"bench-%%06d","score":%%d,"board":"%s"}',
                                      (n * 1000 + i) %% users, i, (n + i) %% boards)
  end
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %s"}
  return wrk.format("POST", "/scores/batch", headers, '{"items":[' .. table.concat(parts, ",") .. ']}')
end
"""

def admin(settings: Settings) -> dict[str, str]:
    token = issue_token(settings, "bench-ops", "Ops", "GLOBAL", role="admin")
    return {"Authorization": f"Bearer {token}"}


def create_boards(base: str, settings: Settings, ids: list[str], **fields: Any) -> float:
    """Create boards over 8 connections; boards/s."""
    async def run() -> float:
        headers = admin(settings)
        sem = asyncio.Semaphore(8)
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            async def one(bid: str) -> None:
                async with sem:
                    r = await client.post("/boards", json={"id": bid, **fields}, headers=headers)
                    assert r.status_code == 201, r.text
            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in ids))
            return len(ids) / (time.perf_counter() - started)
    return asyncio.run(run())


def spread_writes(base: str, tokens: list[str], args: argparse.Namespace) -> None:
    """B1: single writes over 1,000 boards versus one, alternated rounds."""
    listed = ",".join(f'"{t}"' for t in tokens)
    one = WRK_BOARD_WRITE % (listed, 1, "one")
    many = WRK_BOARD_WRITE % (listed, MANY, "m%04d")
    warm_up(base, one, args.connections)
    warm_up(base, many, args.connections)
    one_runs, many_runs = [], []
    for _ in range(args.rounds):
        one_runs.append(wrk(base, one, args.duration, args.connections))
        many_runs.append(wrk(base, many, args.duration, args.connections))
    median_of("b_one", "POST /boards/{b}/scores, all on one board", one_runs)
    median_of("b_many", f"POST /boards/{{b}}/scores, spread over {MANY:,} boards", many_runs)


def spread_batches(base: str, settings: Settings, args: argparse.Namespace) -> None:
    """B2: batch writes over 1,000 boards versus one."""
    server = issue_token(settings, "bench-server", "Server", "GLOBAL", role="server")
    for key, boards, name in (("bb_one", 1, "one"), ("bb_many", MANY, "m%04d")):
        script = WRK_BOARD_BATCH % (boards, args.users, name, server)
        warm_up(base, script, 4)
        run = wrk(base, script, args.duration, 4)
        record(Result(key, f"POST /scores/batch, 1,000 items, "
                               f"{'one board' if boards == 1 else f'{MANY:,} boards'}",
                               run.rps * 1000, "score updates/s", run.p50_ms, run.p99_ms,
                               run.errors, run.max_ms, run.slowest))


async def memory_per_entry(settings: Settings, boards: list[str], per_board: int) -> float:
    """B4: bytes of Redis memory per entry, writing ``per_board`` users to each board."""
    r = aioredis.Redis.from_url(settings.redis_url)
    pg = await create_pool(settings, 2)
    cache = BoardCache(pg, r, Keys(settings.board))
    await cache.refresh()
    before = int((await r.info("memory"))["used_memory"])
    regions = [x for x in settings.region_list if x != "GLOBAL"]
    topology = Topology.of(settings)
    shards = {s: RegionShard(settings, s, cache.get) for s in topology.all_shards()}
    cmds: dict[str, list[WriteCommand]] = {}
    for b in boards:
        for i in range(per_board):
            region = regions[i % len(regions)]
            cmds.setdefault(topology.shard_for(region, user_id(i)), []).append(
                WriteCommand(user_id(i), f"Player {i}", region, "set", i, board=b))
    for shard, mine in cmds.items():
        for at in range(0, len(mine), 1000):
            await shards[shard].write_many(mine[at:at + 1000])
    await bench.until_empty(settings)  # the writers stored every event: streams are empty
    after = int((await r.info("memory"))["used_memory"])
    await r.aclose()
    await pg.close()
    return (after - before) / (len(boards) * per_board)


def memory_item(base: str, settings: Settings, args: argparse.Namespace) -> None:
    per_board = 100 if args.quick else 1000
    mem = asyncio.run(memory_per_entry(settings, [f"m{i:04d}" for i in range(MANY)], per_board))
    record(Result("b_mem", f"Redis memory per entry, {MANY:,} boards x {per_board:,} entries "
                  "(hash + GLOBAL and region ZSET members; the stream drains)", mem, "bytes"))
    create_boards(base, settings, ["big"])
    mem = asyncio.run(memory_per_entry(settings, ["big"], MANY * per_board))
    record(Result("b_mem_one", f"Redis memory per entry, one board x {MANY * per_board:,}",
                  mem, "bytes"))


def client_reads(base: str, args: argparse.Namespace) -> None:
    """B7: friends' ranks (100 ids) on board one; the first and a deep page of board big."""
    ids = ",".join(user_id(i * 7 % args.users) for i in range(100))
    deep = (MANY * (100 if args.quick else 1000)) * 9 // 10
    for key, name, path in (
        ("ranks100", "GET /boards/one/ranks?user_ids= (100 ids)",
         f"/boards/one/ranks?user_ids={ids}"),
        ("page_first", "GET /boards/big/top?limit=100 (first page)", "/boards/big/top?limit=100"),
        ("page_deep", f"GET /boards/big/top?limit=100&from_rank={deep:,}",
         f"/boards/big/top?limit=100&from_rank={deep}"),
    ):
        url = f"{base}{path}"
        warm_up(url, None, args.connections)
        run = wrk(url, None, args.duration, args.connections)
        record(Result(key, name, run.rps, "req/s", run.p50_ms, run.p99_ms, run.errors,
                      run.max_ms, run.slowest))


def main() -> None:
    args = parse_args()
    settings = Settings()  # type: ignore[call-arg]
    asyncio.run(ensure_database(settings))
    asyncio.run(_empty_boards(settings))
    tokens = asyncio.run(seed(settings, args.users))
    ray.init(address="local", num_cpus=8, include_dashboard=False,
             namespace=settings.ray_namespace, log_to_driver=False)
    started = time.perf_counter()
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        base = f"http://127.0.0.1:{PORT}"
        serve.run(build_app(settings), name="leaderboard", route_prefix="/",
                  logging_config=QUIET_LOGS)
        wait_ready(base)
        rate = create_boards(base, settings, [f"m{i:04d}" for i in range(MANY)])
        record(Result("b_create", f"POST /boards, {MANY:,} boards (8 connections)", rate,
                      "boards/s"))
        create_boards(base, settings, ["one"])
        quiet([settings])
        spread_writes(base, tokens, args)
        quiet([settings])
        spread_batches(base, settings, args)
        quiet([settings])
        from bench_rollover import past_reads, rollover  # B5, B6

        rollover(base, settings, args)
        past_reads(base, settings, args)
        quiet([settings])
        memory_item(base, settings, args)
        client_reads(base, args)
        from bench_rank_fields import rank_fields  # B8

        live = bench.RESULTS.get("live_rank")
        rank_fields(settings.redis_url, live.value if live else None)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
    table = report(time.perf_counter() - started)
    print("\n" + table)
    if args.out:
        bench.write_report(args.out, table, marker="bench-boards")
        print(f"written into {args.out}")


async def _empty_boards(settings: Settings) -> None:
    r = aioredis.Redis.from_url(settings.redis_url)
    await r.flushdb()
    await r.aclose()
    pg = await create_pool(settings, 1)
    await pg.execute("TRUNCATE leaderboard, season_archive, archive_entries, drain_marks CASCADE")
    await pg.execute("DELETE FROM boards WHERE id <> 'default'")
    await pg.close()


def report(seconds: float) -> str:
    rows = ["| measurement | value | p50 | p99 | max | errors |", "|---|---:|---:|---:|---:|---:|"]
    for r in bench.RESULTS.values():
        lat = ("", "") if r.p50_ms != r.p50_ms else (f"{r.p50_ms:.1f} ms", f"{r.p99_ms:.1f} ms")
        worst = "" if r.max_ms != r.max_ms else f"{r.max_ms:.0f} ms"
        rows.append(f"| {r.name} | {r.value:,.1f} {r.unit} | {lat[0]} | {lat[1]} | {worst} "
                    f"| {r.errors} |")
    res = bench.RESULTS
    ratios = []
    if "b_one" in res and "b_many" in res:
        ratios.append(f"single writes, {MANY:,} boards / one: "
                      f"{res['b_many'].value / res['b_one'].value:.2f}x (target >= 0.8x)")
    if "bb_one" in res and "bb_many" in res:
        ratios.append(f"batch writes, {MANY:,} boards / one: "
                      f"{res['bb_many'].value / res['bb_one'].value:.2f}x (target >= 0.8x)")
    return "\n".join([*rows, "", *(f"- {r}" for r in ratios),
                      f"- run took {seconds:.0f} s (`scripts/bench boards`)", ""])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--entries", type=int, default=100_000,
                        help="entries of the season that rolls over (B5)")
    parser.add_argument("--out", type=Path, help="Markdown file to write the table into")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s, small sizes")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.users, args.entries = 3, 1, 100, 5_000
    return args


if __name__ == "__main__":
    main()
