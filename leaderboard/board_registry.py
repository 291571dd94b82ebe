"""The boards registry in Redis: what every write script checks (docs/boards.md).

``Keys.boards`` on every Redis instance maps each live board (but ``default``) to its
generation. A board is written there after its Postgres row and before its creation is
answered, and removed before its deletion is answered, so from the answer on every instance
agrees. ``Keys.boards_rev`` on REDIS_URL's instance is bumped after each change (and published
on the same name): the caches' signal to reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import redis.asyncio as aioredis

from leaderboard.board_cache import COLUMNS, Rows
from leaderboard.boards import Board
from leaderboard.keys import Keys


async def bump(main: aioredis.Redis, keys: Keys) -> None:
    """Tell every cache that the boards changed."""
    rev = await main.incr(keys.boards_rev)
    await main.publish(keys.boards_rev, rev)


async def publish(instances: Iterable[aioredis.Redis], main: aioredis.Redis, keys: Keys,
                  board: Board) -> None:
    """Register a new board on every instance, then bump the revision."""
    await asyncio.gather(*(r.hset(keys.boards, board.id, board.generation) for r in instances))
    await bump(main, keys)


async def retract(instances: Iterable[aioredis.Redis], main: aioredis.Redis, keys: Keys,
                  board_id: str) -> None:
    """Unregister a board on every instance (no write of it applies from here), then bump."""
    await asyncio.gather(*(r.hdel(keys.boards, board_id) for r in instances))
    await bump(main, keys)


LIVE_BOARDS = f"SELECT {COLUMNS} FROM boards WHERE deleted_at IS NULL AND id <> 'default'"


async def live_boards(pg: Rows) -> list[Board]:
    """Every live board but ``default``, from Postgres (the source of truth)."""
    return [Board.from_row(row) for row in await pg.fetch(LIVE_BOARDS)]


async def rewrite(redis: aioredis.Redis, keys: Keys, pg: Rows) -> list[Board]:
    """Write this instance's registry from Postgres (after Redis lost its data); the live boards.

    A board deleted while this ran may have been written back after its deletion removed it:
    the second look at Postgres takes it out again.
    """
    boards = await live_boards(pg)
    if boards:
        await redis.hset(keys.boards, mapping={b.id: b.generation for b in boards})
        still = {b.id for b in await live_boards(pg)}
        gone = [b.id for b in boards if b.id not in still]
        if gone:
            await redis.hdel(keys.boards, *gone)
    return boards
