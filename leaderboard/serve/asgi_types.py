"""The values a handler sees and returns, and the route table is made of: ``Call`` (one
validated request), ``Reply`` and ``Stream`` (answers), ``Route`` (one operation), plus the ASGI
callable's own types. ``leaderboard.serve.asgi`` re-exports the ones handlers import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import to_json

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Token = Literal["any", "server", "admin"]


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
