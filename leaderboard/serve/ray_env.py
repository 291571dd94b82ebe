"""Environment Ray Serve reads at import time: export before Ray starts, on every node."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

STATS_PORT, METRICS_PORT = 8404, 9101  # HAProxy's stats page and Prometheus endpoint

THROUGHPUT = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
}

# The GCS keeps the last N tasks' events (Ray's default 100,000: ~350 MiB on the head node);
# hot actors turn theirs off (docs/operations.md), this bounds whatever else records them.
TASK_EVENTS = {"RAY_task_events_max_num_task_in_gcs": "10000"}


def haproxy_dir(http_port: int) -> Path:
    """HAProxy's files for the instance on ``http_port``.

    Short on purpose: Ray adds a 56-character folder and HAProxy refuses socket paths
    over 97 characters. One folder per port lets a test instance run beside ``make run``.
    """
    return Path(tempfile.gettempdir()) / f"lb-haproxy-{http_port}"


def serve_env(
    http_port: int, *, stats_port: int = STATS_PORT, metrics_port: int = METRICS_PORT, files: Path | None = None
) -> dict[str, str]:
    """The throughput settings and HAProxy's files (in ``files``, by default the folder of
    ``http_port``) and ports for the instance on ``http_port``."""
    d = haproxy_dir(http_port) if files is None else files
    return {
        **THROUGHPUT,
        **TASK_EVENTS,
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(d / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(d / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(d),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(d / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
        # replicas otherwise drain for 30 s on shutdown, so Ctrl-C would take half a minute
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    }


def apply_serve_env(http_port: int, *, stats_port: int = STATS_PORT, metrics_port: int = METRICS_PORT) -> None:
    """Set the throughput settings (unless already set) before Ray is imported or started."""
    haproxy_dir(http_port).mkdir(parents=True, exist_ok=True)
    for key, value in serve_env(http_port, stats_port=stats_port, metrics_port=metrics_port).items():
        os.environ.setdefault(key, value)


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
        print(f"export {key}={shlex.quote(os.environ.get(key, value))}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
