"""Passwords (scrypt) and tokens (HS256 JWT with pinned claims)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from leaderboard.errors import LeaderboardError, Unauthorized
from leaderboard.models import Claims
from leaderboard.serve import auth
from leaderboard.settings import Settings

N = 16  # cheap scrypt cost for tests


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings(JWT_TTL_SECONDS=600)


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    c: dict[str, object] = {
        "sub": "alice", "name": "Alice", "region": "EU", "iat": now, "exp": now + 600,
        "iss": "leaderboard", "aud": "leaderboard",
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _sign(settings: Settings, claims: dict[str, object], alg: str = "HS256", key: str | None = None) -> str:
    return jwt.encode(claims, key or settings.jwt_secret.get_secret_value(), algorithm=alg)


# -- passwords ------------------------------------------------------------------------------


def test_hash_format_and_roundtrip() -> None:
    stored = auth.hash_password("correct horse", N)
    tag, n, r, p, salt, digest = stored.split("$")
    assert (tag, n, r, p) == ("scrypt", str(N), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert "correct horse" not in stored
    assert auth.verify_password("correct horse", stored)


@pytest.mark.parametrize("wrong", ["correct hors", "Correct horse", "correct horse ", ""])
def test_wrong_password_rejected(wrong: str) -> None:
    assert not auth.verify_password(wrong, auth.hash_password("correct horse", N))


def test_salt_is_fresh_each_time() -> None:
    a, b = auth.hash_password("same password", N), auth.hash_password("same password", N)
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]
    assert auth.verify_password("same password", a) and auth.verify_password("same password", b)


def test_cost_parameter_is_read_from_the_stored_hash() -> None:
    stored = auth.hash_password("pw-pw-pw-pw", 32)
    assert stored.split("$")[1] == "32"
    assert auth.verify_password("pw-pw-pw-pw", stored)
    # the same digest under another n must not verify
    parts = stored.split("$")
    parts[1] = "16"
    assert not auth.verify_password("pw-pw-pw-pw", "$".join(parts))


def test_unicode_password() -> None:
    stored = auth.hash_password("pässwörd-日本語", N)
    assert auth.verify_password("pässwörd-日本語", stored)
    assert not auth.verify_password("passwörd-日本語", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "garbage",
        "scrypt$16$8$1$salt",  # too few fields
        "scrypt$16$8$1$a$b$c",  # too many fields
        "scrypt$abc$8$1$AAAA$AAAA",  # n not a number
        "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",  # n not a power of two
        "scrypt$16$8$1$!!!!$AAAA",  # salt not base64
        "scrypt$16$8$1$AAAAAAAAAAAAAAAAAAAAAA==$%%%%",  # digest not base64
    ],
)
def test_malformed_stored_hash_is_false_not_error(stored: str) -> None:
    assert auth.verify_password("whatever-password", stored) is False


def test_unencodable_password_is_false_not_error() -> None:
    assert auth.verify_password("\ud800 lone surrogate", auth.hash_password("x" * 8, N)) is False


def test_truncated_digest_rejected() -> None:
    stored = auth.hash_password("correct horse", N)
    head, digest = stored.rsplit("$", 1)
    short = base64.b64encode(base64.b64decode(digest)[:16]).decode()
    assert not auth.verify_password("correct horse", f"{head}${short}")


def test_stronger_cost_32768_works() -> None:
    stored = auth.hash_password("correct horse", 32768)
    assert auth.verify_password("correct horse", stored)


# -- tokens ---------------------------------------------------------------------------------


def test_issue_then_decode_roundtrip(settings: Settings) -> None:
    before = int(time.time())
    token = auth.issue_token(settings, "alice.b-1", "Alice B", "EU")
    claims = auth.decode_token(settings, token)
    assert isinstance(claims, Claims)
    assert (claims.sub, claims.name, claims.region) == ("alice.b-1", "Alice B", "EU")
    assert claims.iss == claims.aud == "leaderboard"
    assert before <= claims.iat <= int(time.time())
    assert claims.exp == claims.iat + 600


def test_issued_token_is_hs256_with_every_required_claim(settings: Settings) -> None:
    token = auth.issue_token(settings, "alice", "Alice", "EU")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    raw = jwt.decode(token, options={"verify_signature": False})
    assert set(auth.REQUIRED_CLAIMS) <= set(raw)


def test_token_from_another_secret_rejected(settings: Settings, make_settings) -> None:  # type: ignore[no-untyped-def]
    other = make_settings(JWT_SECRET="another-secret-another-secret-1234")
    token = auth.issue_token(other, "alice", "Alice", "EU")
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.decode_token(settings, token)


def test_tampered_payload_rejected(settings: Settings) -> None:
    token = auth.issue_token(settings, "alice", "Alice", "EU")
    head, _, sig = token.split(".")
    forged_payload = base64.urlsafe_b64encode(
        json.dumps(_claims(sub="mallory")).encode()
    ).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        auth.decode_token(settings, f"{head}.{forged_payload}.{sig}")


def test_alg_none_rejected(settings: Settings) -> None:
    token = jwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.decode_token(settings, token)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_rejected(settings: Settings, alg: str) -> None:
    # same secret, valid claims: only the pinned algorithm may pass
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.decode_token(settings, _sign(settings, _claims(), alg=alg))


def test_hand_signed_hs256_token_accepted(settings: Settings) -> None:
    # the positive control for the rejections below
    assert auth.decode_token(settings, _sign(settings, _claims())).sub == "alice"


@pytest.mark.parametrize("missing", ["sub", "name", "region", "iat", "exp", "iss", "aud"])
def test_every_claim_required(settings: Settings, missing: str) -> None:
    token = _sign(settings, _claims(**{missing: None}))
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.decode_token(settings, token)


@pytest.mark.parametrize(
    "over",
    [
        {"iss": "someone-else"},
        {"aud": "someone-else"},
        {"sub": "bad user id!"},
        {"sub": ""},
        {"sub": "a" * 65},
        {"name": ""},
        {"region": ""},
        {"iat": int(time.time()) + 3600},  # issued in the future
    ],
)
def test_wrong_claims_rejected(settings: Settings, over: dict[str, object]) -> None:
    with pytest.raises(Unauthorized, match="invalid token"):
        auth.decode_token(settings, _sign(settings, _claims(**over)))


def test_expired_token_says_expired(settings: Settings) -> None:
    now = int(time.time())
    token = _sign(settings, _claims(iat=now - 7200, exp=now - 3600))
    with pytest.raises(Unauthorized, match="token expired") as info:
        auth.decode_token(settings, token)
    assert info.value.status_code == 401 and info.value.code == "unauthorized"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "....", "e30.e30.e30"])
def test_garbage_tokens_rejected(settings: Settings, token: str) -> None:
    with pytest.raises(Unauthorized):
        auth.decode_token(settings, token)


# -- Authorization header -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer   abc  ", "abc"),
    ],
)
def test_bearer_token_parsed(header: str, token: str) -> None:
    assert auth.bearer_token(header) == token


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized, match="missing"):
        auth.bearer_token(header)


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc", "abc", " Bearer abc",
               "Bearerabc"],
)
def test_malformed_header_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized, match="Bearer <token>") as info:
        auth.bearer_token(header)
    assert isinstance(info.value, LeaderboardError) and info.value.status_code == 401


def test_header_token_decodes(settings: Settings) -> None:
    token = auth.issue_token(settings, "bob", "Bob", "NA")
    assert auth.decode_token(settings, auth.bearer_token(f"Bearer {token}")).sub == "bob"


def test_token_cache_verifies_once_and_still_expires(settings: Settings) -> None:
    cache = auth.TokenCache(settings)
    token = auth.issue_token(settings, "cached", "C", "EU", ttl_seconds=60)
    first = cache.decode(token)
    assert cache.decode(token) is first  # second use: no re-verification
    with pytest.raises(Unauthorized):
        cache.decode(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
    expired = first.model_copy(update={"exp": int(time.time()) - 1})
    cache._claims[token] = expired  # as if its lifetime had passed while cached
    with pytest.raises(Unauthorized, match="expired"):
        cache.decode(token)
    small = auth.TokenCache(settings, max_size=2)
    for i in range(3):
        small.decode(auth.issue_token(settings, f"u{i}", "U", "EU"))
    assert len(small._claims) == 1  # emptied when full, then refilled
