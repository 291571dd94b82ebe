"""A three-node Ray cluster on this machine (head + workers labelled region=eu / region=asia),
the app deployed on it with ``serve deploy serve_config.yaml``, in the foreground until Ctrl-C.

Usage: local_cluster.py [--smoke]   (run through scripts/local-cluster, which prepares the venv,
Redis, Postgres and JWT_SECRET first)

Every Ray process of this cluster has the cluster's own temp dir (``/tmp/lb-cluster-<port>``) on its
command line, so teardown stops exactly those processes: ``ray stop`` would stop every Ray on
the machine. Ray's token authentication is on for every process (``RAY_AUTH_MODE=token``, the
token in ``$STATE_DIR/ray_auth_token`` unless ``RAY_AUTH_*`` variables say otherwise). Every
node's address is 127.0.0.1 (``ray`` and ``serve`` run through scripts/ray_loopback.py), so every
port listens on loopback only; ``--smoke`` fails if one does not (``ALLOWED_OFF_LOOPBACK`` names
the exceptions: none).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from leaderboard.exposure import listeners, off_loopback, with_descendants
from leaderboard.serve.config import SERVE_CONFIG, problems, read
from leaderboard.serve.ray_auth import token_env
from leaderboard.serve.ray_env import ONE_MACHINE, serve_env
from leaderboard.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
# Ray's and Serve's CLIs with 127.0.0.1 as the nodes' address (scripts/ray_loopback.py)
LOOPBACK_CLI = [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "ray_loopback.py")]
RAY = [*LOOPBACK_CLI, "ray"]
SERVE = [*LOOPBACK_CLI, "serve"]
PORT_RANGE = range(21000, 22000)
WORKERS = {"eu": "region=eu", "asia": "region=asia"}
# Ports that may listen off loopback on this one-machine cluster (docs/deploy.md, Ports): none.
ALLOWED_OFF_LOOPBACK: dict[int, str] = {}


def log(msg: str) -> None:
    print(f"local-cluster: {msg}", flush=True)


def free_ports(n: int) -> list[int]:
    """``n`` ports of 21000-21999 that nothing listens on now."""
    found: list[int] = []
    for port in PORT_RANGE:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise SystemExit("local-cluster: no free ports left in 21000-21999")


@dataclass
class Cluster:
    """Ports, directories and the environment shared by the cluster's processes."""

    http_port: int
    ports: list[int]
    temp_dir: Path = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.gcs, self.dashboard, self.client = self.ports[:3]
        self.temp_dir = Path(f"/tmp/lb-cluster-{self.gcs}")  # short: Ray builds socket paths under it
        self.env = {**os.environ, **token_env(os.environ.get("STATE_DIR", ".data"))}
        self.env.pop("RAY_ADDRESS", None)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard}"

    def node_ports(self, index: int) -> list[int]:
        """Five ports per node (agents, metrics, HAProxy stats and metrics), after the head's 3."""
        start = 3 + 5 * index
        return self.ports[start : start + 5]

    def node_env(self, index: int, http_port: int) -> dict[str, str]:
        """Serve's throughput settings and this node's own HAProxy ports, for ``ray start``."""
        _, _, _, stats, metrics = self.node_ports(index)
        env = {**self.env, **serve_env(self.http_port, stats_port=stats, metrics_port=metrics,
                                       files=self.temp_dir / "ha")}
        env.update(ONE_MACHINE)  # every process of the node takes 127.0.0.1 as itself
        if index > 0:  # every node's HAProxy needs a port of its own on one machine
            env["RAY_SERVE_WORKER_PROXY_HTTP_PORT"] = str(http_port)
        for key in serve_env(self.http_port):  # set in the caller's environment: that wins
            if key in os.environ and not key.startswith("RAY_SERVE_HAPROXY_"):
                env[key] = os.environ[key]
        return env

    def node_args(self, index: int) -> list[str]:
        listen, grpc, metrics, _, _ = self.node_ports(index)
        return [f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1",
                f"--dashboard-agent-listen-port={listen}", f"--dashboard-agent-grpc-port={grpc}",
                f"--metrics-export-port={metrics}", "--num-cpus=2", "--disable-usage-stats"]


