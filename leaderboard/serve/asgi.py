"""A lean ASGI application: routes looked up in a precompiled table, each input validated in
one pydantic call, every answer encoded once. No framework on the request path.

The same ``Route`` values feed the OpenAPI document (``serve/openapi.py``), so what is served
and what is described cannot drift apart.

This module holds the ASGI callable, ``App``; its parts: ``asgi_types`` (``Call``, ``Reply``,
``Stream``, ``Route``; re-exported here, where handlers import them), ``asgi_router`` (the
route table's lookup) and ``asgi_io`` (bodies, queries, validation, streaming, lifespan).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from leaderboard.serve.asgi_io import (
    describe_validation,
    error_reply,
    lifespan,
    parse_query,
    read_body,
    send_stream,
    validate,
    validate_body,
)
from leaderboard.serve.asgi_router import Router
from leaderboard.serve.asgi_types import (
    Call,
    Handler,
    Receive,
    Reply,
    Route,
    Scope,
    Send,
    Stream,
)
from leaderboard.serve.failures import as_service_error

__all__ = ["App", "Call", "Handler", "Reply", "Route", "Stream", "describe_validation"]


class App:
    """The ASGI callable: ``context`` is what every handler gets as its first argument."""

    def __init__(self, context: Any, routes: list[Route],
                 guard: Callable[[Any, Route, dict[str, str]], Any],
                 startup: Callable[[], Awaitable[None]] | None = None) -> None:
        self._context = context
        self._router = Router(routes)
        self._guard = guard
        self._startup = startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self._startup)
            return
        if scope["type"] != "http":
            return
        try:
            reply = await self._answer(scope, receive)
        except Exception as exc:  # the one place every failure becomes an answer
            reply = error_reply(as_service_error(exc))
        if isinstance(reply, Stream) and reply.chunks is not None:
            await send_stream(reply, reply.chunks, receive, send)
            return
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(b"content-type", reply.content_type),
                                (b"content-length", str(len(reply.body)).encode()),
                                *reply.headers]})
        await send({"type": "http.response.body", "body": reply.body})

    async def _answer(self, scope: Scope, receive: Receive) -> Reply:
        root, path = scope.get("root_path", ""), scope["path"]
        if root and path.startswith(root):
            path = path[len(root):] or "/"
        compiled, params = self._router.match(scope["method"], path)
        route = compiled.route
        headers = {}
        if route.token or route.idempotency:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        claims = self._guard(self._context, route, headers)
        raw = await read_body(receive) if compiled.body is not None else b""
        query = parse_query(scope["query_string"]) if compiled.query is not None else {}
        client = scope.get("client")
        call = Call(
            path=validate(compiled.path, params, "path"),
            query=validate(compiled.query, query, "query"),
            body=validate_body(compiled, raw),
            headers=headers,
            client=client[0] if client else "unknown",
            claims=claims,
            root_path=root,
        )
        return await route.handler(self._context, call)
