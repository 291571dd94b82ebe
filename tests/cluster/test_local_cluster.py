"""scripts/local-cluster --smoke: three Ray nodes started with `ray start`, the app deployed with
`serve deploy serve_config.yaml`, a sign-up, a write and a read through different nodes, every
listening socket of the cluster on loopback (the script checks it; ``ALLOWED_OFF_LOOPBACK`` in
scripts/local_cluster.py names the exceptions), Ray's token authentication on, and a teardown
that leaves none of the cluster's processes behind."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_local_cluster_smoke_from_the_checkout() -> None:
    env = {**os.environ,
           # the suite's Redis and a database of its own; HTTP off the service's port 8000
           "PGDATABASE": f"{os.environ.get('PGDATABASE', 'leaderboard_test')}_lc",
           "PORT": os.environ.get("TEST_LOCAL_CLUSTER_PORT", "18650"),
           "RAY_NAMESPACE": "leaderboard-lc"}
    run = subprocess.run([str(ROOT / "scripts" / "local-cluster"), "--smoke"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=400)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "smoke: ok" in out, out[-4000:]
    assert len(re.findall(r"/-/healthz: 200", out)) == 3, out[-4000:]  # head and both workers
    assert "listening off loopback" not in out, out[-4000:]
    assert re.search(r"listening: \d+ sockets, all on loopback", out), out[-4000:]
    assert "Ray token authentication: token on every node" in out, out[-4000:]
    assert "a request without the token gets 401" in out, out[-4000:]
    temp_dir = re.search(r"temp dir (/tmp/lb-cluster-\d+)", out)
    assert temp_dir, out[-4000:]
    left = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if any(temp_dir.group(1) in arg for arg in p.info["cmdline"] or [])]
    assert left == [], f"processes of the local cluster left running: {left}"
