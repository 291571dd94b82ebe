"""The OpenAPI document and /docs come from the route table that serves: no drift, no CDN."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from leaderboard.serve.asgi import App, Route
from leaderboard.serve.openapi import document, error_statuses
from leaderboard.serve.routes import API, ROUTES

REF = "#/components/schemas/ErrorBody"


def test_every_served_operation_is_described() -> None:
    paths = document(API)["paths"]
    assert {(r.path, r.method.lower()) for r in API} == {
        (p, m) for p, ops in paths.items() for m in ops}


@pytest.mark.parametrize("route", API, ids=lambda r: f"{r.method} {r.path}")
def test_errors_declared_with_the_error_model(route: Route) -> None:
    op = document(API)["paths"][route.path][route.method.lower()]
    for status in error_statuses(route):
        schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
        assert schema == {"$ref": REF}, status
    if route.body or route.query or route.path_model:
        assert "422" in op["responses"]
    if route.token:
        assert "401" in op["responses"] and op["security"] == [{"bearer": []}]


def test_health_declares_its_own_body_for_503() -> None:
    op = document(API)["paths"]["/health"]["get"]
    assert op["responses"]["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/HealthResponse")


def test_parameters_carry_their_bounds() -> None:
    doc = document(API)
    top = {p["name"]: p for p in doc["paths"]["/top"]["get"]["parameters"]}
    assert top["limit"]["schema"]["maximum"] == 1000 and top["limit"]["schema"]["minimum"] == 1
    around = {p["name"]: p for p in doc["paths"]["/around/{user_id}"]["get"]["parameters"]}
    assert set(around) == {"user_id", "region", "range"} and around["user_id"]["required"]
    update = {p["name"] for p in doc["paths"]["/score/update"]["post"]["parameters"]}
    assert update == {"Idempotency-Key"}


@pytest.fixture
async def docs_client() -> AsyncIterator[httpx.AsyncClient]:
    app = App(None, ROUTES, lambda *_: None)
    transport = httpx.ASGITransport(app=app, root_path="/rl")  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_docs_page_loads_its_assets_from_the_service(
        docs_client: httpx.AsyncClient) -> None:
    page = await docs_client.get("/rl/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "cdn" not in page.text and "/rl/openapi.json" in page.text
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "css")):
        assert f"/rl/docs/static/{asset}" in page.text
        r = await docs_client.get(f"/rl/docs/static/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"] and len(r.content) > 1000
    r = await docs_client.get("/rl/docs/static/..%2F..%2F__init__.py")
    assert r.status_code == 404
    doc = (await docs_client.get("/rl/openapi.json")).json()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": "/rl"}]


def test_operation_ids_are_unique() -> None:
    ops = [op for ops in document(API)["paths"].values() for op in ops.values()]
    ids = [op["operationId"] for op in ops]
    assert len(ids) == len(set(ids)) == len(API)
