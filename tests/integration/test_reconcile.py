"""reconcile: drift between Redis and Postgres is found and repaired, the newer version winning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.boards import Board, generation_of
from leaderboard.keys import Keys
from leaderboard.reconcile import reconcile
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings
from tests.integration.test_recovery import REGIONS, populate
from tests.integration.test_rollover import INSERT as INSERT_BOARD
from tests.integration.test_writer import drain, make_writer

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reconcile.py"


async def test_finds_and_repairs_each_kind_of_drift(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    await populate(settings, redis, pg, users=40)
    keys = Keys(settings.board)
    ranker = Ranker(settings)
    # Redis lost a user entirely
    gone = await redis.hgetall(keys.user("u001"))
    await redis.delete(keys.user("u001"))
    for region in REGIONS:
        await redis.zrem(keys.board(region), gone["member"])
    # Postgres is newer for u002 (say Redis was restored from an old snapshot)
    await pg.execute("UPDATE leaderboard SET score = 500, version = version + 10 "
                     "WHERE user_id = 'u002'")
    # Postgres is older for u003
    await pg.execute("UPDATE leaderboard SET score = -1, version = 1 WHERE user_id = 'u003'")
    # u005's hash lost its place on its region board
    h5 = await redis.hgetall(keys.user("u005"))
    await redis.zrem(keys.board(h5["region"]), h5["member"])

    dry = await reconcile(redis, pg, keys, dry_run=True)
    assert (dry.redis_behind, dry.postgres_behind, dry.missing_from_boards) == (
        ["u001", "u002"], ["u003"], ["u005"])
    assert await redis.exists(keys.user("u001")) == 0  # a dry run changes nothing

    fixed = await reconcile(redis, pg, keys)
    assert fixed.drift == 4
    assert await redis.hget(keys.user("u001"), "score") == gone["score"]
    assert (await ranker.rank("GLOBAL", "u002"))["score"] == 500  # type: ignore[index]
    row = await pg.fetchrow("SELECT score, version FROM leaderboard WHERE user_id = 'u003'")
    h3 = await redis.hgetall(keys.user("u003"))
    assert (row["score"], row["version"]) == (int(h3["score"]), int(h3["version"]))
    assert await ranker.rank(h5["region"], "u005") is not None
    assert (await reconcile(redis, pg, keys)).drift == 0


async def test_script_reports_and_exit_status(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    await populate(settings, redis, pg, users=10)
    env = {**os.environ, "BOARD": settings.board}
    clean = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True,
                           text=True, timeout=60)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "users: 10 in Postgres, 10 in Redis" in clean.stdout
    await pg.execute("UPDATE leaderboard SET version = 1 WHERE user_id = 'u004'")
    drifted = subprocess.run([sys.executable, str(SCRIPT), "--dry-run"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert drifted.returncode == 1 and "Postgres older than Redis: 1" in drifted.stdout


async def test_a_boards_live_season_is_reconciled_with_its_sort_key(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    now = int((await redis.time())[0]) * 1_000_000
    board = Board("laps", "Laps", "asc", "best", 3600, now - 1, generation_of(now))
    await pg.execute(INSERT_BOARD, *board.row().values())
    keys = Keys(settings.board)
    await redis.hset(keys.boards, board.id, board.generation)
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    for user, score in (("ann", 30), ("bo", 20), ("cy", 25)):
        assert (await shard.write(WriteCommand(user, user, "EU", "set", score,
                                               board="laps"))).status == "ok"
    writer = make_writer(settings, redis, pg, "w-reconcile")
    await writer.start()
    await drain(writer)
    season = board.schedule.season_at(now) or 1
    names = keys.season("laps", board.generation, season)
    lost = await redis.hgetall(names.user("bo"))
    await redis.delete(names.user("bo"))
    await redis.zrem(names.board("EU"), lost["member"])
    await redis.zrem(names.board("GLOBAL"), lost["member"])
    report = await reconcile(redis, pg, keys, board=board, season=season)
    assert report.redis_behind == ["bo"] and report.users_in_postgres == 3
    # asc: the restored entry sits by its sort key (-20), first
    assert await redis.zrevrange(names.board("EU"), 0, 0) == [lost["member"]]
    assert (await reconcile(redis, pg, keys, board=board, season=season)).drift == 0
    env = {**os.environ, "BOARD": settings.board}
    out = subprocess.run([sys.executable, str(SCRIPT), "--board", "laps"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and f"board laps (namespace {settings.board}), season " \
        f"{season}:" in out.stdout, out.stdout + out.stderr
