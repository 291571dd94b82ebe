"""scripts/services.py starts what is missing (here: a Redis on a free port) and stops it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_starts_missing_redis_with_aof_and_stops_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "STATE_DIR": str(tmp_path),
           "PGDATABASE": os.environ.get("PGDATABASE", "leaderboard_test")}
    started = tmp_path / "started"
    script = str(ROOT / "scripts" / "services.py")
    run = subprocess.run([sys.executable, script, "--started-file", str(started)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "started redis-server" in run.stdout
    assert "started postgres" not in run.stdout  # the running Postgres was reused
    client = redis.Redis(port=port)
    try:
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    finally:
        stop = subprocess.run([sys.executable, script, "--stop", str(started)], env=env,
                              capture_output=True, text=True, timeout=30)
    assert stop.returncode == 0 and "stopped the redis-server" in stop.stdout
    assert not started.exists()
