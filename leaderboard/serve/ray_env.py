"""Environment Ray Serve reads at import time: export before Ray starts, on every node."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from leaderboard.serve.haproxy_launcher import write_launcher

STATS_PORT, METRICS_PORT = 8404, 9101  # HAProxy's stats page and Prometheus endpoint
LOOPBACK = "127.0.0.1"

# Serve's replicas open their gRPC server on every interface: leaderboard/serve/replica_bind.py,
# imported by every Ray worker, moves it to the node's address (one machine: loopback).
REPLICA_BIND = {"RAY_preload_python_modules": "leaderboard.serve.replica_bind"}
# One machine (`make run`): Ray's own switch for a single-machine node (its default on macOS and
# Windows) makes 127.0.0.1 the node's address, and Ray binds every server it starts to the node's
# address; without it Ray takes the address of the default route and listens on every interface.
ONE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", **REPLICA_BIND}

THROUGHPUT = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
}

# The GCS keeps the last N tasks' events (Ray's default 100,000: ~350 MiB on the head node);
# hot actors turn theirs off (docs/operations.md), this bounds whatever else records them.
TASK_EVENTS = {"RAY_task_events_max_num_task_in_gcs": "10000"}

# How often every Ray process hands its metrics to the node's metrics agent (Ray's default
# 10 s); the agent forgets a gauge after two periods. The tests use 1 s (docs/metrics.md).
METRICS_REPORT = {"RAY_metrics_report_interval_ms": "5000"}


def haproxy_dir(http_port: int) -> Path:
    """HAProxy's files for the instance on ``http_port``.

    Short on purpose: Ray adds a 56-character folder and HAProxy refuses socket paths
    over 97 characters. One folder per port lets a test instance run beside ``make run``.
    """
    return Path(tempfile.gettempdir()) / f"lb-haproxy-{http_port}"


def metrics_host() -> str:
    """``METRICS_HOST``: where HAProxy's Prometheus endpoint listens (loopback unless set)."""
    return os.environ.get("METRICS_HOST") or LOOPBACK


def serve_env(
    http_port: int, *, stats_port: int = STATS_PORT, metrics_port: int = METRICS_PORT, files: Path | None = None
) -> dict[str, str]:
    """The throughput settings and HAProxy's files (in ``files``, by default the folder of
    ``http_port``, where HAProxy's launcher is written) and ports for the instance on ``http_port``."""
    d = haproxy_dir(http_port) if files is None else files
    return {
        **THROUGHPUT,
        **TASK_EVENTS,
        **METRICS_REPORT,
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(write_launcher(d, metrics_host())),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(d / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(d / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(d),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(d / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
        # HAProxy's backup server (Serve's proxy actor): one per instance, so a request that
        # arrives while the gateway is not up is never answered by another instance's app
        # (8500/9500 for the service's 8000, Serve's defaults)
        "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(http_port + 500),
        "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(http_port + 1500),
        # replicas otherwise drain for 30 s on shutdown, so Ctrl-C would take half a minute
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    }


def apply_serve_env(
    http_port: int, *, stats_port: int = STATS_PORT, metrics_port: int = METRICS_PORT, one_machine: bool = False
) -> None:
    """Set the throughput settings (unless already set) before Ray is imported or started;
    ``one_machine``: Ray's servers on loopback too (``make run``)."""
    haproxy_dir(http_port).mkdir(parents=True, exist_ok=True)
    env = serve_env(http_port, stats_port=stats_port, metrics_port=metrics_port)
    for key, value in {**env, **(ONE_MACHINE if one_machine else {})}.items():
        os.environ.setdefault(key, value)
    # always the launcher: it runs the binary set before, if any
    os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = env["RAY_SERVE_HAPROXY_BINARY_PATH"]


def main(argv: list[str]) -> None:
    """Print ``export`` lines for a shell about to run ``ray start`` (set variables win).

    Usage: ``eval "$(python -m leaderboard.serve.ray_env [PORT [STATS_PORT METRICS_PORT]])"``
    """
    import shlex

    args = [int(a) for a in argv]
    port = args[0] if args else int(os.environ.get("PORT", "8000"))
    stats, metrics = (args[1], args[2]) if len(args) >= 3 else (STATS_PORT, METRICS_PORT)
    haproxy_dir(port).mkdir(parents=True, exist_ok=True)
    for key, value in serve_env(port, stats_port=stats, metrics_port=metrics).items():
        value = value if key == "RAY_SERVE_HAPROXY_BINARY_PATH" else os.environ.get(key, value)
        print(f"export {key}={shlex.quote(value)}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
