"""scripts/check_queue.py reports each shard's backlog, pending and events."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.keys import Keys
from leaderboard.pipeline import stream
from leaderboard.settings import Settings

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
