"""The ASGI application's request and answer plumbing: reading a body (refused past
``MAX_BODY``), parsing a query string, validating inputs (pydantic errors become
``BadRequest``/``MetadataInvalid`` with a short summary), a refusal's reply, sending a
streamed answer until it ends or the client leaves, and the lifespan protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from leaderboard.errors import BadRequest, LeaderboardError, MetadataInvalid, PayloadTooLarge
from leaderboard.serve.asgi_router import Compiled
from leaderboard.serve.asgi_types import Receive, Reply, Send

MAX_BODY = 1 << 20  # a full batch of 1,000 items is ~100 KB


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


def parse_query(raw: bytes) -> dict[str, str]:
    """A query string's parameters (the last of repeated names wins, as in Starlette)."""
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    return dict(p.partition("=")[::2] for p in text.split("&") if p)


def validate(adapter: TypeAdapter[Any] | None, value: Any, where: str) -> Any:
    """Path or query parameters as the route's model (None: the route takes none)."""
    if adapter is None:
        return None
    try:
        return adapter.validator.validate_python(value)
    except ValidationError as exc:
        raise BadRequest(describe_validation(exc.errors(), where)) from None


def validate_body(compiled: Compiled, raw: bytes) -> Any:
    """The body as the route's model; a refused metadata field is ``MetadataInvalid``."""
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


async def send_stream(reply: Reply, chunks: AsyncIterator[bytes], receive: Receive,
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


async def lifespan(receive: Receive, send: Send,
                   startup: Callable[[], Awaitable[None]] | None) -> None:
    """The ASGI lifespan protocol: ``startup`` runs before start-up is reported complete."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
