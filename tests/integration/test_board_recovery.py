"""Redis losing its data with many boards: the registry and every board's current season come
back from Postgres; a shard's unstored writes of any board are replayed into their season."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from leaderboard import board_registry
from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.boards import DEFAULT, Board, generation_of
from leaderboard.keys import Keys
from leaderboard.pipeline.events import decode
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.recovery import BoardGuard, rebuild_from_postgres, restore_items
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import GLOBAL, Settings

REGIONS = [GLOBAL, "EU", "NA"]
HOUR_US = 3_600_000_000
INSERT = """
INSERT INTO boards (id, title, sort_order, operator, reset_seconds, reset_cron, start_at,
                    generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
ROW = """
INSERT INTO leaderboard (board, season, user_id, name, region, score, version, reached,
                         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
"""


class Made:
    """An hourly desc board in its fifth season, an asc/best board, a deleted board."""

    def __init__(self) -> None:
        now, tag = time.time_ns() // 1000, uuid.uuid4().hex[:8]
        gen = generation_of(now)
        self.hourly = Board(f"h{tag}", "h", "desc", "set", 3600, now - 4 * HOUR_US - HOUR_US // 2,
                            gen)
        self.best = Board(f"b{tag}", "b", "asc", "best", None, now - 1000, gen)
        self.gone = Board(f"g{tag}", "g", "desc", "set", None, now - 1000, gen)
        self.lookup = {b.id: b for b in (DEFAULT, self.hourly, self.best)}.get


@pytest.fixture
async def made(redis: aioredis.Redis, pg: asyncpg.Pool, settings: Settings
               ) -> AsyncIterator[Made]:
    m = Made()
    for b in (m.hourly, m.best, m.gone):
        await pg.execute(INSERT, *b.row().values())
    await pg.execute("UPDATE boards SET deleted_at = now() WHERE id = $1", m.gone.id)
    for b in (m.hourly, m.best):
        await board_registry.publish([redis], redis, Keys(settings.board), b)
    yield m
    await pg.execute("DELETE FROM boards WHERE id = ANY($1)", [m.hourly.id, m.best.id, m.gone.id])


async def populate(settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool, m: Made
                   ) -> dict[str, RegionShard]:
    """Writes to all three live boards, stored by a writer; rows of an ended season and of the
    deleted board straight into Postgres."""
    shards = {r: RegionShard(settings, r, m.lookup) for r in REGIONS}
    for i in range(45):  # 45 distinct (board, user): 15 users on each board
        user, board = i % 20, (DEFAULT, m.hourly, m.best)[i % 3]
        region = REGIONS[user % 3]
        cmd = WriteCommand(f"u{user:02d}", f"N{i}", region, "set", (i * 7) % 11, board=board.id)
        assert (await shards[region].write(cmd)).status == "ok"
    writer = StreamWriter(redis, pg, Keys(settings.board), REGIONS, "w-brec", batch_size=500,
                          block_ms=10, claim_idle_ms=60_000)
    await writer.start()
    while await writer.step():
        pass
    for board, season in ((m.hourly, 4), (m.gone, 1)):
        await pg.execute(ROW, board.id, season, "old", "Old", "EU", 99, 5, 5)
    return shards


async def reads(ranker: Ranker, m: Made) -> dict[tuple[str, str], object]:
    return {(b.id, r): await ranker.board_top(b, r, 100) for b in (DEFAULT, m.hourly, m.best)
            for r in REGIONS}


async def test_rebuild_restores_the_registry_and_each_boards_current_season(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool, made: Made
) -> None:
    m, keys = made, Keys(settings.board)
    await populate(settings, redis, pg, m)
    ranker = Ranker(settings)
    before = await reads(ranker, m)
    asc = [e["score"] for e in before[(m.best.id, GLOBAL)]["entries"]]  # type: ignore[index]
    assert len(asc) == 15 and asc == sorted(asc)
    await redis.flushdb()
    assert await rebuild_from_postgres(redis, pg, keys, chunk=4) == 45  # not the ended season's
    await redis.set(keys.epoch, "rebuilt")
    assert await redis.hgetall(keys.boards) == {m.hourly.id: m.hourly.generation,
                                                m.best.id: m.best.generation}
    assert await reads(ranker, m) == before  # same order (asc included), ties included
    assert await redis.smembers(keys.seasons(m.hourly.id, m.hourly.generation)) == {"5"}
    ended = keys.season(m.hourly.id, m.hourly.generation, 4)
    assert not await redis.exists(ended.user("old"))  # ended seasons stay in Postgres
    assert not await redis.keys(f"{keys.prefix}b:{m.gone.id}:*")
    # the clock moved past every restored version, and the boards take writes again
    shard = RegionShard(settings, "EU", m.lookup)
    res = await shard.write(WriteCommand("u01", "N", "EU", "set", -3, board=m.best.id))
    assert res.status == "ok" and res.rank == 1


async def test_guard_replays_unstored_writes_of_every_board_into_their_season(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool, made: Made
) -> None:
    m, keys = made, Keys(settings.board)
    shards = await populate(settings, redis, pg, m)
    eu = shards["EU"]
    fresh = [await eu.write(WriteCommand("fresh", "F", "EU", "set", v, board=b.id))
             for b, v in ((m.hourly, 70), (m.best, -70), (DEFAULT, 7))]  # not in Postgres
    guard = BoardGuard(redis, keys, "EU", eu.unstored, lookup=m.lookup)
    assert await guard.check(pg) == "ok"
    await redis.flushdb()
    assert await guard.check(pg) == "rebuilt"
    for b, res in zip((m.hourly, m.best, DEFAULT), fresh, strict=True):
        p = keys.season(b.id, b.generation, res.season)
        assert await redis.hget(p.user("fresh"), "version") == str(res.version)
        member = await redis.hget(p.user("fresh"), "member")
        for region in (GLOBAL, "EU"):
            assert await redis.zscore(p.board(region), member) == b.sort_key(res.score)
    replayed = [decode(f) for _, f in await redis.xrange(keys.stream("EU"))]
    assert sorted((e.board, e.season, e.score) for e in replayed if e.user_id == "fresh") == \
        sorted((b.id, r.season, r.score) for b, r in zip((m.hourly, m.best, DEFAULT), fresh,
                                                         strict=True))
    writer = StreamWriter(redis, pg, keys, REGIONS, "w-after", batch_size=500, block_ms=10,
                          claim_idle_ms=60_000)
    await writer.start()
    while await writer.step():
        pass
    assert await eu.unstored.confirm(pg) >= 3
    rows = await pg.fetch("SELECT board, season, score FROM leaderboard WHERE user_id = 'fresh'")
    assert sorted(tuple(r) for r in rows) == sorted(
        (b.id, r.season, r.score) for b, r in zip((m.hourly, m.best, DEFAULT), fresh, strict=True))


async def test_restore_skips_freed_seasons_and_unregistered_boards(
    settings: Settings, redis: aioredis.Redis, made: Made
) -> None:
    m, keys = made, Keys(settings.board)
    row = ("late", "L", "EU", 5, 10, 10, 0)
    await redis.set(keys.freed(m.hourly.id, m.hourly.generation), 5)
    items = [(m.hourly, 5, row), (m.hourly, 6, row), (m.gone, 1, row), (m.best, 1, row)]
    assert await restore_items(redis, keys, items) == 2  # season 6 and the best board
    assert not await redis.exists(keys.season(m.hourly.id, m.hourly.generation, 5).user("late"))
    assert await redis.smembers(keys.seasons(m.hourly.id, m.hourly.generation)) == {"6"}
    assert not await redis.keys(f"{keys.prefix}b:{m.gone.id}:*")
    best = keys.season(m.best.id, m.best.generation, 1)
    assert await redis.zscore(best.board("EU"), await redis.hget(best.user("late"), "member")) == -5


async def test_reads_of_a_lost_board_say_warming_and_come_from_postgres(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool, made: Made
) -> None:
    m = made
    await populate(settings, redis, pg, m)
    ranker = Ranker(settings)
    live = {}
    for b in (m.hourly, m.best):
        for r in REGIONS:
            users = [f"u{i:02d}" for i in range(20) if r == GLOBAL or REGIONS[i % 3] == r]
            live[(b.id, r)] = (await ranker.board_top(b, r, 10),
                               [await ranker.board_rank(b, r, u) for u in users],
                               [await ranker.board_around(b, r, u, 2) for u in users])
    await redis.flushdb()
    for (board_id, r), (top, ranks, arounds) in live.items():
        b = m.lookup(board_id)
        assert b is not None
        users = [f"u{i:02d}" for i in range(20) if r == GLOBAL or REGIONS[i % 3] == r]
        cold = await ranker.board_top(b, r, 10)
        assert cold.pop("warming") is True and cold == top
        for u, rank, around in zip(users, ranks, arounds, strict=True):
            got = await ranker.board_rank(b, r, u)
            assert (got if got is None else {k: v for k, v in got.items() if k != "warming"}) \
                == rank
            near = await ranker.board_around(b, r, u, 2)
            assert near is None or near.pop("warming") is True
            assert near == around
