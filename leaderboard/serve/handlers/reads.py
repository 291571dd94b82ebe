"""Reads: top-N, a user's rank, the entries around a user (answered by the ranking replicas)."""

from __future__ import annotations

from leaderboard.errors import NotFound
from leaderboard.models import (
    AroundQuery,
    BoardAroundQuery,
    BoardPath,
    BoardRegionQuery,
    BoardTopQuery,
    BoardUserPath,
    RegionQuery,
    TopQuery,
    UserPath,
)
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


async def _known_board(ctx: Context, board_id: str) -> None:
    if await ctx.boards.lookup(board_id) is None:
        raise NotFound(f"no board {board_id!r}")


async def board_top(ctx: Context, call: Call) -> Reply:
    """A board's first ``limit`` entries in its live season or in ``season``."""
    query: BoardTopQuery = call.query
    path: BoardPath = call.path
    await _known_board(ctx, path.board)
    body = await ctx.read(ReadRequest("top", ctx.region(query.region), query.limit, "",
                                      path.board, query.season or 0))
    assert body is not None
    return Reply(200, body)


async def _board_user_read(ctx: Context, call: Call, kind: str, arg: int) -> Reply:
    query: BoardRegionQuery = call.query
    path: BoardUserPath = call.path
    await _known_board(ctx, path.board)
    region = ctx.region(query.region)
    body = await ctx.read(ReadRequest(kind, region, arg, path.user_id, path.board,
                                      query.season or 0))
    if body is None:
        raise NotFound(f"user {path.user_id!r} is not on the {region} board of {path.board!r}")
    return Reply(200, body)


async def board_rank(ctx: Context, call: Call) -> Reply:
    """A user's exact rank on a board's season; 404 when they are not on it."""
    return await _board_user_read(ctx, call, "rank", 0)


async def board_around(ctx: Context, call: Call) -> Reply:
    """Up to ``range`` entries above and below a user on a board's season."""
    query: BoardAroundQuery = call.query
    return await _board_user_read(ctx, call, "around", query.span)
