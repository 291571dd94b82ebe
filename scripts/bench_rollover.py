"""B5 and B6 of ``scripts/bench boards``: a large season rolling over, and past-season reads."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time

import redis.asyncio as aioredis
from bench import Result, quiet, record, result_of, user_id
from bench_boards import WRK_BOARD_WRITE, create_boards
from bench_wrk import WRK_PATHS, Run, warm_up, wrk

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.board_cache import BoardCache
from leaderboard.keys import Keys
from leaderboard.pipeline.db import create_pool
from leaderboard.serve.auth import issue_token
from leaderboard.settings import Settings
from leaderboard.shards import Topology


async def seed_season(settings: Settings, board: str, entries: int) -> None:
    """``entries`` users on ``board``'s live season, through the real write script."""
    r = aioredis.Redis.from_url(settings.redis_url)
    pg = await create_pool(settings, 1)
    cache = BoardCache(pg, r, Keys(settings.board))
    await cache.refresh()
    topology = Topology.of(settings)
    regions = [x for x in settings.region_list if x != "GLOBAL"]
    by_shard: dict[str, list[WriteCommand]] = {}
    for i in range(entries):
        region = regions[i % len(regions)]
        by_shard.setdefault(topology.shard_for(region, user_id(i)), []).append(
            WriteCommand(user_id(i), f"Player {i}", region, "set", (i * 7919) % 1_000_003,
                         board=board))
    for shard, cmds in by_shard.items():
        writer = RegionShard(settings, shard, cache.get)
        for at in range(0, len(cmds), 1000):
            await writer.write_many(cmds[at:at + 1000])
    await r.aclose()
    await pg.close()


async def watch(settings: Settings, board: str, boundary_s: float) -> tuple[float, float]:
    """Seconds from the boundary until season 1 is archived, and until its keys are freed."""
    r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    pg = await create_pool(settings, 1)
    generation = await pg.fetchval("SELECT generation FROM boards WHERE id = $1", board)
    seasons = Keys(settings.board).seasons(board, generation)
    archived = freed = float("nan")
    deadline = boundary_s + 300
    while time.time() < deadline and freed != freed:
        now = time.time()
        if archived != archived and (await pg.fetchval(
                "SELECT archived_through FROM boards WHERE id = $1", board)) >= 1:
            archived = now - boundary_s
        if archived == archived and not await r.sismember(seasons, "1"):
            freed = now - boundary_s
        await asyncio.sleep(0.05)
    await r.aclose()
    await pg.close()
    return archived, freed


def rollover(base: str, settings: Settings, args: argparse.Namespace) -> None:
    """B5: a season of ``args.entries`` entries ends while writes go on."""
    d, c = args.duration, args.connections
    period = 30 if args.quick else 90
    created = time.time()
    create_boards(base, settings, ["roll"], reset=period)
    boundary = created + period  # start = creation time (within the request's round trip)
    print(f"B5. seeding {args.entries:,} entries; the season ends in {period} s", flush=True)
    asyncio.run(seed_season(settings, "roll", args.entries))
    quiet([settings])
    tokens = [issue_token(settings, user_id(i), f"Player {i}", "EU") for i in range(args.users)]
    script = WRK_BOARD_WRITE % (",".join(f'"{t}"' for t in tokens), 1, "roll")
    warm_up(base, script, c)
    if time.time() + d + 2 < boundary - d / 2:
        away = wrk(base, script, d, c)
        record(result_of("roll_away", "POST /boards/roll/scores, away from a boundary", away))
    time.sleep(max(0.0, boundary - d / 2 - time.time()))
    across: list[Run] = []
    writer = threading.Thread(target=lambda: across.append(wrk(base, script, d, c)))
    writer.start()
    archived, freed = asyncio.run(watch(settings, "roll", boundary))
    writer.join()
    record(result_of("roll_across", f"POST /boards/roll/scores, {d} s across the boundary",
                     across[0]))
    record(Result("roll_archive", f"season of {args.entries:,} entries: boundary until its "
                  "archive is complete in Postgres", archived, "s"))
    record(Result("roll_freed", "... until its keys are freed in Redis", freed, "s"))


def past_reads(base: str, settings: Settings, args: argparse.Namespace) -> None:
    """B6: top-100 and rank of the archived season next to a live board's."""
    quiet([settings])
    d, c, n = args.duration, args.connections, args.users
    for key, name, path in (
        ("live_top", "GET /boards/one/top?limit=100 (live)", "/boards/one/top?limit=100"),
        ("past_top", "GET /boards/roll/top?limit=100&season=1 (archived)",
         "/boards/roll/top?limit=100&season=1"),
        ("live_rank", "GET /boards/one/rank/{id} (live)", "/boards/one/rank/bench-%06d"),
        ("past_rank", "GET /boards/roll/rank/{id}?season=1 (archived)",
         "/boards/roll/rank/bench-%06d?season=1"),
    ):
        script = WRK_PATHS % (n, path)
        warm_up(base, script, c)
        record(result_of(key, name, wrk(base, script, d, c)))
