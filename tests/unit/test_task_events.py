"""The task-event cap reaches every Ray that starts: ``serve_env`` and the cluster's exports."""

from __future__ import annotations

import pytest

from leaderboard.serve import ray_env

CAP = "RAY_task_events_max_num_task_in_gcs"


def test_serve_env_caps_task_events_in_the_gcs() -> None:
    env = ray_env.serve_env(18000)
    assert env[CAP] == ray_env.TASK_EVENTS[CAP]
    assert 0 < int(env[CAP]) < 100_000  # below Ray's default, which grows the GCS by ~300 MiB


def test_exports_carry_the_cap_and_a_set_value_wins(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    ray_env.main(["18001"])
    assert f"export {CAP}={ray_env.TASK_EVENTS[CAP]}" in capsys.readouterr().out.splitlines()
    monkeypatch.setenv(CAP, "500")
    ray_env.main(["18001"])
    assert f"export {CAP}=500" in capsys.readouterr().out.splitlines()
