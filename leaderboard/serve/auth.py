"""Passwords (salted scrypt) and tokens (HS256 JWT with pinned claims)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import jwt
from pydantic import ValidationError

from leaderboard.errors import Unauthorized
from leaderboard.models import Claims
from leaderboard.settings import Settings

ISSUER = AUDIENCE = "leaderboard"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "name", "region", "iat", "exp", "iss", "aud"]
_R, _P = 8, 1


def _maxmem(n: int, r: int) -> int:
    """scrypt needs 128*r*n bytes; OpenSSL's default cap (32 MiB) would refuse n >= 32768."""
    return 2 * 128 * r * n + (1 << 20)


def hash_password(password: str, n: int) -> str:
    """``scrypt$n$r$p$salt$hash`` with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32, maxmem=_maxmem(n, _R)
    )
    b64 = base64.b64encode
    return f"scrypt${n}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored ``hash_password`` value."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
            dklen=32, maxmem=_maxmem(int(n), int(r)),
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def issue_token(
    settings: Settings, user_id: str, name: str, region: str, role: str = "player",
    ttl_seconds: int | None = None,
) -> str:
    """A signed token; players carry no ``role`` claim, operators' tokens say ``admin``."""
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user_id,
        "name": name,
        "region": region,
        "iat": now,
        "exp": now + (ttl_seconds or settings.jwt_ttl_seconds),
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    if role != "player":
        claims["role"] = role
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=ALGORITHM)


def decode_token(settings: Settings, token: str) -> Claims:
    """Verify signature, algorithm, issuer, audience, expiry and presence of every claim."""
    try:
        raw = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
        return Claims.model_validate(raw)
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("token expired") from exc
    except (jwt.InvalidTokenError, ValidationError) as exc:
        raise Unauthorized("invalid token") from exc


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not header:
        raise Unauthorized("missing Authorization: Bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return token.strip()


class TokenCache:
    """Claims of tokens already verified, until they expire.

    A token string that verified once verifies again (same bytes, same signature), so the HMAC
    and claim checks are paid once per token, not once per request. Expiry is still checked on
    every use. Bounded: emptied when full.
    """

    def __init__(self, settings: Settings, max_size: int = 100_000) -> None:
        self._settings = settings
        self._max_size = max_size
        self._claims: dict[str, Claims] = {}

    def decode(self, token: str) -> Claims:
        claims = self._claims.get(token)
        if claims is not None:
            if claims.exp > time.time():
                return claims
            del self._claims[token]
            raise Unauthorized("token expired")
        claims = decode_token(self._settings, token)
        if len(self._claims) >= self._max_size:
            self._claims.clear()
        self._claims[token] = claims
        return claims
