"""Every error becomes {"error", "detail"} JSON with the right status."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import ValidationError

from leaderboard import errors
from leaderboard.models import RegisterRequest, ScoreUpdate
from leaderboard.serve.http_errors import describe_validation, install

# -- describe_validation --------------------------------------------------------------------


def test_empty() -> None:
    assert describe_validation([]) == ""


def test_body_prefix_dropped_and_path_joined() -> None:
    errs = [{"type": "int_type", "loc": ("body", "score"), "msg": "Input should be an integer"},
            {"type": "missing", "loc": ("body", "items", 0, "name"), "msg": "Field required"}]
    assert describe_validation(errs) == (
        "score: Input should be an integer; items.0.name: Field required"
    )


def test_whole_body_error_named_body() -> None:
    assert describe_validation([{"type": "missing", "loc": ("body",), "msg": "Field required"}]) \
        == "body: Field required"
    assert describe_validation([{"type": "x", "msg": "m"}]) == "body: m"


def test_query_location_kept() -> None:
    errs = [{"type": "less_than_equal", "loc": ("query", "limit"), "msg": "too big"}]
    assert describe_validation(errs) == "query.limit: too big"


def test_malformed_json() -> None:
    errs = [{"type": "json_invalid", "loc": ("body", 7), "msg": "JSON decode error"}]
    assert describe_validation(errs) == "malformed JSON body"


def test_missing_msg_defaults() -> None:
    assert describe_validation([{"type": "t", "loc": ("body", "f")}]) == "f: invalid"


def test_at_most_five_errors() -> None:
    errs = [{"type": "t", "loc": ("body", f"f{i}"), "msg": "bad"} for i in range(8)]
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


# -- handlers on a FastAPI app --------------------------------------------------------------


def _app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/raise/{kind}")
    async def raise_(kind: str) -> dict[str, str]:
        cls = {
            "bad": errors.BadRequest, "range": errors.ScoreOutOfRange,
            "unauth": errors.Unauthorized, "missing": errors.NotFound,
            "conflict": errors.Conflict, "down": errors.Unavailable,
        }.get(kind)
        if cls is None:
            raise RuntimeError("secret internals: password=hunter2")
        raise cls(f"detail for {kind}")

    @app.post("/score")
    async def score(body: ScoreUpdate) -> dict[str, int]:
        return {"score": body.score}

    @app.get("/top")
    async def top(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, int]:
        return {"limit": limit}

    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


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
def test_leaderboard_errors(client: TestClient, kind: str, status: int, code: str) -> None:
    r = client.get(f"/raise/{kind}")
    assert r.status_code == status
    assert r.json() == {"error": code, "detail": f"detail for {kind}"}


def test_unexpected_error_is_500_without_internals(client: TestClient) -> None:
    r = client.get("/raise/other")
    assert r.status_code == 500
    assert r.json() == {"error": "internal_error", "detail": "unexpected server error"}
    assert "hunter2" not in r.text


def test_body_validation(client: TestClient) -> None:
    r = client.post("/score", json={"score": 1.5})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    assert body["detail"].startswith("score: ")


def test_score_out_of_bounds_rejected_over_http(client: TestClient) -> None:
    assert client.post("/score", json={"score": 2**53 - 1}).json() == {"score": 2**53 - 1}
    r = client.post("/score", json={"score": 2**53})
    assert r.status_code == 422 and r.json()["detail"].startswith("score: ")


def test_malformed_json_over_http(client: TestClient) -> None:
    r = client.post("/score", content=b'{"score": ', headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json() == {"error": "validation_error", "detail": "malformed JSON body"}


def test_query_validation(client: TestClient) -> None:
    r = client.get("/top", params={"limit": 0})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("query.limit: ")


def test_unknown_route_and_method(client: TestClient) -> None:
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = client.delete("/score")
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    assert "allow" in {k.lower() for k in r.headers}


def test_error_classes() -> None:
    for cls in (errors.BadRequest, errors.ScoreOutOfRange, errors.Unauthorized, errors.NotFound,
                errors.Conflict, errors.Unavailable):
        e = cls("d")
        assert isinstance(e, errors.LeaderboardError) and e.detail == "d" and str(e) == "d"
