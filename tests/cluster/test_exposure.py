"""`make run` as an operator starts it (scripts/run), seen from outside: every socket that its
processes (its own, Ray's, HAProxy's and the Redis it starts) listen on is on loopback, and
known secrets appear in no log, no answer and no process's arguments.

The run gets its own HTTP and HAProxy ports, Redis (started by scripts/services.py, with a
password, on a free port), database and Ray temp dir; it is stopped like Ctrl-C (SIGTERM to
scripts/run), and whatever of it outlives that is killed by PID.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from leaderboard.exposure import Listener, listeners, off_loopback, with_descendants
from leaderboard.serve.ray_env import haproxy_dir

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 150
REPLICA_PORTS = range(30000, 31001)  # Serve's direct-ingress HTTP ports (HAProxy forwards there)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Run:
    """One `scripts/run` with its ports, folders, secrets and output."""

    tmp: Path
    port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    ray_metrics_port: int = field(default_factory=free_port)  # Ray's metrics agent
    redis_port: int = field(default_factory=free_port)
    jwt_secret: str = field(default_factory=lambda: "jwt-" + secrets.token_hex(24))
    redis_password: str = field(default_factory=lambda: "redispw-" + secrets.token_hex(12))
    pg_password: str = field(default_factory=lambda: "pgpw-" + secrets.token_hex(12))
    proc: subprocess.Popen[bytes] | None = None
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def secrets(self) -> dict[str, str]:
        return {"JWT_SECRET": self.jwt_secret, "Redis password": self.redis_password,
                "PGPASSWORD": self.pg_password}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> Path:
        return self.tmp / "run.out"

    def env(self) -> dict[str, str]:
        """The suite's environment without its own Ray/Serve settings, plus this run's."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("RAY_", "TEST_")) and k not in ("DATABASE_URL", "HOST", "METRICS_HOST")}
        env.update({
            "PORT": str(self.port), "STATE_DIR": str(self.tmp / "state"), "RAY_TMPDIR": str(self.tmp),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(self.stats_port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(self.metrics_port),
            "METRICS_EXPORT_PORT": str(self.ray_metrics_port),
            "REDIS_URL": f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0",
            "PGPASSWORD": self.pg_password, "JWT_SECRET": self.jwt_secret,
            "PGDATABASE": f"{os.environ.get('PGDATABASE', 'leaderboard_test')}_exposure",
            "RAY_NAMESPACE": "leaderboard-exposure", "LOCAL_RAY_CPUS": "4",
            # fewer actors to start: a shorter test, the same kinds of processes
            "REGIONS": "GLOBAL,EU", "WRITER_POOL_SIZE": "1",
        })
        return env

    def redis_pid(self) -> int | None:
        pidfile = self.tmp / "state" / "redis" / "redis.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def processes(self) -> list[psutil.Process]:
        """scripts/run and everything below it, and the Redis it started (daemonized)."""
        assert self.proc is not None
        found = with_descendants([self.proc.pid, *filter(None, [self.redis_pid()])])
        self.seen.update((p.pid, p) for p in found)
        return found

    def stop(self) -> None:
        """Like Ctrl-C; then SIGKILL to whatever of it is left, by PID."""
        if self.proc is not None and self.proc.poll() is None:
            self.processes()  # remember them all: some leave the tree while stopping
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for p in self.seen.values():
            try:
                if p.is_running():
                    p.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def run() -> Iterator[Run]:
    tmp = Path(tempfile.mkdtemp(prefix="lbx-", dir="/tmp"))  # short: Ray puts sockets under it
    r = Run(tmp)
    with r.output.open("wb") as out:
        r.proc = subprocess.Popen([str(ROOT / "scripts" / "run")], cwd=ROOT, env=r.env(), stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield r
    finally:
        r.stop()
        for folder in (haproxy_dir(r.port), tmp):
            shutil.rmtree(folder, ignore_errors=True)


def wait_healthy(r: Run) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert r.proc is not None and r.proc.poll() is None, r.output.read_text()[-4000:]
        try:
            answer = httpx.get(f"{r.url}/health", timeout=3)
            if answer.status_code == 200:
                return answer
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"no healthy answer after {START_TIMEOUT_S}s: {r.output.read_text()[-4000:]}")


def answers(r: Run) -> list[str]:
    """A sign-up, a failed login, a bad token, an unknown path, a malformed body: their bodies."""
    user = {"user_id": "exposure", "name": "E", "region": "EU", "password": "correct horse"}
    calls = [httpx.post(f"{r.url}/auth/register", json=user, timeout=30),
             httpx.post(f"{r.url}/auth/login", json={**user, "password": "wrong horse"}, timeout=30),
             httpx.post(f"{r.url}/score/add", json={"delta": 1}, timeout=30,
                        headers={"Authorization": "Bearer not.a.token"}),
             httpx.get(f"{r.url}/nowhere", timeout=30),
             httpx.post(f"{r.url}/auth/login", content=b"{", timeout=30)]
    return [c.text for c in calls]


def scan(r: Run) -> list[Listener]:
    """Listening sockets, looked at until a replica's own HTTP port is among them (requests go
    through Serve's fallback proxy until then), and twice (HAProxy is replaced on reloads)."""
    found: set[Listener] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(s.port in REPLICA_PORTS for s in found):
        found |= set(listeners(r.processes()))
        time.sleep(1)
    time.sleep(1)
    return sorted(found | set(listeners(r.processes())), key=lambda s: (s.pid, s.port))


def scrape_ray_metrics(r: Run) -> str:
    """Ray's metrics agent, once the shards' gauges reached it (every 5 s under make run)."""
    deadline = time.monotonic() + 30
    while True:
        text = httpx.get(f"http://127.0.0.1:{r.ray_metrics_port}/metrics", timeout=10).text
        if "ray_leaderboard_stream_backlog" in text or time.monotonic() > deadline:
            return text
        time.sleep(1)


def report(found: list[Listener]) -> str:
    return "\n".join(f"  {s}" for s in found)


def test_make_run_listens_on_loopback_only_and_shows_no_secret(run: Run) -> None:
    began = time.monotonic()
    health = wait_healthy(run)
    bodies = [health.text, *answers(run)]
    found = scan(run)
    print(f"healthy and scanned after {time.monotonic() - began:.0f}s")
    print("listening sockets of make run:\n" + report(found))
    ports = {s.port for s in found}
    names = " ".join(s.name for s in found)
    # the scan sees the service (HAProxy's three ports), Ray's own servers (its metrics agent's
    # Prometheus endpoint among them) and the Redis it started
    assert {run.port, run.stats_port, run.metrics_port, run.ray_metrics_port,
            run.redis_port} <= ports, report(found)
    assert "ray_leaderboard_stream_backlog" in scrape_ray_metrics(run)
    printed = run.output.read_text()  # make run says where the metrics are
    assert f"metrics: http://127.0.0.1:{run.ray_metrics_port}/metrics" in printed, printed[-2000:]
    assert f"metrics: http://127.0.0.1:{run.metrics_port}/metrics" in printed, printed[-2000:]
    assert "gcs_server" in names and "raylet" in names and "ServeReplica" in names, report(found)
    bad = off_loopback(found)
    assert not bad, "listening off loopback:\n" + report(bad)

    token_file = run.tmp / "state" / "ray_auth_token"  # Ray's token auth: on, token ours only
    assert token_file.stat().st_mode & 0o077 == 0
    known = {**run.secrets, "Ray's token": token_file.read_text().strip()}
    args = {p.pid: " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])}
    for what, value in known.items():
        assert not [pid for pid, a in args.items() if value in a], f"{what} in a process's arguments"
        assert not [b for b in bodies if value in b], f"{what} in an HTTP answer"

    stopping = time.monotonic()
    run.stop()
    print(f"stopped in {time.monotonic() - stopping:.0f}s")
    for path in (p for p in run.tmp.rglob("*") if p.is_file() and not p.is_symlink()):
        data = path.read_bytes()
        for what, value in known.items():
            assert path == token_file or value.encode() not in data, f"{what} in {path}"
