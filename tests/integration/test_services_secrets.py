"""scripts/services.py starting a Redis whose URL has a password: the password protects it, and
appears neither in the server's arguments (`ps`) nor in what the script prints."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "scripts" / "services.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_started_redis_takes_the_password_on_stdin_and_loopback_only(tmp_path: Path) -> None:
    port, password = free_port(), "pw-" + secrets.token_hex(12)
    env = {**os.environ, "REDIS_URL": f"redis://:{password}@127.0.0.1:{port}/0",
           "STATE_DIR": str(tmp_path), "PGDATABASE": os.environ.get("PGDATABASE", "leaderboard_test")}
    started = tmp_path / "started"
    run = subprocess.run([sys.executable, SCRIPT, "--started-file", str(started)], env=env, check=False,
                         capture_output=True, text=True, timeout=60)
    try:
        assert run.returncode == 0, run.stderr
        assert password not in run.stdout + run.stderr
        assert f"Redis 127.0.0.1:{port}/0 and" in run.stdout  # the URL without its credentials
        server = psutil.Process(int((tmp_path / "redis" / "redis.pid").read_text()))
        assert password not in " ".join(server.cmdline())
        assert {c.laddr.ip for c in server.net_connections() if c.status == psutil.CONN_LISTEN} == {"127.0.0.1"}
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        assert redis.Redis(port=port, password=password).ping()
    finally:
        subprocess.run([sys.executable, SCRIPT, "--stop", str(started)], env=env, capture_output=True,
                       text=True, timeout=30, check=False)
    assert not started.exists()
