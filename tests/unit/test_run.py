"""make run's start-up checks and what it prints."""

from __future__ import annotations

import socket

import pytest

from leaderboard.run import check_metrics_port, metrics_lines


def test_a_taken_metrics_port_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            check_metrics_port(port)
    assert exc.value.code == 2
    assert f"METRICS_EXPORT_PORT {port} is in use" in capsys.readouterr().err
    check_metrics_port(port)  # free again: no error


def test_it_prints_both_metrics_endpoints(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAY_SERVE_HAPROXY_METRICS_PORT", "19999")
    monkeypatch.delenv("METRICS_HOST", raising=False)
    lines = metrics_lines(make_settings(METRICS_EXPORT_PORT="18090"))
    assert lines[0].startswith("metrics: http://127.0.0.1:18090/metrics (Ray's metrics agent")
    assert lines[1] == "metrics: http://127.0.0.1:19999/metrics (HAProxy's own)"
