"""Reads: top-N, a user's rank, the entries around a user (answered by the ranking replicas)."""

from __future__ import annotations

from leaderboard.errors import NotFound
from leaderboard.models import AroundQuery, RegionQuery, TopQuery, UserPath
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context
from leaderboard.serve.ranking import ReadRequest


async def top(ctx: Context, call: Call) -> Reply:
    """The board's first ``limit`` entries and its size."""
    query: TopQuery = call.query
    body = await ctx.read(ReadRequest("top", ctx.region(query.region), query.limit, ""))
    assert body is not None  # a board always answers top, empty or not
    return Reply(200, body)


async def _user_read(ctx: Context, call: Call, kind: str, arg: int) -> Reply:
    query: RegionQuery = call.query
    path: UserPath = call.path
    board = ctx.region(query.region)
    body = await ctx.read(ReadRequest(kind, board, arg, path.user_id))
    if body is None:
        raise NotFound(f"user {path.user_id!r} is not on the {board} board")
    return Reply(200, body)


async def rank(ctx: Context, call: Call) -> Reply:
    """A user's exact rank on a board; 404 when they are not on it."""
    return await _user_read(ctx, call, "rank", 0)


async def around(ctx: Context, call: Call) -> Reply:
    """Up to ``range`` entries above and below a user (the user is in ``self``)."""
    query: AroundQuery = call.query
    return await _user_read(ctx, call, "around", query.span)
