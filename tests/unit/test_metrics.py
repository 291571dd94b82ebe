"""Metrics without Ray: bounded labels, per-batch tallies, the names Prometheus sees."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from leaderboard.actors.shard import WriteCommand, WriteResult
from leaderboard.fold import FoldLag
from leaderboard.metrics.labels import OTHER, BoardLabels, cumulative_buckets, tally
from leaderboard.metrics.specs import NS, SERVE_METRICS, SPECS, Spec, exported_names
from leaderboard.pipeline.stream import Delivery
from leaderboard.pipeline.writer import entry_ages
from leaderboard.settings import MAX_METRICS_BOARDS, parse_metrics_boards

PROM_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def cmd(board: str = "default", user: str = "u") -> WriteCommand:
    return WriteCommand(user, "U", "EU", "set", 1, board=board)


@given(st.lists(st.text(min_size=1, max_size=70), max_size=200))
def test_board_label_values_are_the_named_boards_and_other_only(boards: list[str]) -> None:
    label = BoardLabels(["default", "weekly"])
    assert {label(b) for b in boards} <= {"default", "weekly", OTHER}


def test_named_boards_keep_their_id() -> None:
    label = BoardLabels(["default", "weekly"])
    assert [label("default"), label("weekly"), label("daily"), label("")] == [
        "default", "weekly", OTHER, OTHER]


def test_tally_counts_one_entry_per_label_set() -> None:
    cmds = [cmd(), cmd(), cmd(), cmd("weekly"), cmd("nope"), cmd(), cmd(), cmd("other")]
    results = [
        WriteResult("ok"), WriteResult("ok"), WriteResult("ok", improved=False),
        WriteResult("replay"), WriteResult("unknown_board"),
        WriteResult("rate_limited", scope="user"), WriteResult("rate_limited", scope="region"),
        WriteResult("queue_full"),
    ]
    applied, refused = tally(cmds, results, BoardLabels(["default"]))
    assert applied == {("default", "changed"): 2, ("default", "unchanged"): 1,
                       (OTHER, "replay"): 1}
    assert refused == {(OTHER, "unknown_board", ""): 1, ("default", "rate_limited", "user"): 1,
                       ("default", "rate_limited", "region"): 1, (OTHER, "queue_full", ""): 1}


def test_cumulative_buckets_in_prometheus_form() -> None:
    lags = [0.5, 0.001, 3.0, 0.02, 0.001, 120.0]
    assert cumulative_buckets(lags, (0.001, 0.01, 1, 60)) == [
        ("0.001", 2), ("0.01", 2), ("1", 4), ("60", 5), ("+Inf", 6)]
    assert cumulative_buckets([], (1.0,)) == [("1", 0), ("+Inf", 0)]


@given(st.lists(st.floats(0, 100), max_size=50))
def test_cumulative_buckets_never_decrease_and_end_with_every_value(lags: list[float]) -> None:
    counts = [n for _, n in cumulative_buckets(lags, (0.001, 0.1, 1.0, 10.0))]
    assert counts == sorted(counts) and counts[-1] == len(lags)
    assert counts[2] == sum(1 for x in lags if x <= 1.0)


def test_metrics_boards_parsed_and_bounded() -> None:
    assert parse_metrics_boards(" default, weekly ,,default") == ("default", "weekly")
    assert parse_metrics_boards("") == ()
    with pytest.raises(ValueError, match="not board ids"):
        parse_metrics_boards("default,Weekly")
    many = ",".join(f"b{i}" for i in range(MAX_METRICS_BOARDS + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_METRICS_BOARDS}"):
        parse_metrics_boards(many)


def test_metrics_settings(make_settings) -> None:  # type: ignore[no-untyped-def]
    s = make_settings()
    assert s.metrics_board_list == ("default",) and s.metrics_export_port == 8090
    assert make_settings(METRICS_BOARDS="a,b").metrics_board_list == ("a", "b")
    with pytest.raises(ValidationError, match="METRICS_BOARDS"):
        make_settings(METRICS_BOARDS="no spaces allowed")
    with pytest.raises(ValidationError):
        make_settings(METRICS_EXPORT_PORT="0")


def test_fold_lag_in_prometheus_cumulative_form() -> None:
    lag = FoldLag.from_hash({"le_1000": 3, "le_100000": 2, "le_inf": 1})
    assert lag.cumulative() == [("0.001", 3), ("0.01", 3), ("0.1", 5), ("1", 5), ("10", 5),
                                ("+Inf", 6)]


def test_entry_ages_from_stream_ids() -> None:
    deliveries = [Delivery("s", "1700000000000-0", {}), Delivery("s", "1700000001500-3", {})]
    assert entry_ages(deliveries, 1700000002.0) == pytest.approx([2.0, 0.5])
    assert entry_ages(deliveries, 1699999999.0) == [0.0, 0.0]  # clocks apart: never negative


def test_specs_are_unique_prometheus_names_with_bounded_labels() -> None:
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    for spec in SPECS:
        assert PROM_NAME.match(spec.name) and spec.name.startswith("leaderboard_"), spec
        assert spec.tags[0] == NS and len(set(spec.tags)) == len(spec.tags), spec
        assert not {"user", "user_id", "board_id"} & set(spec.tags), spec
        assert (spec.kind == "histogram") == bool(spec.buckets), spec
        assert list(spec.buckets) == sorted(set(spec.buckets)), spec


def test_exported_names_as_rays_agent_writes_them() -> None:
    assert Spec("x", "counter", "", ()).exported() == {"ray_x_total"}
    assert Spec("x", "gauge", "", ()).exported() == {"ray_x"}
    assert Spec("x", "histogram", "", (), (1,)).exported() == {
        "ray_x_bucket", "ray_x_sum", "ray_x_count"}
    assert "ray_leaderboard_score_writes_refused_total" in exported_names()
    assert set(SERVE_METRICS) <= exported_names()
