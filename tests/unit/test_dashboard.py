"""docs/grafana-dashboard.json cannot drift from the metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from leaderboard.metrics.specs import SERVE_METRICS, SPECS, exported_names

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
METRIC = re.compile(r"\b(ray_[a-zA-Z0-9_:]+)")


def panels(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows included."""
    out = []
    for panel in node.get("panels", []):
        out.append(panel)
        out += panels(panel)
    return out


def exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in panels(dash) for t in p.get("targets", [])]


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    used = {m for e in exprs() for m in METRIC.findall(e)}
    assert used, "no queries found"
    assert not used - exported_names(), f"unknown metrics: {sorted(used - exported_names())}"


def test_the_dashboard_shows_every_metric_of_ours_and_serves() -> None:
    used = {m for e in exprs() for m in METRIC.findall(e)}
    missing = [s.name for s in SPECS if not s.exported() & used]
    assert not missing, f"metrics without a panel: {missing}"
    assert set(SERVE_METRICS) <= used


def test_panels_are_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "namespace", "application"} <= names
    for panel in panels(dash):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            ours = [m for m in METRIC.findall(target["expr"]) if m.startswith("ray_leaderboard")]
            assert all(f"{m}{{namespace=~\"$namespace\"" in target["expr"] for m in ours), \
                target["expr"]  # every query of ours follows the BOARD picker
