"""The OpenAPI document and Swagger UI page, generated from the same route table that serves.

Every operation declares its real answers: the success model, and each error status it can
give with our one error model (``ErrorBody``), so a generated client parses failures too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi.openapi.docs import get_swagger_ui_html
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from pydantic_core import to_json
from swagger_ui_bundle import swagger_ui_path

from leaderboard.errors import NotFound
from leaderboard.models import ErrorBody, IdemKey
from leaderboard.serve.asgi import Call, Reply, Route

TITLE, VERSION = "Leaderboard", "0.1.0"
DESCRIPTION = "Exact real-time ranks (Redis) with a durable record (Postgres), on Ray Serve."
REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    401: "Missing, invalid or expired token; wrong credentials",
    403: "The token lacks the role this operation needs",
    404: "Not found",
    409: "Already exists",
    413: "Request body too large",
    422: "Invalid input (validation_error, score_out_of_range, idempotency_key_reused, ...)",
    429: "Refused for now (rate_limited, queue_full); see Retry-After",
    503: "A dependency is unreachable or the board is rebuilding; see Retry-After",
}


def error_statuses(route: Route) -> list[int]:
    """Each error status an operation can answer, from what it takes and what it declares."""
    found = set(route.errors)
    if route.body or route.query or route.path_model or route.idempotency:
        found.add(422)
    if route.body:
        found.add(413)
    if route.token:
        found.add(401)
    if route.token in ("server", "admin"):
        found.add(403)
    return sorted(found - set(route.responses))


def _models(routes: list[Route]) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    out: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
    for r in routes:
        out += [(m, "validation") for m in (r.body, r.query, r.path_model) if m is not None]
        out += [(m, "serialization") for m in (r.response, *r.responses.values()) if m]
    return list(dict.fromkeys(out))


def _parameters(model: type[BaseModel] | None, where: str, schemas: dict[str, Any]) -> list[Any]:
    if model is None:
        return []
    props = schemas[model.__name__].get("properties", {})
    return [{"name": name, "in": where, "required": where == "path" or name in
             schemas[model.__name__].get("required", []), "schema": schema}
            for name, schema in props.items()]


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}


def _operation(route: Route, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": [route.tag],
        "summary": (route.handler.__doc__ or "").split("\n")[0],
        "operationId": re.sub(r"[^a-z0-9]+", "_", f"{route.method} {route.path}".lower()).strip("_"),
        "parameters": _parameters(route.path_model, "path", schemas)
        + _parameters(route.query, "query", schemas),
        "responses": {str(route.status): {"description": "Successful Response",
                                          **({"content": _content(route.response)}
                                             if route.response else {})}},
    }
    if route.stream:
        op["responses"][str(route.status)] = {
            "description": "Server-Sent Events (README, Live updates)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    if route.idempotency:
        op["parameters"].append({"name": "Idempotency-Key", "in": "header", "required": False,
                                 "schema": TypeAdapter(IdemKey).json_schema()})
    if route.body is not None:
        op["requestBody"] = {"required": not route.body_optional, "content": _content(route.body)}
    if route.token:
        op["security"] = [{"bearer": []}]
    for status, model in route.responses.items():
        op["responses"][str(status)] = {"description": "See the body", "content": _content(model)}
    for status in error_statuses(route):
        op["responses"][str(status)] = {"description": ERROR_TEXT.get(status, "Error"),
                                        "content": _content(ErrorBody)}
    return op


def document(routes: list[Route], root_path: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    _, top = models_json_schema(_models(routes), ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, Any] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }
    if root_path:
        doc["servers"] = [{"url": root_path}]
    return doc


# Swagger UI's files, served by the service itself: /docs works with no internet access
ASSETS = {"swagger-ui-bundle.js": b"text/javascript", "swagger-ui.css": b"text/css",
          "favicon-32x32.png": b"image/png"}


class AssetPath(BaseModel):
    name: str = Field(max_length=64)


async def asset(_: Any, call: Call) -> Reply:
    """One of Swagger UI's files."""
    kind = ASSETS.get(call.path.name)
    if kind is None:
        raise NotFound("Not Found")
    reply = Reply(200, _asset_bytes(call.path.name), content_type=kind)
    return reply.header("Cache-Control", "public, max-age=86400")


@lru_cache(maxsize=len(ASSETS))
def _asset_bytes(name: str) -> bytes:
    return (Path(str(swagger_ui_path)) / name).read_bytes()


def doc_routes(api: list[Route]) -> list[Route]:
    """``GET /openapi.json``, ``GET /docs`` and its assets for the operations in ``api``."""

    @lru_cache(maxsize=8)
    def encoded(root_path: str) -> bytes:
        return to_json(document(api, root_path))

    async def openapi(_: Any, call: Call) -> Reply:
        """The OpenAPI document."""
        return Reply(200, encoded(call.root_path))

    async def docs(_: Any, call: Call) -> Reply:
        """Swagger UI."""
        static = f"{call.root_path}/docs/static"
        page = get_swagger_ui_html(
            openapi_url=f"{call.root_path}/openapi.json", title=f"{TITLE} - Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png")
        return Reply(200, bytes(page.body), content_type=b"text/html; charset=utf-8")

    return [Route("GET", "/openapi.json", openapi), Route("GET", "/docs", docs),
            Route("GET", "/docs/static/{name}", asset, path_model=AssetPath)]