def check_listening(c: Cluster) -> None:
    """Every socket of the cluster's processes on loopback (but ``ALLOWED_OFF_LOOPBACK``)."""
    found = listeners(with_descendants(p.pid for p in ours(c.temp_dir)))
    bad = off_loopback(found, ALLOWED_OFF_LOOPBACK)
    for s in bad:
        log(f"listening off loopback: {s}")
    if bad:
        raise SystemExit(f"local-cluster: {len(bad)} of {len(found)} listening sockets off loopback")
    log(f"listening: {len(found)} sockets, all on loopback")


def check_token_auth(c: Cluster) -> None:
    """With token authentication, Ray's dashboard (Serve's REST API) refuses a request without it."""
    if c.env["RAY_AUTH_MODE"] != "token":
        return
    r = httpx.get(f"{c.dashboard_url}/api/serve/applications/", timeout=30)
    if r.status_code != 401:
        raise SystemExit(f"local-cluster: the dashboard answered {r.status_code} without Ray's token")
    log("Ray token authentication: a request without the token gets 401")


def run(cmd: list[str], env: dict[str, str], timeout: float = 120) -> None:
    result = subprocess.run(cmd, env=env, timeout=timeout, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"local-cluster: failed: {' '.join(cmd[1:5])} ... (exit {result.returncode})")


def start(c: Cluster, worker_ports: dict[str, int]) -> None:
    """Head, then the labelled workers, then Serve (HTTP on 127.0.0.1) and the app."""
    c.temp_dir.mkdir(parents=True, exist_ok=True)
    log(f"head: Ray on 127.0.0.1:{c.gcs}, dashboard {c.dashboard_url}, temp dir {c.temp_dir}")
    log(f"Ray token authentication: {c.env['RAY_AUTH_MODE']} on every node")
    run([*RAY, "start", "--head", f"--port={c.gcs}", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={c.dashboard}", f"--ray-client-server-port={c.client}",
         *c.node_args(0)], c.node_env(0, c.http_port))
    for i, (name, labels) in enumerate(WORKERS.items(), start=1):
        log(f"worker {name}: labels {labels}, HTTP on 127.0.0.1:{worker_ports[name]}")
        run([*RAY, "start", f"--address=127.0.0.1:{c.gcs}", f"--labels={labels}",
             *c.node_args(i)], c.node_env(i, worker_ports[name]))
    log(f"serve start (HTTP 127.0.0.1:{c.http_port}, a proxy on every node with a replica)")
    run([*SERVE, "start", f"--address=127.0.0.1:{c.gcs}", "--http-host=127.0.0.1",
         f"--http-port={c.http_port}", "--proxy-location=EveryNode"], c.env)
    log(f"serve deploy {SERVE_CONFIG.name}")
    run([*SERVE, "deploy", str(SERVE_CONFIG), f"--address={c.dashboard_url}"], c.env)


def wait_healthy(urls: list[str], timeout: float = 180) -> None:
    """Until /health answers 200 (not warming) on every URL."""
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        for url in list(pending):
            try:
                r = httpx.get(f"{url}/health", timeout=3)
                if r.status_code == 200 and r.json().get("warming") is False:
                    pending.remove(url)
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    if pending:
        raise SystemExit(f"local-cluster: no healthy answer from {pending} after {timeout:.0f}s")


