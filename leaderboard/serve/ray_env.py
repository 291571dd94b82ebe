"""Environment Ray Serve reads at import time: export before Ray starts, on every node."""

from __future__ import annotations

import os
from pathlib import Path

THROUGHPUT = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
}


def apply_serve_env(state_dir: Path, *, stats_port: int = 8404, metrics_port: int = 9101) -> None:
    """Set the throughput settings (unless already set) and keep HAProxy's files in state_dir.

    Separate state dirs and ports let a test instance run beside ``make run``.
    """
    haproxy = state_dir / "haproxy"
    haproxy.mkdir(parents=True, exist_ok=True)
    defaults = {
        **THROUGHPUT,
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(haproxy / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(haproxy / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(haproxy),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(haproxy / "server-state"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
        # replicas otherwise drain for 30 s on shutdown, so Ctrl-C would take half a minute
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
