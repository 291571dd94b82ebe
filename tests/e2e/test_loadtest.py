"""scripts/loadtest runs the Locust mix headless against a live instance and summarizes it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from leaderboard.serve.auth import issue_token
from tests.e2e.conftest import Service

ROOT = Path(__file__).resolve().parents[2]


def test_short_headless_run_covers_every_endpoint_without_failures(service: Service) -> None:
    token = issue_token(service.settings, "lt-server", "Load test", "GLOBAL", role="server")
    run = subprocess.run(
        [str(ROOT / "scripts" / "loadtest"), "--host", service.base_url, "--users", "8",
         "--spawn-rate", "8", "--time", "8s"],
        env={**os.environ, "LOADTEST_SERVER_TOKEN": token}, capture_output=True, text=True,
        timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    for endpoint in ("POST /auth/register", "POST /score/update", "POST /score/add",
                     "GET /top?limit=100", "GET /rank/{id}", "GET /around/{id}"):
        assert endpoint in run.stdout, run.stdout
    assert "failure:" not in run.stdout
    report = run.stdout.split("reports in ", 1)[1].split("/\n", 1)[0]
    assert (ROOT / report / "report.html").exists()