def smoke(urls: list[str]) -> None:
    """Every node's /-/healthz; sign up on one node, write through another, read the top."""
    for url in urls:
        check(httpx.get(f"{url}/-/healthz", timeout=10), 200, f"{url}/-/healthz")
    user = f"smoke-{uuid.uuid4().hex[:10]}"
    sign_up, write, top = urls[1 % len(urls)], urls[2 % len(urls)], urls[0]
    r = httpx.post(f"{sign_up}/auth/register", timeout=30, json={
        "user_id": user, "name": "Smoke", "region": "EU", "password": "correct horse battery"})
    check(r, 201, f"sign-up via {sign_up}")
    token = r.json()["token"]
    r = httpx.post(f"{write}/score/update", timeout=30, json={"score": 4242},
                   headers={"Authorization": f"Bearer {token}"})
    check(r, 200, f"score write via {write}")
    r = httpx.get(f"{top}/top", params={"region": "EU", "limit": 1000}, timeout=30)
    check(r, 200, f"top read via {top}")
    mine = [e for e in r.json()["entries"] if e["user_id"] == user]
    if not mine or mine[0]["score"] != 4242:
        raise SystemExit(f"local-cluster: smoke: {user} not on the EU board with 4242: {r.text[:300]}")
    log(f"smoke: ok: {user} is #{mine[0]['rank']} on EU with {mine[0]['score']}")


def check(r: httpx.Response, status: int, what: str) -> None:
    if r.status_code != status:
        raise SystemExit(f"local-cluster: smoke: {what}: {r.status_code} {r.text[:300]}")
    log(f"smoke: {what}: {r.status_code}")


def ours(temp_dir: Path) -> list[psutil.Process]:
    """Processes with the cluster's temp dir (as a whole path) on their command line."""
    marker = re.compile(re.escape(str(temp_dir)) + r"(/|\s|$)")
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline"]):
        if p.pid != os.getpid() and marker.search(" ".join(p.info["cmdline"] or [])):
            found.append(p)
    return found


def terminate(procs: list[psutil.Process], grace_s: float) -> None:
    """SIGTERM, then SIGKILL to whatever is still there after ``grace_s``."""
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def stop(c: Cluster, keep_logs: bool) -> None:
    """Serve first (replicas drain, HAProxies stop), then exactly this cluster's processes, in
    ``ray stop``'s order: raylets, then the rest, then the GCS. Sent SIGTERM all at once, the
    raylets, the GCS and an agent were still alive 15 s later in the teardowns measured, so
    every stop waited for the SIGKILL; in this order each group was gone in about 2 s."""
    log("stopping")
    try:
        subprocess.run([*SERVE, "shutdown", "-y", f"--address={c.dashboard_url}"], env=c.env,
                       timeout=120, capture_output=True, check=False)
    except subprocess.TimeoutExpired:  # a half-started cluster: its processes are stopped below
        log("serve shutdown did not answer in 120s")
    procs = ours(c.temp_dir)
    raylets = [p for p in procs if p.info["name"] == "raylet"]
    gcs = [p for p in procs if p.info["name"] == "gcs_server"]
    for bucket in (raylets, [p for p in procs if p not in raylets + gcs], gcs):
        terminate(bucket, 10)
    log(f"stopped {len(procs)} processes")
    if keep_logs:
        log(f"Ray's logs kept in {c.temp_dir}/session_latest/logs")
    else:
        shutil.rmtree(c.temp_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="deploy, sign up + write a score + read the top over HTTP, tear down")
    args = parser.parse_args()
    bad = problems(read())
    if bad:
        raise SystemExit("local-cluster: serve_config.yaml: " + "; ".join(bad))
    settings = Settings()  # type: ignore[call-arg]
    ports = free_ports(3 + 5 * 3 + len(WORKERS))
    worker_ports = dict(zip(WORKERS, ports[-len(WORKERS):], strict=True))
    c = Cluster(settings.port, ports[: -len(WORKERS)])
    urls = [f"http://127.0.0.1:{p}" for p in (settings.port, *worker_ports.values())]
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    began = time.monotonic()
    ok = False
    try:
        start(c, worker_ports)
        wait_healthy(urls)
        log(f"healthy on every node after {time.monotonic() - began:.1f}s: {', '.join(urls)}")
        if args.smoke:
            smoke(urls)
            check_listening(c)
            check_token_auth(c)
        else:
            log("Ctrl-C stops it all")
            stopping.wait()
        ok = True
    finally:
        stop(c, keep_logs=not ok)


if __name__ == "__main__":
    main()
