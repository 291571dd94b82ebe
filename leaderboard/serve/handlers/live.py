"""Pushed updates: a board's top-N (and a user's neighbourhood) as Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from leaderboard.errors import NotFound, Unavailable
from leaderboard.models import BoardPath, RegionQuery
from leaderboard.serve.asgi import Call, Reply, Stream
from leaderboard.serve.context import Context
from leaderboard.serve.live import ViewKey

USER_ID = r"^[A-Za-z0-9_.-]+$"


class LiveQuery(RegionQuery):
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    user_id: Annotated[str | None, Field(min_length=1, max_length=64, pattern=USER_ID)] = None


async def live(ctx: Context, call: Call) -> Reply:
    """Server-Sent Events: the view now, then whenever it changes (at most 10 a second)."""
    path: BoardPath = call.path
    query: LiveQuery = call.query
    if await ctx.boards.lookup(path.board) is None:
        raise NotFound(f"no board {path.board!r}")
    region = ctx.region(query.region)
    if ctx.live.full():
        raise Unavailable("this replica holds as many live streams as it may; retry")
    key = ViewKey(path.board, region, query.limit, query.user_id or "")
    return Stream(200, b"", [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")],
                  b"text/event-stream", ctx.live.events(key, ctx.settings.live_heartbeat_s))
