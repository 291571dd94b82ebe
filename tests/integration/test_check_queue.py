"""scripts/check_queue.py reports each shard's backlog, pending and events."""

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
from leaderboard.pipeline import stream
from leaderboard.settings import Settings
from tests.integration.test_rollover import INSERT as INSERT_BOARD

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_queue.py"


async def test_reports_backlog_pending_and_events(settings: Settings, redis: aioredis.Redis) -> None:
    keys = Keys(settings.board)
    await stream.ensure_groups(redis, [keys.stream(r) for r in settings.region_list])
    shard = RegionShard(settings, "EU")
    await shard.write(WriteCommand("q1", "Q", "EU", "set", 5))
    await shard.write(WriteCommand("q2", "Q", "EU", "set", 6))
    await stream.read(redis, "w-x", [keys.stream("EU")], ">", 1, None)  # one delivered, unacked
    out = subprocess.run([sys.executable, str(SCRIPT)], env={**os.environ}, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    eu = next(line for line in out.splitlines() if line.startswith("EU:"))
    assert "backlog=2" in eu and "pending=1" in eu and "lag=1" in eu
    assert "'user_id': 'q1'" in out and "'user_id': 'q2'" in out
    na = next(line for line in out.splitlines() if line.startswith("NA:"))
    assert "backlog=0" in na


async def test_a_boards_rollover_state_and_queued_events(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    now = int((await redis.time())[0]) * 1_000_000
    board = Board("daily", "Daily", "desc", "set", "@daily", now - 1, generation_of(now))
    await pg.execute(INSERT_BOARD, *board.row().values())
    await redis.hset(Keys(settings.board).boards, board.id, board.generation)
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    for user in ("q1", "q2"):
        await shard.write(WriteCommand(user, "Q", "EU", "set", 5, board="daily"))
    await shard.write(WriteCommand("q3", "Q", "EU", "set", 5))  # board default
    await pg.execute("INSERT INTO drain_marks (shard, drained_through) VALUES ('EU', $1)", now)
    out = subprocess.run([sys.executable, str(SCRIPT), "--board", "daily"], env={**os.environ},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    season = board.schedule.season_at(now)
    assert f"board daily: season now {season}, archived through 0" in out, out
    assert "drain mark EU: " in out
    eu = next(line for line in out.splitlines() if line.startswith("  EU:"))
    assert f"2 of its events in the first 3 entries, seasons [{season}]" in eu, eu
