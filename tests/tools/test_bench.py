"""scripts/bench --quick: every numbered measurement of the full run, in one bounded smoke run.

The scale-out rows (1 vs 2 ranking replicas, 1 vs 2 Redis instances) are left out of the quick
run: three more apps and runs for ~25 s of the suite. What they serve through is tested apart
(tests/e2e/test_shards.py: region boards on a second instance; test_autoscaling.py: a second
ranking replica); their bench code runs only in a full bench (``scripts/bench --only scale``).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_measures_every_item_and_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    out.write_text("# Performance\n\nnarrative kept\n")
    env = {**os.environ,
           # its own Ray, HTTP port, Redis index and database: the suite's are in use
           "BENCH_HTTP_PORT": os.environ.get("TEST_BENCH_HTTP_PORT", "18700"),
           "BENCH_REDIS_URL": os.environ.get(
               "TEST_BENCH_REDIS_URL", os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/9"),
           "BENCH_PGDATABASE": f"{os.environ.get('PGDATABASE', 'leaderboard_test')}_bench"}
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "scripts/bench.py", "--quick",
                          "--out", str(out)], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=420)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text()
    assert "narrative kept" in report and "<!-- bench:begin -->" in report
    rows = [line for line in report.splitlines() if re.match(r"\| [1-8] \|", line)]
    items = {int(line.split("|")[1]) for line in rows}
    assert items == set(range(1, 9)), rows
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[7] == "0", f"errors in {line}"  # no failed request, under load or not
        if cells[2] != "-":  # some requests completed (a stall shows in the next columns)
            assert float(cells[2].split()[0].replace(",", "")) > 0, line
        if cells[3] != "-" and "req/s" in cells[2]:  # every HTTP run: slowest request and second
            assert float(cells[5]) > 0 and re.fullmatch(r"[\d,]+ req", cells[6]), line
    for target in ("single writes / plain ceiling", "writer pool / bare upsert",
                   "write-to-Postgres lag p99", "batch endpoint / write script pipelined on Redis"):
        assert target in report
