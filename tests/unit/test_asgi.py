"""The lean ASGI layer without Ray: routing, validation, and every error as
{"error", "detail"} JSON with the right status (bugs 500, unreachable Ray processes 503)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError
from ray import exceptions as rx

from leaderboard import errors
from leaderboard.models import RegionQuery, RegisterRequest, ScoreUpdate, TopQuery, UserPath
from leaderboard.serve.asgi import App, Call, Reply, Route, describe_validation

# -- describe_validation --------------------------------------------------------------------


def test_empty() -> None:
    assert describe_validation([]) == ""


def test_body_prefix_dropped_and_path_joined() -> None:
    errs = [{"type": "int_type", "loc": ("score",), "msg": "Input should be an integer"},
            {"type": "missing", "loc": ("items", 0, "name"), "msg": "Field required"}]
    assert describe_validation(errs) == (
        "score: Input should be an integer; items.0.name: Field required"
    )


def test_whole_body_error_named_body() -> None:
    assert describe_validation([{"type": "missing", "loc": (), "msg": "Field required"}]) \
        == "body: Field required"
    assert describe_validation([{"type": "x", "msg": "m"}]) == "body: m"


def test_query_location_kept() -> None:
    errs = [{"type": "less_than_equal", "loc": ("limit",), "msg": "too big"}]
    assert describe_validation(errs, "query") == "query.limit: too big"


def test_malformed_json() -> None:
    errs = [{"type": "json_invalid", "loc": (7,), "msg": "JSON decode error"}]
    assert describe_validation(errs) == "malformed JSON body"


def test_missing_msg_defaults() -> None:
    assert describe_validation([{"type": "t", "loc": ("f",)}]) == "f: invalid"


def test_at_most_five_errors() -> None:
    errs = [{"type": "t", "loc": (f"f{i}",), "msg": "bad"} for i in range(8)]
    out = describe_validation(errs)
    assert out.count("; ") == 4
    assert "f4: bad" in out and "f5" not in out


def test_real_pydantic_errors() -> None:
    with pytest.raises(ValidationError) as info:
        RegisterRequest.model_validate({"user_id": "bad id", "name": "", "region": "EU",
                                        "password": "short"})
    out = describe_validation(info.value.errors())
    assert out.startswith("user_id: String should match pattern")
    assert "name: " in out and "password: " in out and "region" not in out


# -- an App with stub handlers -----------------------------------------------------------

class Boom(Exception):
    """Stands for a bug in our own code inside an actor."""


def _raiser(kind: str) -> Exception:
    made: dict[str, Exception] = {
        "bad": errors.BadRequest("detail for bad"),
        "range": errors.ScoreOutOfRange("detail for range"),
        "unauth": errors.Unauthorized("detail for unauth"),
        "missing": errors.NotFound("detail for missing"),
        "conflict": errors.Conflict("detail for conflict"),
        "down": errors.Unavailable("detail for down"),
        "actor_gone": rx.ActorUnavailableError("restarting", b"x" * 16),
        "task_bug": rx.RayTaskError("write_many", "Traceback: Boom", Boom("password=hunter2")),
        "task_refusal": rx.RayTaskError("read_many", "Traceback", errors.Unavailable("Redis down")),
    }
    return made.get(kind, RuntimeError("secret internals: password=hunter2"))


async def raise_(_: Any, call: Call) -> Reply:
    """Raise what the path names."""
    raise _raiser(call.path.user_id)


async def echo(_: Any, call: Call) -> Reply:
    """Echo the validated inputs."""
    def dump(m):
        return (m.model_dump(by_alias=True) if isinstance(m, BaseModel) else m)
    return Reply.json({"body": dump(call.body), "query": dump(call.query), "claims": call.claims})


def guard(_: Any, route: Route, headers: dict[str, str]) -> Any:
    if route.token is None:
        return None
    if headers.get("authorization") != "Bearer ok":
        raise errors.Unauthorized("missing Authorization: Bearer token")
    return {"sub": "me"}


ROUTES = [
    Route("GET", "/raise/{user_id}", raise_, path_model=UserPath),
    Route("POST", "/score", echo, body=ScoreUpdate, token="any"),
    Route("GET", "/top", echo, query=TopQuery),
    Route("GET", "/rank/{user_id}", echo, query=RegionQuery, path_model=UserPath),
    Route("POST", "/maybe", echo, body=ScoreUpdate, body_optional=True),
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = App(None, ROUTES, guard)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("bad", 422, "validation_error"),
        ("range", 422, "score_out_of_range"),
        ("unauth", 401, "unauthorized"),
        ("missing", 404, "not_found"),
        ("conflict", 409, "conflict"),
        ("down", 503, "unavailable"),
    ],
)
async def test_leaderboard_errors(client: httpx.AsyncClient, kind: str, status: int,
                                  code: str) -> None:
    r = await client.get(f"/raise/{kind}")
    assert r.status_code == status
    assert r.json() == {"error": code, "detail": f"detail for {kind}"}
    assert r.headers["content-type"] == "application/json"


async def test_unavailable_says_when_to_retry(client: httpx.AsyncClient) -> None:
    r = await client.get("/raise/down")
    assert r.headers["retry-after"] == "1"
    assert "retry-after" not in (await client.get("/raise/conflict")).headers


async def test_unexpected_error_is_500_without_internals(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/raise/other")
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "detail": "unexpected server error"}
    assert "hunter2" not in r.text and "retry-after" not in r.headers
    assert sum("unhandled error" in rec.message for rec in caplog.records) == 1


async def test_bug_inside_an_actor_is_500_not_retry(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get("/raise/task_bug")
    assert r.status_code == 500 and r.json()["error"] == "internal_error"
    assert "retry-after" not in r.headers and "hunter2" not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert len(logged) == 1


async def test_unreachable_actor_is_503(client: httpx.AsyncClient) -> None:
    r = await client.get("/raise/actor_gone")
    assert r.status_code == 503 and r.json()["error"] == "unavailable"
    assert r.headers["retry-after"] == "1"


async def test_our_refusal_raised_inside_an_actor_keeps_its_answer(
        client: httpx.AsyncClient) -> None:
    r = await client.get("/raise/task_refusal")
    assert r.status_code == 503 and r.json() == {"error": "unavailable", "detail": "Redis down"}


async def test_body_validation(client: httpx.AsyncClient) -> None:
    r = await client.post("/score", json={"score": 1.5}, headers={"Authorization": "Bearer ok"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["detail"].startswith("score: ")


async def test_token_checked_before_the_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/score", json={"score": 1})
    assert r.status_code == 401
    r = await client.post("/score", json={"score": 1}, headers={"Authorization": "Bearer ok"})
    assert r.json() == {"body": {"score": 1, "metadata": None}, "query": None, "claims": {"sub": "me"}}


async def test_score_out_of_bounds_rejected_over_http(client: httpx.AsyncClient) -> None:
    ok = {"Authorization": "Bearer ok"}
    r = await client.post("/score", json={"score": 2**53 - 1}, headers=ok)
    assert r.json()["body"] == {"score": 2**53 - 1, "metadata": None}
    r = await client.post("/score", json={"score": 2**53}, headers=ok)
    assert r.status_code == 422 and r.json()["detail"].startswith("score: ")


def _metadata_of_size(n: int) -> dict[str, str]:
    """{"k":"xx…"} encoded compactly in exactly n bytes (8 bytes besides the x's), with é (2
    bytes in UTF-8) first, so characters and bytes differ."""
    return {"k": "é" + "x" * (n - 10)}


async def test_metadata_limit_is_512_bytes_encoded_compactly(client: httpx.AsyncClient) -> None:
    ok = {"Authorization": "Bearer ok"}
    at = _metadata_of_size(512)
    r = await client.post("/score", json={"score": 1, "metadata": at}, headers=ok)
    assert r.status_code == 200 and r.json()["body"]["metadata"] == at
    r = await client.post("/score", json={"score": 1, "metadata": _metadata_of_size(513)},
                          headers=ok)
    assert r.status_code == 422 and r.json()["error"] == "metadata_invalid"
    assert "513 bytes" in r.json()["detail"]


@pytest.mark.parametrize("bad", [[1], "text", 3, True, {"n": 1e400}])
async def test_metadata_must_be_an_object_of_finite_numbers(
    client: httpx.AsyncClient, bad: object
) -> None:
    body = ({"content": b'{"score": 1, "metadata": {"n": 1e400}}'} if isinstance(bad, dict)
            else {"json": {"score": 1, "metadata": bad}})
    r = await client.post("/score", headers={"Authorization": "Bearer ok"}, **body)
    assert r.status_code == 422 and r.json()["error"] == "metadata_invalid"


async def test_malformed_json_over_http(client: httpx.AsyncClient) -> None:
    r = await client.post("/score", content=b'{"score": ', headers={"Authorization": "Bearer ok"})
    assert r.status_code == 422
    assert r.json() == {"error": "validation_error", "detail": "malformed JSON body"}


async def test_optional_body(client: httpx.AsyncClient) -> None:
    assert (await client.post("/maybe")).json()["body"] is None
    assert (await client.post("/maybe", content=b"null")).json()["body"] is None
    assert (await client.post("/maybe", json={"score": 3})).json()["body"] == {"score": 3, "metadata": None}
    assert (await client.post("/maybe", content=b"[]")).status_code == 422


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    r = await client.post("/maybe", content=b" " * ((1 << 20) + 1))
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"


async def test_query_validation_and_defaults(client: httpx.AsyncClient) -> None:
    r = await client.get("/top", params={"limit": 0})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("query.limit: ")
    assert (await client.get("/top")).json()["query"] == {"region": "GLOBAL", "limit": 100,
                                                         "cursor": None, "from_rank": None}
    r = await client.get("/top", params={"limit": "7", "region": "EU", "other": "x"})
    assert r.json()["query"] == {"region": "EU", "limit": 7, "cursor": None, "from_rank": None}


async def test_path_parameter_validation(client: httpx.AsyncClient) -> None:
    assert (await client.get("/rank/a.b_c-1")).status_code == 200
    for bad in ("a%20b", "a!b", "x" * 65, "%C3%BC"):
        r = await client.get(f"/rank/{bad}")
        assert r.status_code == 422 and r.json()["detail"].startswith("path.user_id"), bad


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/rank", "/rank/a/b", "/top/extra"):
        r = await client.get(path)
        assert r.status_code == 404 and r.json()["error"] == "not_found", path
    r = await client.delete("/score")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"


async def test_mounted_under_a_route_prefix() -> None:
    app = App(None, ROUTES, guard)
    transport = httpx.ASGITransport(app=app, root_path="/rl")  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.get("/rl/top", params={"limit": 2})
        assert r.status_code == 200 and r.json()["query"]["limit"] == 2


def test_error_classes() -> None:
    for cls in (errors.BadRequest, errors.ScoreOutOfRange, errors.Unauthorized, errors.NotFound,
                errors.Conflict, errors.Unavailable):
        e = cls("d")
        assert isinstance(e, errors.LeaderboardError) and e.detail == "d" and str(e) == "d"
