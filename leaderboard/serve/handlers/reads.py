"""Reads: top-N, a user's rank, the entries around a user (answered by the ranking replicas).

The same handlers serve the seed's paths (``/top``, board ``default``, answers as they always
were) and a board's (``/boards/{board}/top``, with ``season``): the path says which.
"""

from __future__ import annotations

from typing import Any

from leaderboard.cursor import Cursor, CursorInvalid
from leaderboard.errors import NotFound
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context
from leaderboard.serve.ranking import ReadRequest


async def _request(ctx: Context, call: Call, kind: str, arg: int, user_id: str = "") -> Any:
    """The read this call asks for; an unknown board is a 404 before any hop."""
    board: str = getattr(call.path, "board", "")  # '': a seed path
    if board and await ctx.boards.lookup(board) is None:
        raise NotFound(f"no board {board!r}")
    season = getattr(call.query, "season", None) or 0
    region = ctx.region(call.query.region)
    return ReadRequest(kind, region, arg, user_id, board, season)


async def top(ctx: Context, call: Call) -> Reply:
    """A page of ``limit`` entries and the board's size (of the live season, or ``season``):
    from rank 1, from ``from_rank``, or after the position a ``cursor`` names."""
    request = await _request(ctx, call, "top", call.query.limit)
    request = _paged(request, call.query.cursor, call.query.from_rank)
    body = await ctx.read(request)
    assert body is not None  # a board always answers top, empty or not
    return Reply(200, body)


def _paged(request: ReadRequest, cursor: str | None, from_rank: int | None) -> ReadRequest:
    """Where the page starts. A cursor pins its season: paging that began in a live season
    that has ended since goes on in that season."""
    if cursor is not None and from_rank is not None:
        raise CursorInvalid("give cursor or from_rank, not both")
    if from_rank is not None:
        return request._replace(start=f"rank:{from_rank - 1}")
    if cursor is None:
        return request
    found = Cursor.decode(cursor)
    found.check(request.board, request.region, request.season or None)
    season = found.season if request.board else 0
    return request._replace(start=f"after:{found.sort_key}:{found.member}", season=season)


async def ranks(ctx: Context, call: Call) -> Reply:
    """The listed users' entries (friends), in rank order, and the ids not on the board."""
    ids = call.query.ids()
    body = await ctx.read(await _request(ctx, call, "ranks", 0, ",".join(ids)))
    assert body is not None
    return Reply(200, body)


async def _user_read(ctx: Context, call: Call, kind: str, arg: int) -> Reply:
    request = await _request(ctx, call, kind, arg, call.path.user_id)
    body = await ctx.read(request)
    if body is None:
        where = f"the {request.region} board" + (f" of {request.board!r}" if request.board
                                                 else "")
        raise NotFound(f"user {request.user_id!r} is not on {where}")
    return Reply(200, body)


async def rank(ctx: Context, call: Call) -> Reply:
    """A user's exact rank on a board; 404 when they are not on it."""
    return await _user_read(ctx, call, "rank", 0)


async def around(ctx: Context, call: Call) -> Reply:
    """Up to ``range`` entries above and below a user (the user is in ``self``)."""
    return await _user_read(ctx, call, "around", call.query.span)
