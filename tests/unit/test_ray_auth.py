"""Ray's token for the processes of one machine: made once, readable by us only, never forced."""

from __future__ import annotations

from pathlib import Path

from leaderboard.serve.ray_auth import token_env


def test_token_made_once_with_owner_only_mode(tmp_path: Path) -> None:
    env = token_env(tmp_path, environ={})
    path = Path(env["RAY_AUTH_TOKEN_PATH"])
    assert env["RAY_AUTH_MODE"] == "token" and path.parent == tmp_path.resolve()
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0
    assert token_env(tmp_path, environ={}) == env and path.read_text() == token  # kept


def test_the_environment_chooses_first(tmp_path: Path) -> None:
    assert token_env(tmp_path, environ={"RAY_AUTH_MODE": "disabled"}) == {"RAY_AUTH_MODE": "disabled"}
    assert token_env(tmp_path, environ={"RAY_AUTH_TOKEN": "x" * 64}) == {"RAY_AUTH_MODE": "token"}
    assert token_env(tmp_path, environ={"RAY_AUTH_TOKEN_PATH": "/elsewhere"}) == {"RAY_AUTH_MODE": "token"}
    assert not list(tmp_path.iterdir())  # no token made when one is given
