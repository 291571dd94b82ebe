"""Boards: create and delete (admin token), list and describe (anyone)."""

from __future__ import annotations

import time
from typing import Any

from leaderboard import board_registry
from leaderboard.boards import DEFAULT, Board, BoardCreate, format_rfc3339
from leaderboard.errors import Conflict, NotFound, Unavailable
from leaderboard.models import BoardPath, SeasonsQuery
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve.asgi import Call, Reply
from leaderboard.serve.context import Context

INSERT = """
INSERT INTO boards (id, title, sort_order, operator, reset_seconds, reset_cron, start_at,
                    generation)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING RETURNING id
"""
ARCHIVES = """
SELECT season, entries FROM season_archive WHERE board = $1 AND season < $2
ORDER BY season DESC LIMIT $3
"""
TOMBSTONE = """
UPDATE boards SET deleted_at = now(), rev = nextval('boards_rev')
WHERE id = $1 AND deleted_at IS NULL RETURNING generation
"""


async def describe(ctx: Context, board: Board) -> dict[str, Any]:
    """The board, its season now (by this host's clock) and the season's GLOBAL entries."""
    body = board.as_dict()
    number = board.schedule.season_at(int(time.time() * 1_000_000))
    if number is None:
        return {**body, "season": None, "entries": 0}
    started, ends = board.schedule.bounds(number)
    body["season"] = {"number": number, "started_at": format_rfc3339(started),
                      "ends_at": None if ends is None else format_rfc3339(ends)}
    try:
        season_keys = ctx.keys.season(board.id, board.generation, number)
        body["entries"] = int(await ctx.redis.zcard(season_keys.board("GLOBAL")))
    except REDIS_DOWN as exc:
        raise Unavailable("Redis is unreachable") from exc
    return body


async def _now_us(ctx: Context) -> int:
    seconds, micros = await ctx.redis.time()
    return int(seconds) * 1_000_000 + int(micros)


async def create(ctx: Context, call: Call) -> Reply:
    """Define a board; 409 if the id exists (or is still being deleted)."""
    body: BoardCreate = call.body
    try:
        board = body.board(await _now_us(ctx))
    except REDIS_DOWN as exc:
        raise Unavailable("Redis is unreachable") from exc
    row = board.row()
    inserted = await ctx.pg.fetchval(INSERT, *row.values())
    if inserted is None:
        raise Conflict(f"board {board.id!r} already exists"
                       + (" (its deletion is still running)" if ctx.boards.deleting(board.id)
                          else ""))
    try:
        await board_registry.publish(ctx.instances.values(), ctx.redis, ctx.keys, board)
    except REDIS_DOWN as exc:  # not registered everywhere: undo, so a retry is not a 409
        await ctx.pg.execute("DELETE FROM boards WHERE id = $1", board.id)
        raise Unavailable("Redis is unreachable; the board was not created") from exc
    ctx.boards.put(board)
    return Reply.json(await describe(ctx, board), 201)


async def listing(ctx: Context, _: Call) -> Reply:
    """Every board."""
    return Reply.json({"boards": [b.as_dict() for b in ctx.boards.all()]})


async def _board(ctx: Context, call: Call) -> Board:
    path: BoardPath = call.path
    board = await ctx.boards.lookup(path.board)
    if board is None:
        raise NotFound(f"no board {path.board!r}")
    return board


async def show(ctx: Context, call: Call) -> Reply:
    """A board, its current season and how many entries it has on GLOBAL."""
    return Reply.json(await describe(ctx, await _board(ctx, call)))


async def delete(ctx: Context, call: Call) -> Reply:
    """Delete a board with every season of it, from Redis and Postgres (``default``: 409)."""
    board = await _board(ctx, call)
    if board.id == DEFAULT.id:
        raise Conflict("the default board cannot be deleted")
    generation = await ctx.pg.fetchval(TOMBSTONE, board.id)
    if generation is None:
        raise NotFound(f"no board {board.id!r}")
    try:
        await board_registry.retract(ctx.instances.values(), ctx.redis, ctx.keys, board.id)
    except REDIS_DOWN as exc:  # the tombstone stands; the purge loop unregisters it later
        raise Unavailable("Redis is unreachable; the deletion finishes when it is back") from exc
    ctx.boards.drop(board.id)
    ctx.spawn(ctx.purge(board.id, str(generation)))
    return Reply(204, b"")




async def seasons(ctx: Context, call: Call) -> Reply:
    """A board's seasons, newest first: the live one, ended ones still in Redis (archiving
    takes a moment), then the archive. Ended seasons without entries are not listed."""
    board, query = await _board(ctx, call), call.query
    assert isinstance(query, SeasonsQuery)
    current = board.schedule.season_at(await _now_us(ctx))
    if current is None:
        return Reply.json({"seasons": []})
    below = current + 1 if query.before is None else min(query.before, current + 1)
    archived = int(await ctx.pg.fetchval(
        "SELECT archived_through FROM boards WHERE id = $1", board.id) or 0)
    listed = await _live_seasons(ctx, board, current, archived, below)
    rows = await ctx.pg.fetch(ARCHIVES, board.id, min(below, archived + 1), query.limit)
    listed += [(int(r["season"]), int(r["entries"])) for r in rows]
    return Reply.json({"seasons": [_season(board, k, n, current)
                                   for k, n in listed[:query.limit]]})


async def _live_seasons(ctx: Context, board: Board, current: int, archived: int,
                        below: int) -> list[tuple[int, int]]:
    """(season, GLOBAL entries) of the seasons Redis holds that are not archived, newest first;
    the live season always (even empty)."""
    try:
        held = {current} if board.id == DEFAULT.id else {
            int(k) for k in await ctx.redis.smembers(ctx.keys.seasons(board.id, board.generation))
        } | {current}
        wanted = sorted((k for k in held if archived < k < below), reverse=True)
        counts = [int(await ctx.redis.zcard(
            ctx.keys.season(board.id, board.generation, k).board("GLOBAL"))) for k in wanted]
    except REDIS_DOWN as exc:
        raise Unavailable("Redis is unreachable") from exc
    return [(k, n) for k, n in zip(wanted, counts, strict=True) if n or k == current]


def _season(board: Board, number: int, entries: int, current: int) -> dict[str, Any]:
    started, ended = board.schedule.bounds(number)
    return {"number": number, "started_at": format_rfc3339(started),
            "ended_at": None if number == current or ended is None else format_rfc3339(ended),
            "entries": entries}
