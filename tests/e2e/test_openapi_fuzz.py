"""The served OpenAPI document tells the truth: schemathesis fuzzes every operation of the running
app (valid and invalid inputs) and checks each answer against what the document declares.

Bounded: ``EXAMPLES`` cases per operation, valid and invalid inputs (some valid ones aimed at
real data: a served region, a registered user), from a fixed seed
(``FUZZ_SEED`` overrides it). Every test prints the seed, so a failure is replayed with
``FUZZ_SEED=<seed> scripts/test tests/e2e/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from leaderboard.serve.asgi import Route
from leaderboard.serve.auth import issue_token
from leaderboard.serve.routes import API, ROUTES
from tests.e2e.conftest import Service, bearer

SEED = int(os.environ.get("FUZZ_SEED", "20261130"))
EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
# every operation of the API is fuzzed but a stream (it never ends: tests/e2e/test_live.py covers
# its answers and refusals); the documentation pages (/openapi.json, /docs) and the web page are
# not API operations and not in the document (as with FastAPI): test_doc_pages covers them
OPERATIONS = [pytest.param(r, id=f"{r.method} {r.path}") for r in API if not r.stream]


@pytest.fixture(scope="module")
def served(service: Service) -> dict[str, Any]:
    """The document the running app serves (not the one built in this process)."""
    doc: dict[str, Any] = httpx.get(f"{service.base_url}/openapi.json", timeout=10).json()
    return doc


def test_every_route_is_documented(served: dict[str, Any]) -> None:
    """What is fuzzed below is exactly what the app serves: the document lists every route."""
    documented = {(m.upper(), p) for p, ops in served["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in API}
    assert {(r.method, r.path) for r in ROUTES} - documented == {
        ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/static/{name}"),
        ("GET", "/"), ("GET", "/static/{name}")}


def test_doc_pages(service: Service) -> None:
    """The two pages outside the document answer what they are."""
    doc = httpx.get(f"{service.base_url}/openapi.json", timeout=10)
    assert doc.status_code == 200 and doc.headers["content-type"] == "application/json"
    assert doc.json()["openapi"].startswith("3.1")
    page = httpx.get(f"{service.base_url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/openapi.json" in page.text


PLAYER, PASSWORD = "fuzz-player", "correct horse battery"


@pytest.fixture(scope="module")
def player(service: Service) -> str:
    """A registered user with an entry, so reads and batch items can hit a real one."""
    body = {"user_id": PLAYER, "name": "Fuzz player", "region": "EU",
            "password": PASSWORD, "initialScore": 1}
    r = httpx.post(f"{service.base_url}/auth/register", json=body, timeout=30)
    assert r.status_code in (201, 409), r.text
    return PLAYER


def steer(case: Any, region: str, user: str) -> Any:
    """Valid input aimed at real data: a served region, the registered user. Random regions
    and user ids stay in the other half of the cases (422 and 404 are answers to check too)."""
    if case.path_parameters and "user_id" in case.path_parameters:
        case.path_parameters["user_id"] = user
    if case.query and "region" in case.query:
        case.query["region"] = region
    body: Any = case.body
    if isinstance(body, dict) and set(body) == {"user_id", "password"}:  # a login
        body.update(user_id=user, password=PASSWORD)
    if isinstance(body, dict) and isinstance(body.get("region"), str):
        body["region"] = region
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        for item in body["items"][::2]:
            item["user_id"] = user
    return case


def token_for(service: Service, route: Route) -> dict[str, str]:
    """A valid token of the role the operation needs (a player's for any-token routes)."""
    if route.token is None:
        return {}
    role = "player" if route.token == "any" else route.token
    user = PLAYER if role == "player" else f"fuzz-{role}"
    return bearer(issue_token(service.settings, user, f"Fuzz {role}", "EU", role=role))


@pytest.mark.parametrize("route", OPERATIONS)
def test_fuzz_operation(route: Route, service: Service, served: dict[str, Any],
                        player: str) -> None:
    print(f"fuzz {route.method} {route.path}: seed {SEED} (replay: FUZZ_SEED={SEED}), "
          f"{EXAMPLES} examples")
    schema = schemathesis.openapi.from_dict(served)
    operation = schema[route.path][route.method]
    headers = token_for(service, route)
    positive = operation.as_strategy(GenerationMode.POSITIVE, headers=headers)
    regions = st.sampled_from(service.settings.region_list)
    strategy = st.one_of(
        positive,
        st.builds(steer, positive, regions, st.just(player)),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
    )
    calls: list[int] = []
    session = requests.Session()

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call_and_validate(base_url=service.base_url, session=session,
                                          checks=CHECKS, timeout=30)
        calls.append(response.status_code)

    try:
        run()
    finally:
        session.close()
        if route.path == "/admin/writers/pause":  # the rest of the suite needs them running
            httpx.post(f"{service.base_url}/admin/writers/resume", headers=headers, timeout=30)
    print(f"fuzz {route.method} {route.path}: {len(calls)} cases, statuses {sorted(set(calls))}")
    assert calls
