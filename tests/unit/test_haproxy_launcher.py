"""HAProxy's launcher on the configuration Ray Serve renders: stats on loopback, metrics on
METRICS_HOST, the HTTP frontend untouched, and a file the real HAProxy accepts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from jinja2 import Environment
from ray.serve._private.haproxy import HAProxyConfig, _haproxy_fmt_literal
from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE
from ray.serve.config import HTTPOptions

from leaderboard.serve.haproxy_launcher import bind_host, real_haproxy, write_launcher
from leaderboard.serve.ray_env import serve_env


def rendered(tmp_path: Path, host: str = "0.0.0.0") -> Path:
    """What Serve 2.60 writes for a proxy on ``host``:8000 (no backends yet)."""
    env = Environment()
    env.filters["haproxy_fmt"] = _haproxy_fmt_literal
    cfg = HAProxyConfig(http_options=HTTPOptions(host=host, port=8000), stats_port=8404,
                        metrics_port=9101, socket_path=str(tmp_path / "admin.sock"),
                        metrics_enabled=False, log_target="stdout format raw")
    text = env.from_string(HAPROXY_CONFIG_TEMPLATE).render(
        config=cfg, backends=[], grpc_backends=[], backends_with_health_config=[],
        grpc_backends_with_health_config=[], healthz_rules="", grpc_healthz_rules="",
        route_info=cfg.build_health_route_info([]), metrics_enabled=False)
    path = tmp_path / "haproxy.cfg"
    path.write_text(text + "\n")  # as Serve writes it
    return path


def binds(path: Path) -> dict[str, str]:
    """Section -> its bind address, in the file."""
    out, section = {}, ""
    for line in path.read_text().splitlines():
        if line and not line[0].isspace():
            section = line.strip()
        elif line.strip().startswith("bind "):
            out[section] = line.split()[1]
    return out


def test_serve_still_binds_stats_and_metrics_everywhere(tmp_path: Path) -> None:
    """The reason for the launcher: if Serve ever names an address, this fails and it can go."""
    assert binds(rendered(tmp_path)) == {"frontend prometheus": ":9101", "frontend http_frontend": "*:8000",
                                         "listen stats": "*:8404"}


@pytest.mark.parametrize("metrics_host", ["127.0.0.1", "10.0.0.7"])
def test_launcher_rebinds_stats_and_metrics_only(tmp_path: Path, metrics_host: str) -> None:
    config = rendered(tmp_path)
    fake = tmp_path / "fake-haproxy"
    fake.write_text('#!/bin/sh\necho "ran with: $*"\n')
    fake.chmod(0o755)
    os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"] = str(fake)
    try:
        launcher = write_launcher(tmp_path / "ha", metrics_host)
    finally:
        del os.environ["RAY_SERVE_HAPROXY_BINARY_PATH"]
    ran = subprocess.run([str(launcher), "-db", "-f", str(config), "-dR"], capture_output=True,
                         text=True, check=True)
    assert ran.stdout.strip() == f"ran with: -db -f {config} -dR"  # Serve's arguments, unchanged
    assert binds(config) == {"frontend prometheus": f"{metrics_host}:9101",
                             "frontend http_frontend": "*:8000", "listen stats": "127.0.0.1:8404"}


def test_real_haproxy_accepts_the_rewritten_file(tmp_path: Path) -> None:
    config = rendered(tmp_path, host="127.0.0.1")
    launcher = write_launcher(tmp_path / "ha", "127.0.0.1")
    check = subprocess.run([str(launcher), "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "127.0.0.1:8404" in config.read_text()


def test_serve_env_points_serve_at_the_launcher(tmp_path: Path) -> None:
    env = serve_env(8000, files=tmp_path)
    launcher = Path(env["RAY_SERVE_HAPROXY_BINARY_PATH"])
    assert launcher.parent == tmp_path and os.access(launcher, os.X_OK)
    assert real_haproxy() != str(launcher)  # the launcher never runs itself


@pytest.mark.parametrize("bad", ["", "example.com", "::", "10.0.0.256", "127.0.0.1; rm -rf /"])
def test_metrics_host_must_be_an_ipv4_address(bad: str) -> None:
    with pytest.raises(ValueError, match="METRICS_HOST"):
        bind_host(bad)
