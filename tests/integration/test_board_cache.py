"""BoardCache against the real Postgres and Redis: what one process writes, another sees."""

from __future__ import annotations

import uuid

import asyncpg
import redis.asyncio as aioredis

from leaderboard import board_registry
from leaderboard.board_cache import BoardCache
from leaderboard.boards import BoardCreate
from leaderboard.keys import Keys
from leaderboard.settings import Settings

INSERT = """
INSERT INTO boards (id, title, sort_order, operator, reset_seconds, reset_cron, start_at,
                    generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


def new_id() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


async def add(pg: asyncpg.Pool, redis: aioredis.Redis, keys: Keys, board_id: str) -> None:
    board = BoardCreate(id=board_id, operator="best", reset=60).board(1_700_000_000_000_000)
    await pg.execute(INSERT, *board.row().values())
    await board_registry.publish([redis], redis, keys, board)


async def test_another_process_sees_creation_and_deletion(
        settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool) -> None:
    keys = Keys(settings.board)
    here, there = BoardCache(pg, redis, keys), BoardCache(pg, redis, keys)
    await there.tick()
    bid = new_id()
    await add(pg, redis, keys, bid)
    await there.tick()
    seen = there.get(bid)
    assert seen is not None and seen.operator == "best" and seen.reset == 60
    assert await here.lookup(bid) == seen  # a miss reloads at once
    # deleted and purged (row gone) before the other process looked again
    await pg.execute("DELETE FROM boards WHERE id = $1", bid)
    await board_registry.retract([redis], redis, keys, bid)
    await there.tick()
    assert there.get(bid) is None and {b.id for b in there.all()} >= {"default"}


async def test_a_revision_committed_late_is_not_missed(
        settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool) -> None:
    keys = Keys(settings.board)
    cache = BoardCache(pg, redis, keys)
    early, late = new_id(), new_id()
    async with pg.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        board = BoardCreate(id=early).board(1_700_000_000_000_000)
        await slow.execute(INSERT, *board.row().values())  # takes a revision, not committed
        await add(pg, redis, keys, late)  # a higher revision, committed first
        await cache.tick()
        assert cache.get(late) is not None and cache.get(early) is None
        await tx.commit()
    await board_registry.bump(redis, keys)
    await cache.tick()
    assert cache.get(early) is not None
    await pg.execute("DELETE FROM boards WHERE id = ANY($1)", [early, late])


async def test_a_miss_right_after_another_still_finds_a_new_board(
        settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool) -> None:
    keys = Keys(settings.board)
    cache = BoardCache(pg, redis, keys)
    await cache.tick()
    assert await cache.lookup(new_id()) is None  # a miss: reloads, and starts the rate limit
    bid = new_id()
    await add(pg, redis, keys, bid)  # created (registry bumped) within the rate limit's window
    assert await cache.lookup(bid) is not None
    await pg.execute("DELETE FROM boards WHERE id = $1", bid)
