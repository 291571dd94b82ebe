"""End-to-end tests of the whole HTTP API on a real local Ray Serve, Redis and Postgres.

Every test uses fresh user ids from ``uid()``; only tests that need an exact board
(top-N contents, totals, ranks among a known set) use the ``clean`` fixture.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
import redis.asyncio as aioredis

from tests.e2e.conftest import Service, bearer, register, uid, wait_drained

MAX = 2**53 - 1
PASSWORD = "correct horse battery"
REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]
REQUIRED_CLAIMS = ["sub", "name", "region", "iat", "exp", "iss", "aud"]
OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"


# -- helpers ------------------------------------------------------------------------------


def assert_error(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the service's JSON error shape with this status and code."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"], body
    return dict(body)


def entry(rank: int, user_id: str, region: str, score: int) -> dict[str, Any]:
    """The entry a user registered by ``register()`` has."""
    return {"rank": rank, "user_id": user_id, "name": f"Name {user_id}", "region": region,
            "score": score, "metadata": {}}


async def user_with_score(client: httpx.AsyncClient, region: str, score: int,
                          prefix: str = "u") -> tuple[str, str]:
    """Register a user, set their score; returns (user_id, token)."""
    user = uid(prefix)
    token = await register(client, user, region=region)
    r = await client.post("/score/update", json={"score": score}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == score
    return user, token


async def rank_of(client: httpx.AsyncClient, user: str, region: str = "GLOBAL") -> httpx.Response:
    return await client.get(f"/rank/{user}", params={"region": region})


def claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": uid("jwt"), "name": "Minted", "region": "EU", "iat": now,
                         "exp": now + 600, "iss": "leaderboard", "aud": "leaderboard"}
    c.update(override)
    return c


def mint(secret: str, drop: str | None = None, alg: str = "HS256", **override: Any) -> str:
    c = claims(**override)
    if drop:
        del c[drop]
    return jwt.encode(c, secret, algorithm=alg)


def secret_of(service: Service) -> str:
    return service.settings.jwt_secret.get_secret_value()


# -- health, docs, unknown paths ----------------------------------------------------------


async def test_health_reports_every_component(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["redis"] == "ok" and body["postgres"] == "ok"
    assert set(body["backlog"]) == set(REGIONS)
    assert all(isinstance(v, int) and v >= 0 for v in body["backlog"].values())


async def test_openapi_and_docs(client: httpx.AsyncClient) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "Leaderboard"
    paths = spec["paths"]
    for path, method in [("/auth/register", "post"), ("/auth/login", "post"),
                         ("/score/create", "post"), ("/score/update", "post"),
                         ("/score/add", "post"), ("/top", "get"), ("/rank/{user_id}", "get"),
                         ("/around/{user_id}", "get"), ("/health", "get")]:
        assert method in paths[path], path
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "text/html" in r.headers["content-type"]
    assert "swagger" in r.text.lower() and "/openapi.json" in r.text


@pytest.mark.parametrize("method,path", [
    ("GET", "/nope"), ("POST", "/nope"), ("GET", "/score"), ("GET", "/rank"),
    ("GET", "/top/extra"), ("GET", "/auth/register/x"),
])
async def test_unknown_path_is_json_404(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await client.request(method, path), 404, "not_found")


@pytest.mark.parametrize("method,path", [
    ("GET", "/score/update"), ("GET", "/auth/login"), ("POST", "/top"), ("DELETE", "/health"),
])
async def test_wrong_method_is_json_405(client: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await client.request(method, path), 405, "method_not_allowed")


# -- register and login -------------------------------------------------------------------


async def test_register_returns_token_and_user(client: httpx.AsyncClient,
                                               service: Service) -> None:
    user = uid()
    r = await client.post("/auth/register", json={
        "user_id": user, "name": "Zoë 🎮", "region": "eu", "password": "12345678"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    assert body["user"] == {"user_id": user, "name": "Zoë 🎮", "region": "EU"}
    decoded = jwt.decode(body["token"], secret_of(service), algorithms=["HS256"],
                         audience="leaderboard", issuer="leaderboard")
    assert decoded["sub"] == user and decoded["name"] == "Zoë 🎮" and decoded["region"] == "EU"
    assert decoded["exp"] > decoded["iat"] >= int(time.time()) - 60
    # an account alone is not an entry
    assert_error(await rank_of(client, user), 404, "not_found")
    # and the token works
    r = await client.post("/score/update", json={"score": 3}, headers=bearer(body["token"]))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Zoë 🎮" and r.json()["region"] == "EU"


@pytest.mark.parametrize("region", ["GLOBAL", "asia", "Eu", "NA", " na "])
async def test_register_region_is_case_insensitive(client: httpx.AsyncClient,
                                                   region: str) -> None:
    user = uid()
    r = await client.post("/auth/register", json={
        "user_id": user, "name": "n", "region": region, "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["user"]["region"] == region.strip().upper()


async def test_register_with_initial_score_creates_entry(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="NA", initialScore=1234)
    r = await rank_of(client, user, "NA")
    assert r.status_code == 200, r.text
    assert r.json()["score"] == 1234 and r.json()["region"] == "NA"
    assert r.json()["name"] == f"Name {user}"
    # the entry exists, so create conflicts
    r = await client.post("/score/create", json={}, headers=bearer(token))
    assert_error(r, 409, "conflict")


async def test_register_existing_user_conflicts(client: httpx.AsyncClient) -> None:
    user = uid()
    await register(client, user, region="EU")
    body = {"user_id": user, "name": "Other", "region": "NA", "password": "another password"}
    assert_error(await client.post("/auth/register", json=body), 409, "conflict")
    # the original account is untouched: old password works, new one does not
    r = await client.post("/auth/login", json={"user_id": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = await client.post("/auth/login", json={"user_id": user, "password": "another password"})
    assert_error(r, 401, "unauthorized")


_MISSING = object()


@pytest.mark.parametrize("override", [
    {"user_id": ""}, {"user_id": "a" * 65}, {"user_id": "bad id"}, {"user_id": "bad/id"},
    {"user_id": "bad!id"}, {"user_id": "ünï"}, {"user_id": 123}, {"user_id": None},
    {"name": ""}, {"name": "x" * 201}, {"name": 5}, {"name": None},
    {"region": "MARS"}, {"region": ""}, {"region": " "}, {"region": 1}, {"region": "x" * 51},
    {"password": "1234567"}, {"password": ""}, {"password": 12345678}, {"password": "p" * 1025},
    {"initialScore": 1.5}, {"initialScore": 1.0}, {"initialScore": "7"}, {"initialScore": True},
    {"initialScore": MAX + 1}, {"initialScore": -MAX - 1},
    {"user_id": _MISSING}, {"name": _MISSING}, {"region": _MISSING}, {"password": _MISSING},
], ids=lambda o: "-".join(f"{k}={'MISSING' if v is _MISSING else repr(v)[:12]}"
                          for k, v in o.items()))
async def test_register_rejects_invalid_body(client: httpx.AsyncClient,
                                             override: dict[str, Any]) -> None:
    user = uid()
    body: dict[str, Any] = {"user_id": user, "name": "n", "region": "EU", "password": PASSWORD}
    body.update(override)
    body = {k: v for k, v in body.items() if v is not _MISSING}
    assert_error(await client.post("/auth/register", json=body), 422, "validation_error")
    # nothing was created: the same user id can still register, and has no entry
    if isinstance(body.get("user_id"), str) and body["user_id"] == user:
        await register(client, user)
        assert_error(await rank_of(client, user), 404, "not_found")


@pytest.mark.parametrize("payload", [
    b'{"user_id": "x", ', b"not json", b"", b"[]", b"null", b'"text"', b"{'a': 1}",
], ids=["truncated", "not-json", "empty", "array", "null", "string", "single-quotes"])
@pytest.mark.parametrize("path", ["/auth/register", "/auth/login"])
async def test_auth_rejects_malformed_json(client: httpx.AsyncClient, path: str,
                                           payload: bytes) -> None:
    r = await client.post(path, content=payload, headers={"Content-Type": "application/json"})
    body = assert_error(r, 422, "validation_error")
    if payload in (b'{"user_id": "x", ', b"not json", b"{'a': 1}"):
        assert "malformed JSON" in body["detail"]


async def test_login_returns_working_token(client: httpx.AsyncClient, service: Service) -> None:
    user = uid()
    await register(client, user, region="ASIA")
    r = await client.post("/auth/login", json={"user_id": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"token"}
    token = r.json()["token"]
    decoded = jwt.decode(token, secret_of(service), algorithms=["HS256"],
                         audience="leaderboard", issuer="leaderboard")
    assert (decoded["sub"], decoded["name"], decoded["region"]) == (user, f"Name {user}", "ASIA")
    r = await client.post("/score/update", json={"score": 77}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == user and r.json()["region"] == "ASIA"
    assert r.json()["score"] == 77


async def test_login_wrong_password_and_unknown_user_look_the_same(
        client: httpx.AsyncClient) -> None:
    user = uid()
    await register(client, user)
    wrong = await client.post("/auth/login", json={"user_id": user, "password": PASSWORD + "x"})
    unknown = await client.post("/auth/login", json={"user_id": uid(), "password": PASSWORD})
    case = await client.post("/auth/login", json={"user_id": user.upper(), "password": PASSWORD})
    b1 = assert_error(wrong, 401, "unauthorized")
    b2 = assert_error(unknown, 401, "unauthorized")
    b3 = assert_error(case, 401, "unauthorized")
    assert b1 == b2 == b3


@pytest.mark.parametrize("body", [
    {"password": PASSWORD}, {"user_id": "someone"}, {"user_id": "someone", "password": ""},
    {"user_id": "bad id", "password": PASSWORD}, {"user_id": 5, "password": PASSWORD},
    {"user_id": "someone", "password": 12345678}, {},
], ids=["no-user", "no-password", "empty-password", "bad-user-id", "int-user", "int-password",
        "empty"])
async def test_login_rejects_invalid_body(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_error(await client.post("/auth/login", json=body), 422, "validation_error")


# -- authentication of writes -------------------------------------------------------------

TokenHeaders = Callable[[str, str], dict[str, str]]  # (secret, sub) -> headers


def _hdr(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


def _without(claim: str) -> TokenHeaders:
    def make(secret: str, sub: str) -> dict[str, str]:
        return _hdr(mint(secret, drop=claim, sub=sub))
    return make


AUTH_CASES: list[tuple[str, TokenHeaders]] = [
    ("missing-header", lambda s, sub: {}),
    ("empty-header", lambda s, sub: {"Authorization": ""}),
    ("basic-scheme", lambda s, sub: _hdr(base64.b64encode(b"u:p").decode(), "Basic")),
    ("token-scheme-valid-jwt", lambda s, sub: _hdr(mint(s, sub=sub), "Token")),
    ("jwt-without-scheme", lambda s, sub: {"Authorization": mint(s, sub=sub)}),
    ("bearer-no-token", lambda s, sub: {"Authorization": "Bearer"}),
    ("garbage", lambda s, sub: _hdr("not.a.jwt")),
    ("truncated-signature", lambda s, sub: _hdr(mint(s, sub=sub)[:-4])),
    ("other-secret", lambda s, sub: _hdr(mint(OTHER_SECRET, sub=sub))),
    ("expired", lambda s, sub: _hdr(mint(s, sub=sub, iat=int(time.time()) - 7200,
                                         exp=int(time.time()) - 60))),
    ("alg-none", lambda s, sub: _hdr(jwt.encode(claims(sub=sub), "", algorithm="none"))),
    ("alg-hs512", lambda s, sub: _hdr(mint(s, sub=sub, alg="HS512"))),
    ("wrong-iss", lambda s, sub: _hdr(mint(s, sub=sub, iss="someone-else"))),
    ("wrong-aud", lambda s, sub: _hdr(mint(s, sub=sub, aud="someone-else"))),
    ("invalid-sub", lambda s, sub: _hdr(mint(s, sub="bad id!"))),
    *[(f"missing-{c}", _without(c)) for c in REQUIRED_CLAIMS],
]

WRITES = [("/score/create", {"initialScore": 5}), ("/score/update", {"score": 5}),
          ("/score/add", {"delta": 5})]


async def test_minted_token_is_accepted(client: httpx.AsyncClient, service: Service) -> None:
    """Positive control for the 401 cases: a correctly minted token writes."""
    sub = uid("jwt")
    r = await client.post("/score/update", json={"score": 9},
                          headers=_hdr(mint(secret_of(service), sub=sub, name="Minted")))
    assert r.status_code == 200, r.text
    assert r.json() == {"rank": r.json()["rank"], "user_id": sub, "name": "Minted",
                        "region": "EU", "score": 9, "metadata": {}}
    assert (await rank_of(client, sub, "EU")).json()["score"] == 9


@pytest.mark.parametrize("case", AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
async def test_writes_reject_bad_authorization(client: httpx.AsyncClient, service: Service,
                                               case: tuple[str, TokenHeaders]) -> None:
    name, make = case
    sub = uid("jwt")
    for path, body in WRITES:
        r = await client.post(path, json=body, headers=make(secret_of(service), sub))
        detail = assert_error(r, 401, "unauthorized")["detail"]
        if name == "expired":
            assert "expired" in detail
    assert_error(await rank_of(client, sub), 404, "not_found")


async def test_token_region_not_served_is_rejected(client: httpx.AsyncClient,
                                                   service: Service) -> None:
    sub = uid("jwt")
    r = await client.post("/score/update", json={"score": 1},
                          headers=_hdr(mint(secret_of(service), sub=sub, region="MARS")))
    assert_error(r, 422, "validation_error")
    assert_error(await rank_of(client, sub), 404, "not_found")


# -- score writes -------------------------------------------------------------------------


async def test_create_entry(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="EU")
    r = await client.post("/score/create", json={"region": "eu", "initialScore": 250},
                          headers=bearer(token))
    assert r.status_code == 201, r.text
    e = r.json()
    assert set(e) == {"rank", "user_id", "name", "region", "score", "metadata"}
    assert (e["user_id"], e["name"], e["region"], e["score"]) == (user, f"Name {user}", "EU", 250)
    assert isinstance(e["rank"], int) and e["rank"] >= 1
    # 409 on a second create, with the score untouched
    r = await client.post("/score/create", json={"initialScore": 9}, headers=bearer(token))
    assert_error(r, 409, "conflict")
    assert (await rank_of(client, user, "EU")).json()["score"] == 250


async def test_create_defaults_to_zero_without_region(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="ASIA")
    r = await client.post("/score/create", json={}, headers=bearer(token))
    assert r.status_code == 201, r.text
    assert r.json()["score"] == 0 and r.json()["region"] == "ASIA"
    assert (await rank_of(client, user, "ASIA")).json()["score"] == 0


async def test_create_with_no_body_at_all(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="NA")
    r = await client.post("/score/create", headers=bearer(token))
    assert r.status_code == 201, r.text
    assert (r.json()["user_id"], r.json()["score"]) == (user, 0)


@pytest.mark.parametrize("account,given,code", [
    ("EU", "NA", "validation_error"), ("EU", "GLOBAL", "validation_error"),
    ("GLOBAL", "EU", "validation_error"), ("EU", "MARS", "validation_error"),
])
async def test_create_region_mismatch(client: httpx.AsyncClient, account: str, given: str,
                                      code: str) -> None:
    user = uid()
    token = await register(client, user, region=account)
    r = await client.post("/score/create", json={"region": given, "initialScore": 1},
                          headers=bearer(token))
    assert_error(r, 422, code)
    assert_error(await rank_of(client, user), 404, "not_found")
    # the right region still works afterwards
    r = await client.post("/score/create", json={"region": account.lower(), "initialScore": 1},
                          headers=bearer(token))
    assert r.status_code == 201, r.text


async def test_update_creates_then_sets(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="NA")
    r = await client.post("/score/update", json={"score": 10}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == 10 and r.json()["user_id"] == user
    r = await client.post("/score/update", json={"score": -3}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == -3
    r = await rank_of(client, user, "NA")
    assert r.json()["score"] == -3


async def test_add_from_zero_and_accumulates(client: httpx.AsyncClient) -> None:
    user = uid()
    token = await register(client, user, region="EU")
    r = await client.post("/score/add", json={"delta": 5}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == 5
    r = await client.post("/score/add", json={"delta": -12}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == -7
    r = await client.post("/score/add", json={"delta": 0}, headers=bearer(token))
    assert r.json()["score"] == -7
    assert (await rank_of(client, user, "EU")).json()["score"] == -7


@pytest.mark.parametrize("start,delta,result", [
    (MAX - 1, 1, MAX), (-MAX + 1, -1, -MAX), (MAX, -MAX, 0), (-MAX, MAX, 0), (0, MAX, MAX),
])
async def test_add_up_to_the_limit(client: httpx.AsyncClient, start: int, delta: int,
                                   result: int) -> None:
    user = uid()
    token = await register(client, user)
    r = await client.post("/score/update", json={"score": start}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["score"] == start, r.text
    r = await client.post("/score/add", json={"delta": delta}, headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["score"] == result
    assert (await rank_of(client, user)).json()["score"] == result


@pytest.mark.parametrize("start,delta", [
    (MAX, 1), (-MAX, -1), (MAX, MAX), (-MAX, -MAX), (MAX - 10, 11), (1, MAX),
])
async def test_add_out_of_range(client: httpx.AsyncClient, start: int, delta: int) -> None:
    user = uid()
    token = await register(client, user)
    r = await client.post("/score/update", json={"score": start}, headers=bearer(token))
    assert r.status_code == 200, r.text
    r = await client.post("/score/add", json={"delta": delta}, headers=bearer(token))
    assert_error(r, 422, "score_out_of_range")
    assert (await rank_of(client, user)).json()["score"] == start


@pytest.mark.parametrize("raw", [
    "1.5", "1.0", "-0.0", '"5"', '"abc"', "true", "false", "null", "1e400", "-1e400", "1e3",
    "NaN", "Infinity", str(MAX + 1), str(-MAX - 1), str(2**64), "[1]", '{"v": 1}',
])
async def test_score_values_must_be_safe_integers(client: httpx.AsyncClient, raw: str) -> None:
    user = uid()
    token = await register(client, user)
    headers = {**bearer(token), "Content-Type": "application/json"}
    for path, field in [("/score/create", "initialScore"), ("/score/update", "score"),
                        ("/score/add", "delta")]:
        r = await client.post(path, content=f'{{"{field}": {raw}}}', headers=headers)
        assert_error(r, 422, "validation_error")
    assert_error(await rank_of(client, user), 404, "not_found")


@pytest.mark.parametrize("path,payload", [
    ("/score/update", b'{"score": '), ("/score/update", b"score=5"), ("/score/update", b""),
    ("/score/update", b"{}"), ("/score/update", b'{"delta": 5}'), ("/score/update", b"[5]"),
    ("/score/add", b'{"delta": 1'), ("/score/add", b"{}"), ("/score/add", b'{"score": 5}'),
    ("/score/add", b"null"), ("/score/create", b"{,}"), ("/score/create", b'{"region": 5}'),
    ("/score/create", b'{"region": ""}'), ("/score/create", b"[]"),
])
async def test_writes_reject_malformed_bodies(client: httpx.AsyncClient, path: str,
                                              payload: bytes) -> None:
    user = uid()
    token = await register(client, user)
    r = await client.post(path, content=payload,
                          headers={**bearer(token), "Content-Type": "application/json"})
    assert_error(r, 422, "validation_error")
    assert_error(await rank_of(client, user), 404, "not_found")


async def test_extreme_scores_round_trip_exactly(client: httpx.AsyncClient) -> None:
    hi, _ = await user_with_score(client, "EU", MAX)
    lo, _ = await user_with_score(client, "EU", -MAX)
    near, _ = await user_with_score(client, "EU", MAX - 1)
    for user, score in [(hi, MAX), (lo, -MAX), (near, MAX - 1)]:
        r = await rank_of(client, user, "EU")
        assert r.status_code == 200 and r.json()["score"] == score, r.text
    assert (await rank_of(client, hi)).json()["rank"] < (await rank_of(client, near)).json()["rank"]


# -- boards and regions -------------------------------------------------------------------


async def test_global_user_only_on_global_board(client: httpx.AsyncClient) -> None:
    user, _ = await user_with_score(client, "GLOBAL", 4242)
    r = await rank_of(client, user, "GLOBAL")
    assert r.status_code == 200, r.text
    assert r.json()["region"] == "GLOBAL" and r.json()["score"] == 4242
    for region in ["ASIA", "EU", "NA"]:
        assert_error(await rank_of(client, user, region), 404, "not_found")
        assert_error(await client.get(f"/around/{user}", params={"region": region}),
                     404, "not_found")


@pytest.mark.parametrize("region", ["ASIA", "EU", "NA"])
async def test_region_user_on_own_board_and_global(client: httpx.AsyncClient,
                                                   region: str) -> None:
    user, _ = await user_with_score(client, region, 31337)
    for board in ["GLOBAL", region, region.lower()]:
        r = await rank_of(client, user, board)
        assert r.status_code == 200, r.text
        assert r.json()["user_id"] == user and r.json()["region"] == region
        assert r.json()["score"] == 31337
    for other in set(REGIONS) - {"GLOBAL", region}:
        assert_error(await rank_of(client, user, other), 404, "not_found")


async def test_unknown_user_not_found(client: httpx.AsyncClient) -> None:
    user = uid()
    assert_error(await rank_of(client, user), 404, "not_found")
    assert_error(await client.get(f"/around/{user}"), 404, "not_found")
    # registered without an entry: still not on any board
    await register(client, user)
    assert_error(await rank_of(client, user, "EU"), 404, "not_found")
    assert_error(await client.get(f"/around/{user}", params={"region": "EU"}), 404, "not_found")


async def test_top_boards_exact(client: httpx.AsyncClient, clean: None) -> None:
    g, _ = await user_with_score(client, "GLOBAL", 500, "g")
    e1, _ = await user_with_score(client, "EU", 300, "e1")
    n1, _ = await user_with_score(client, "NA", 400, "n1")
    e2, _ = await user_with_score(client, "EU", 100, "e2")
    a1, _ = await user_with_score(client, "ASIA", -50, "a1")

    r = await client.get("/top")
    assert r.status_code == 200, r.text
    assert r.json() == {"region": "GLOBAL", "total": 5, "next": None, "entries": [
        entry(1, g, "GLOBAL", 500), entry(2, n1, "NA", 400), entry(3, e1, "EU", 300),
        entry(4, e2, "EU", 100), entry(5, a1, "ASIA", -50)]}

    r = await client.get("/top", params={"region": "eu", "limit": 10})
    assert r.json() == {"region": "EU", "total": 2, "next": None,
                        "entries": [entry(1, e1, "EU", 300), entry(2, e2, "EU", 100)]}
    r = await client.get("/top", params={"region": "NA"})
    assert r.json() == {"region": "NA", "total": 1, "next": None,
                        "entries": [entry(1, n1, "NA", 400)]}
    r = await client.get("/top", params={"region": "ASIA"})
    assert r.json() == {"region": "ASIA", "total": 1, "next": None,
                        "entries": [entry(1, a1, "ASIA", -50)]}

    # limit cuts the entries, not the total; the next page follows the cursor
    r = await client.get("/top", params={"region": "GLOBAL", "limit": 2})
    page = r.json()
    assert page.pop("next") is not None
    assert page == {"region": "GLOBAL", "total": 5,
                    "entries": [entry(1, g, "GLOBAL", 500), entry(2, n1, "NA", 400)]}
    r = await client.get("/top", params={"limit": 2, "cursor": r.json()["next"]})
    assert r.json()["entries"] == [entry(3, e1, "EU", 300), entry(4, e2, "EU", 100)]
    r = await client.get("/top", params={"limit": 1000})
    assert r.status_code == 200 and len(r.json()["entries"]) == 5

    # ranks per board agree with /top
    assert (await rank_of(client, e2, "EU")).json() == {
        **entry(2, e2, "EU", 100), "total": 2, "percentile": 0.0, "gap_to_next": 201}
    assert (await rank_of(client, e2, "GLOBAL")).json() == {
        **entry(4, e2, "EU", 100), "total": 5, "percentile": 20.0, "gap_to_next": 201}

    # a score change moves a user
    r = await client.post("/score/update", json={"score": 1000},
                          headers=bearer(await _login(client, a1)))
    assert r.json() == entry(1, a1, "ASIA", 1000)
    r = await client.get("/top", params={"limit": 3})
    assert [e["user_id"] for e in r.json()["entries"]] == [a1, g, n1]


async def _login(client: httpx.AsyncClient, user: str) -> str:
    r = await client.post("/auth/login", json={"user_id": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


async def test_empty_board(client: httpx.AsyncClient, clean: None) -> None:
    for region in REGIONS:
        r = await client.get("/top", params={"region": region})
        assert r.status_code == 200, r.text
        assert r.json() == {"region": region, "total": 0, "entries": [], "next": None}


async def test_write_rank_is_global_rank(client: httpx.AsyncClient, clean: None) -> None:
    await user_with_score(client, "GLOBAL", 1000)
    await user_with_score(client, "NA", 900)
    eu = uid()
    token = await register(client, eu, region="EU")
    for path, body, status in [("/score/create", {"initialScore": 500}, 201),
                               ("/score/update", {"score": 600}, 200),
                               ("/score/add", {"delta": 1}, 200)]:
        r = await client.post(path, json=body, headers=bearer(token))
        assert r.status_code == status, r.text
        assert r.json()["rank"] == 3, (path, r.json())
    assert (await rank_of(client, eu, "EU")).json()["rank"] == 1
    assert (await rank_of(client, eu, "GLOBAL")).json()["rank"] == 3
    r = await client.post("/score/add", json={"delta": 1000}, headers=bearer(token))
    assert r.json() == entry(1, eu, "EU", 1601)


async def test_ties_first_to_reach_ranks_higher(client: httpx.AsyncClient, clean: None) -> None:
    a, ta = await user_with_score(client, "EU", 777, "a")
    b, tb = await user_with_score(client, "NA", 777, "b")
    c = uid("c")
    tc = await register(client, c, region="EU")
    r = await client.post("/score/add", json={"delta": 777}, headers=bearer(tc))
    assert r.json() == entry(3, c, "EU", 777)

    async def order(region: str = "GLOBAL") -> list[str]:
        r = await client.get("/top", params={"region": region})
        return [e["user_id"] for e in r.json()["entries"]]

    assert await order() == [a, b, c]
    assert await order("EU") == [a, c]
    assert [(await rank_of(client, u)).json()["rank"] for u in (a, b, c)] == [1, 2, 3]

    # re-setting the same score, or adding 0, keeps the original time of reaching it
    r = await client.post("/score/update", json={"score": 777}, headers=bearer(ta))
    assert r.json() == entry(1, a, "EU", 777)
    r = await client.post("/score/add", json={"delta": 0}, headers=bearer(ta))
    assert r.json() == entry(1, a, "EU", 777)
    assert await order() == [a, b, c]

    # leaving the score and coming back makes a the last to reach it
    r = await client.post("/score/add", json={"delta": 1}, headers=bearer(ta))
    assert r.json() == entry(1, a, "EU", 778)
    r = await client.post("/score/add", json={"delta": -1}, headers=bearer(ta))
    assert r.json() == entry(3, a, "EU", 777)
    assert await order() == [b, c, a]
    assert await order("EU") == [c, a]
    assert (await rank_of(client, a, "EU")).json() == {  # equalling c is not enough: +1
        **entry(2, a, "EU", 777), "total": 2, "percentile": 0.0, "gap_to_next": 1}

    # an entry created with the tied score via register also goes last
    d = uid("d")
    await register(client, d, region="NA", initialScore=777)
    assert await order() == [b, c, a, d]
    assert await order("NA") == [b, d]
    r = await client.get(f"/around/{c}", params={"range": 1})
    assert r.json()["around"] == [entry(1, b, "NA", 777), entry(3, a, "EU", 777)]
    _ = tb


# -- around-me ----------------------------------------------------------------------------


async def test_around_me(client: httpx.AsyncClient, clean: None) -> None:
    users = []
    for i, score in enumerate([50, 40, 30, 20, 10]):
        region = "EU" if i % 2 == 0 else "NA"
        user, _ = await user_with_score(client, region, score, f"r{i}")
        users.append((user, region, score))
    e = [entry(i + 1, u, reg, s) for i, (u, reg, s) in enumerate(users)]
    top, bottom, mid = users[0][0], users[4][0], users[2][0]

    async def around(user: str, **params: Any) -> dict[str, Any]:
        r = await client.get(f"/around/{user}", params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    # top edge: nothing above
    assert await around(top, range=2) == {"region": "GLOBAL", "self": e[0], "around": e[1:3],
                                          "total": 5}
    # bottom edge: nothing below
    assert await around(bottom, range=2) == {"region": "GLOBAL", "self": e[4],
                                             "around": e[2:4], "total": 5}
    # middle
    assert await around(mid, range=1) == {"region": "GLOBAL", "self": e[2],
                                          "around": [e[1], e[3]], "total": 5}
    # default range (10) and max range cover everyone else
    assert await around(mid) == {"region": "GLOBAL", "self": e[2], "around": e[:2] + e[3:],
                                 "total": 5}
    assert (await around(top, range=100))["around"] == e[1:]
    # region board: EU holds users 0, 2, 4 ranked 1..3
    eu = [entry(i + 1, u, "EU", s) for i, (u, _, s) in enumerate(users[::2])]
    assert await around(mid, region="eu", range=1) == {"region": "EU", "self": eu[1],
                                                       "around": [eu[0], eu[2]], "total": 3}
    assert await around(bottom, region="EU", range=5) == {"region": "EU", "self": eu[2],
                                                          "around": eu[:2], "total": 3}
    assert_error(await client.get(f"/around/{mid}", params={"region": "NA"}), 404, "not_found")


async def test_around_alone_on_board(client: httpx.AsyncClient, clean: None) -> None:
    user, _ = await user_with_score(client, "ASIA", 12)
    r = await client.get(f"/around/{user}", params={"region": "ASIA", "range": 3})
    assert r.status_code == 200, r.text
    assert r.json() == {"region": "ASIA", "self": entry(1, user, "ASIA", 12), "around": [],
                        "total": 1}


# -- query and path validation ------------------------------------------------------------


@pytest.mark.parametrize("path,params", [
    ("/top", {"limit": "abc"}), ("/top", {"limit": "0"}), ("/top", {"limit": "1001"}),
    ("/top", {"limit": "-1"}), ("/top", {"limit": "1.5"}), ("/top", {"limit": ""}),
    ("/top", {"region": "MARS"}), ("/top", {"region": ""}), ("/top", {"region": "x" * 51}),
    ("/rank/{u}", {"region": "MARS"}), ("/rank/{u}", {"region": ""}),
    ("/around/{u}", {"range": "0"}), ("/around/{u}", {"range": "101"}),
    ("/around/{u}", {"range": "abc"}), ("/around/{u}", {"range": "-3"}),
    ("/around/{u}", {"region": "MARS"}),
    ("/rank/bad id", {}), ("/rank/bad!id", {}), ("/rank/" + "a" * 65, {}), ("/rank/ünï", {}),
    ("/around/bad$id", {}), ("/around/" + "b" * 65, {}), ("/around/a b", {"range": "2"}),
])
async def test_reads_reject_invalid_parameters(client: httpx.AsyncClient, path: str,
                                               params: dict[str, str]) -> None:
    user, _ = await user_with_score(client, "EU", 1)
    url = path.replace("{u}", user)
    assert_error(await client.get(url, params=params), 422, "validation_error")
    if "{u}" in path:  # positive control: the same user without the bad parameter
        assert (await client.get(url, params={"region": "EU"})).status_code == 200


@pytest.mark.parametrize("path,params", [
    ("/top", {"limit": "1"}), ("/top", {"limit": "1000"}), ("/around/{u}", {"range": "1"}),
    ("/around/{u}", {"range": "100"}), ("/rank/{u}", {"region": "Global"}),
])
async def test_reads_accept_boundary_parameters(client: httpx.AsyncClient, path: str,
                                                params: dict[str, str]) -> None:
    user, _ = await user_with_score(client, "EU", 1)
    r = await client.get(path.replace("{u}", user), params=params)
    assert r.status_code == 200, r.text
    if path == "/top":
        assert 1 <= len(r.json()["entries"]) <= int(params["limit"])
        assert r.json()["total"] >= len(r.json()["entries"])
    else:
        me = r.json() if path.startswith("/rank") else r.json()["self"]
        assert me["user_id"] == user and me["region"] == "EU"


async def test_user_id_edge_characters(client: httpx.AsyncClient) -> None:
    user = f"A.b_c-{uid()}"[:64]
    long_user = (uid() + "z" * 64)[:64]
    for u in (user, long_user):
        token = await register(client, u, region="EU")
        r = await client.post("/score/update", json={"score": 8}, headers=bearer(token))
        assert r.status_code == 200, r.text
        r = await rank_of(client, u, "EU")
        assert r.status_code == 200 and r.json()["user_id"] == u, r.text
        r = await client.get(f"/around/{u}", params={"region": "EU", "range": 1})
        assert r.status_code == 200 and r.json()["self"]["user_id"] == u, r.text


# -- durability ---------------------------------------------------------------------------


async def test_writes_are_persisted_in_postgres(client: httpx.AsyncClient, service: Service,
                                                clean: None, redis: aioredis.Redis,
                                                pg: asyncpg.Pool) -> None:
    eu = uid("p")
    token = await register(client, eu, region="EU")
    for path, body in [("/score/create", {"initialScore": 10}), ("/score/add", {"delta": 5}),
                       ("/score/update", {"score": 99}), ("/score/add", {"delta": -9})]:
        r = await client.post(path, json=body, headers=bearer(token))
        assert r.status_code in (200, 201), r.text
    gl = uid("p")
    await register(client, gl, region="global", initialScore=-MAX)
    emoji, long_name = uid("p"), "🎮" * 200  # the longest name: 200 characters, 800 bytes
    r = await client.post("/auth/register", json={"user_id": emoji, "name": long_name,
                                                  "region": "NA", "password": PASSWORD,
                                                  "initialScore": 0})
    assert r.status_code == 201, r.text
    await wait_drained(redis, service.settings)

    rows = {r["user_id"]: r for r in await pg.fetch(
        "SELECT user_id, name, region, score, version, reached FROM leaderboard")}
    assert set(rows) == {eu, gl, emoji}
    assert (rows[emoji]["name"], rows[emoji]["region"], rows[emoji]["score"]) == (
        long_name, "NA", 0)
    assert (rows[eu]["name"], rows[eu]["region"], rows[eu]["score"]) == (f"Name {eu}", "EU", 90)
    assert (rows[gl]["region"], rows[gl]["score"]) == ("GLOBAL", -MAX)
    for row in rows.values():
        assert row["version"] > 0 and 0 < row["reached"] <= row["version"]
    # the stored record matches Redis' tie-break data
    h = await redis.hgetall(f"lb:{service.settings.board}:user:{eu}")
    assert int(h["version"]) == rows[eu]["version"] and int(h["reached"]) == rows[eu]["reached"]

    creds = {r["user_id"]: r for r in await pg.fetch(
        "SELECT user_id, name, region, password_hash FROM credentials")}
    assert set(creds) == {eu, gl, emoji}
    assert creds[gl]["region"] == "GLOBAL"
    assert creds[eu]["password_hash"].startswith("scrypt$")
    assert PASSWORD not in creds[eu]["password_hash"]

    r = await client.get("/health")
    assert r.json()["backlog"] == {region: 0 for region in REGIONS}


# -- regressions: bugs found by these tests, now fixed ------------------------------------


async def test_register_name_with_nul_character_is_not_a_500(client: httpx.AsyncClient) -> None:
    user = uid()
    r = await client.post("/auth/register", json={"user_id": user, "name": "a\x00b",
                                                  "region": "EU", "password": PASSWORD})
    assert_error(r, 422, "validation_error")


@pytest.mark.parametrize("payload", [
    b'{"score": ' + b"9" * 5000 + b"}",  # a valid JSON number over Python's 4300-digit limit
    b'{"score": 1, "x": "\xff\xfe"}',  # not UTF-8
], ids=["5000-digit-integer", "invalid-utf8"])
async def test_undecodable_body_is_422(client: httpx.AsyncClient, payload: bytes) -> None:
    token = await register(client, uid())
    r = await client.post("/score/update", content=payload,
                          headers={**bearer(token), "Content-Type": "application/json"})
    assert_error(r, 422, "validation_error")
