"""Print a per-endpoint summary of a Locust CSV run: req/s, p50/p95/p99, failures, 429s apart."""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(prefix: str) -> int:
    stats = list(csv.DictReader(Path(f"{prefix}_stats.csv").open()))
    failures = list(csv.DictReader(Path(f"{prefix}_failures.csv").open()))
    limited = {r["Name"]: int(r["Request Count"]) for r in stats if r["Type"] == "429"}
    rows = [r for r in stats if r["Type"] not in ("429", "") and r["Name"] != "Aggregated"]
    print(f"{'endpoint':<34} {'req/s':>8} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>6} {'429':>6}")
    for r in rows:
        name = f"{r['Type']} {r['Name']}" if not r["Name"].startswith(r["Type"]) else r["Name"]
        print(f"{name[:34]:<34} {float(r['Requests/s']):>8.1f} {r['50%']:>6} {r['95%']:>6} "
              f"{r['99%']:>6} {r['Failure Count']:>6} {limited.get(r['Name'], 0):>6}")
    total = next((r for r in stats if r["Name"] == "Aggregated"), None)
    if total:
        print(f"{'all (ms: p50/p95/p99)':<34} {float(total['Requests/s']):>8.1f} {total['50%']:>6} "
              f"{total['95%']:>6} {total['99%']:>6} {total['Failure Count']:>6} "
              f"{sum(limited.values()):>6}")
    for f in failures:
        print(f"failure: {f['Method']} {f['Name']}: {f['Error']} x{f['Occurrences']}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
