"""A lean ASGI application: routes looked up in a precompiled table, each input validated in
one pydantic call, every answer encoded once. No framework on the request path.

The same ``Route`` values feed the OpenAPI document (``serve/openapi.py``), so what is served
and what is described cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import to_json

from leaderboard.errors import (
    BadRequest,
    LeaderboardError,
    MetadataInvalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
)
from leaderboard.serve.failures import as_service_error

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Token = Literal["any", "server", "admin"]
MAX_BODY = 1 << 20  # a full batch of 1,000 items is ~100 KB


@dataclass
class Reply:
    """An answer: status, body bytes, extra headers."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    content_type: bytes = b"application/json"

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, to_json(value))

    def header(self, name: str, value: str) -> Reply:
        self.headers.append((name.lower().encode(), value.encode()))
        return self


@dataclass
class Stream(Reply):
    """A streamed answer (Server-Sent Events): the status and headers at once, then each
    chunk ``chunks`` yields, until it ends or the client goes away (the iterator is then
    closed, so its ``finally`` releases what it held)."""

    chunks: AsyncIterator[bytes] | None = None


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: validated inputs, nothing framework-shaped."""

    path: Any  # the route's path model, or None
    query: Any  # the route's query model, or None
    body: Any  # the route's body model (or None when it may be left out)
    headers: dict[str, str]  # lower-case names; filled for routes that take a token or a key
    client: str
    claims: Any  # the verified token's claims when the route takes a token, else None
    root_path: str = ""  # where the application is mounted (Serve's route prefix)


Handler = Callable[[Any, Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    """One operation: how to route, validate, guard and describe it."""

    method: str
    path: str
    handler: Handler
    status: int = 200
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_optional: bool = False
    query: type[BaseModel] | None = None
    path_model: type[BaseModel] | None = None
    token: Token | None = None
    idempotency: bool = False
    errors: tuple[int, ...] = ()
    tag: str = "leaderboard"
    responses: dict[int, type[BaseModel]] = field(default_factory=dict)
    stream: bool = False  # answers text/event-stream (the handler returns a ``Stream``)


@dataclass
class _Compiled:
    route: Route
    body: TypeAdapter[Any] | None
    query: TypeAdapter[Any] | None
    path: TypeAdapter[Any] | None


@dataclass
class _Node:
    methods: dict[str, _Compiled] = field(default_factory=dict)
    children: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, _Node] | None = None


def _adapter(model: Any) -> TypeAdapter[Any] | None:
    return None if model is None else TypeAdapter(model)


def _compile(route: Route) -> _Compiled:
    body = route.body
    return _Compiled(route, _adapter(body | None if body and route.body_optional else body),
                     _adapter(route.query), _adapter(route.path_model))


def describe_validation(errors: list[Any], where: str = "") -> str:
    """A short human-readable summary of pydantic validation errors."""
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in (where, *err.get("loc", ())) if p != "") or "body"
        if err.get("type") == "json_invalid":
            parts.append("malformed JSON body")
        else:
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


class Router:
    """Plain paths by dict, parameterised ones by a segment trie; 404/405 as JSON."""

    def __init__(self, routes: list[Route]) -> None:
        self._static: dict[str, dict[str, _Compiled]] = {}
        self._root = _Node()
        for route in routes:
            compiled = _compile(route)
            if "{" not in route.path:
                self._static.setdefault(route.path, {})[route.method] = compiled
            else:
                self._insert(route.path, compiled)

    def _insert(self, path: str, compiled: _Compiled) -> None:
        node = self._root
        for seg in path.strip("/").split("/"):
            if seg.startswith("{"):
                if node.param is None:
                    node.param = (seg[1:-1], _Node())
                node = node.param[1]
            else:
                node = node.children.setdefault(seg, _Node())
        node.methods[compiled.route.method] = compiled

    def _methods(self, path: str) -> tuple[dict[str, _Compiled], dict[str, str]] | None:
        found = self._static.get(path)
        if found is not None:
            return found, {}
        node, params = self._root, {}
        for seg in path.strip("/").split("/"):
            child = node.children.get(seg)
            if child is None and node.param is not None and seg:
                params[node.param[0]] = seg
                child = node.param[1]
            if child is None:
                return None
            node = child
        return (node.methods, params) if node.methods else None

    def match(self, method: str, path: str) -> tuple[_Compiled, dict[str, str]]:
        found = self._methods(path)
        if found is None:
            raise NotFound("Not Found")
        methods, params = found
        compiled = methods.get(method)
        if compiled is None:
            raise MethodNotAllowed(sorted(methods))
        return compiled, params


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string's parameters (the last of repeated names wins, as in Starlette)."""
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(p.partition("=")[::2] for p in text.split("&") if p)


def _validate(adapter: TypeAdapter[Any] | None, value: Any, where: str) -> Any:
    if adapter is None:
        return None
    try:
        return adapter.validator.validate_python(value)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc.errors(), where)) from None


def _validate_body(compiled: _Compiled, raw: bytes) -> Any:
    if compiled.body is None:
        return None
    if not raw.strip() and compiled.route.body_optional:
        return None
    try:
        return compiled.body.validator.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if any("metadata" in err.get("loc", ()) for err in errors):
            raise MetadataInvalid(describe_validation(errors)) from None
        raise BadRequest(describe_validation(errors)) from None


async def read_body(receive: Receive) -> bytes:
    """The whole request body, refused once it passes ``MAX_BODY``."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise PayloadTooLarge(f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def error_reply(exc: LeaderboardError) -> Reply:
    reply = Reply(exc.status_code, to_json(exc.body()))
    for name, value in exc.headers().items():
        reply.header(name, value)
    return reply


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
            await _lifespan(receive, send, self._startup)
            return
        if scope["type"] != "http":
            return
        try:
            reply = await self._answer(scope, receive)
        except Exception as exc:  # the one place every failure becomes an answer
            reply = error_reply(as_service_error(exc))
        if isinstance(reply, Stream) and reply.chunks is not None:
            await _stream(reply, reply.chunks, receive, send)
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
            path=_validate(compiled.path, params, "path"),
            query=_validate(compiled.query, query, "query"),
            body=_validate_body(compiled, raw),
            headers=headers,
            client=client[0] if client else "unknown",
            claims=claims,
            root_path=root,
        )
        return await route.handler(self._context, call)


async def _stream(reply: Reply, chunks: AsyncIterator[bytes], receive: Receive,
                  send: Send) -> None:
    """Send ``chunks`` as they come; stop when they end or the client disconnects."""
    await send({"type": "http.response.start", "status": reply.status,
                "headers": [(b"content-type", reply.content_type), *reply.headers]})

    async def pump() -> None:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(gone())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when Serve cancels this request: nothing of the stream outlives it
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()


async def _lifespan(receive: Receive, send: Send,
                    startup: Callable[[], Awaitable[None]] | None) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
