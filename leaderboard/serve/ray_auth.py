"""Ray's token authentication for the Ray processes this project starts on one machine."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_FILE = "ray_auth_token"


def token_env(state_dir: str | Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``RAY_AUTH_MODE=token`` with a token file in ``state_dir`` (mode 0600, made once), unless
    the environment already chooses (``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``).

    Ray would otherwise make ``~/.ray/auth_token`` readable by every user (mode 0644).
    """
    env = os.environ if environ is None else environ
    mode = env.get("RAY_AUTH_MODE", "token")
    if mode != "token" or env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH"):
        return {"RAY_AUTH_MODE": mode}
    path = Path(state_dir).resolve() / TOKEN_FILE
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))  # what `ray get-auth-token --generate` makes
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(path)}
