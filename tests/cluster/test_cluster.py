"""Runs ``node_loss.py`` (a multi-node ``ray.cluster_utils.Cluster``) in its own process.

A Cluster needs its own Ray, and the e2e suite keeps one local Ray for the whole session, so the
scenario runs in a child pytest whatever the order. The child gets a private ``RAY_TMPDIR``:
Ray writes a Cluster's address to ``$RAY_TMPDIR/ray/ray_current_cluster``, and a plain
``ray.init()`` elsewhere on the machine (another test run) would otherwise connect to it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SCENARIO = Path(__file__).with_name("node_loss.py")


@pytest.mark.timeout(300)
def test_node_loss_in_its_own_process() -> None:
    tmp = tempfile.mkdtemp(prefix="lbc-", dir="/tmp")  # short: Ray puts sockets under it
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = tmp
    # the GCS declares a node dead after period x threshold of failed health checks (Ray's
    # defaults, 3 s x 5, make the test ~10 s longer); set them in the environment to measure
    env.setdefault("RAY_health_check_period_ms", "1000")
    env.setdefault("RAY_health_check_failure_threshold", "3")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(SCENARIO), "-q", "-s", "-p", "no:cacheprovider",
             "--rootdir", str(SCENARIO.parents[2])],
            env=env, capture_output=True, text=True, timeout=280,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = [line for line in proc.stdout.splitlines() if line.startswith("CLUSTER_REPORT")]
    print("\n".join(report))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert report, "the scenario printed no report"
