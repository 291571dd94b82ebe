"""Season rollover on the real Redis and Postgres: fence, drain marks, archive, freeing.

Writes through real shards on 1-second seasons, drained by a real writer; the archive of each
ended season must equal the model's standings at its end (GLOBAL and every region), be written
exactly once even with archivers racing, and the season's keys must leave Redis afterwards.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from leaderboard import archive
from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.board_cache import BoardCache
from leaderboard.boards import Board, generation_of
from leaderboard.keys import Keys
from leaderboard.rollover import Rollover
from leaderboard.serve.ranking import Ranker, ReadRequest
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology
from tests.boards_model import BoardModel
from tests.integration.test_writer import drain, make_writer

USERS = {"ann": "EU", "bo": "EU", "cy": "NA", "di": "ASIA", "ed": "NA"}
INSERT = """INSERT INTO boards (id, title, sort_order, operator, reset_seconds, reset_cron,
            start_at, generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"""


async def redis_now(r: aioredis.Redis) -> int:
    sec, us = await r.time()
    return int(sec) * 1_000_000 + int(us)


async def make_board(r: aioredis.Redis, pg: asyncpg.Pool, settings: Settings, board_id: str,
                     order: str, operator: str, start_us: int, reset: int = 1) -> Board:
    board = Board(board_id, board_id, order, operator, reset, start_us,  # type: ignore[arg-type]
                  generation_of(start_us))
    await pg.execute(INSERT, *board.row().values())
    await r.hset(Keys(settings.board).boards, board.id, board.generation)
    return board


class Rig:
    """Shards of every region, one writer, one board cache and a rollover per shard."""

    def __init__(self, settings: Settings, r: aioredis.Redis, pg: asyncpg.Pool) -> None:
        self.keys = Keys(settings.board)
        self.topology = Topology.of(settings)
        self.cache = BoardCache(pg, r, self.keys)
        self.shards = {s: RegionShard(settings, s, self.cache.get)
                       for s in self.topology.all_shards()}
        self.rollovers = [Rollover(r, r, self.keys, s, self.topology, shard.unstored, self.cache)
                          for s, shard in self.shards.items()]
        self.writer = make_writer(settings, r, pg, "w-rollover")
        self.pg = pg

    async def write(self, model: BoardModel, user: str, value: int) -> None:
        kind = "score" if model.board.operator != "incr" else "delta"
        mode = "set" if kind == "score" else "add"
        result = await self.shards[USERS[user]].write(
            WriteCommand(user, user.upper(), USERS[user], mode, value, board=model.board.id))
        assert result.status == "ok", result
        if result.improved:
            outcome = model.write(result.version, user, user.upper(), USERS[user], kind, value)
            assert outcome.season == result.season

    async def settle(self, rounds: int = 3) -> None:
        """Writer drains, shards confirm, every shard runs its rollover round."""
        for _ in range(rounds):
            await drain(self.writer, 3)
            for shard in self.shards.values():
                await shard.unstored.confirm(self.pg)
            await self.cache.refresh()
            for rollover in self.rollovers:
                await rollover.tick(self.pg)


async def archived(pg: asyncpg.Pool, board: str, season: int, region: str = GLOBAL
                   ) -> list[tuple[str, int, int]]:
    column = "global_rank" if region == GLOBAL else "region_rank"
    where = "" if region == GLOBAL else "AND region = $3"
    rows = await pg.fetch(
        f"SELECT user_id, score, {column} AS rank FROM archive_entries "
        f"WHERE board = $1 AND season = $2 {where} ORDER BY {column}",
        board, season, *([] if region == GLOBAL else [region]))
    return [(r["user_id"], r["score"], r["rank"]) for r in rows]


def expected(model: BoardModel, season: int, region: str = GLOBAL) -> list[tuple[str, int, int]]:
    return [(e.user_id, e.score, i) for i, e in
            enumerate(model.standings(season, region), start=1)]


@pytest.fixture
async def rig(settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool) -> Rig:
    return Rig(settings, redis, pg)


async def wait_for_season(r: aioredis.Redis, board: Board, season: int) -> None:
    start = board.schedule.bounds(season)[0]
    await asyncio.sleep(max(0, start - await redis_now(r)) / 1e6 + 0.01)


async def test_an_ended_season_is_archived_as_it_stood_then_freed(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    start = await redis_now(redis)
    # 3-second seasons: the writes of season 1 and the rollover of it fit in one season
    boards = [await make_board(redis, rig.pg, settings, f"b-{o}-{op}", o, op, start, reset=3)
              for o, op in (("desc", "set"), ("asc", "best"), ("desc", "incr"))]
    models = [BoardModel(b) for b in boards]
    await rig.cache.refresh()
    values = [5, 3, 5, 9, 1, 3, 7, 2, 5]
    for i, value in enumerate(values):  # season 1, ties included
        for model in models:
            await rig.write(model, list(USERS)[i % len(USERS)], value)
    await wait_for_season(redis, boards[0], 2)
    for model in models:  # season 2: stays live
        await rig.write(model, "ann", 4)
    await rig.settle()
    for board, model in zip(boards, models, strict=True):
        assert rig.cache.archived(board.id) == 1
        for region in (GLOBAL, "EU", "NA", "ASIA"):
            assert await archived(rig.pg, board.id, 1, region) == expected(model, 1, region)
        assert not await rig.pg.fetchval(
            "SELECT count(*) FROM leaderboard WHERE board = $1 AND season = 1", board.id)
        s1 = rig.keys.season(board.id, board.generation, 1)
        assert not await redis.keys(f"{s1.prefix}*")  # season 1 freed
        assert await redis.smembers(rig.keys.seasons(board.id, board.generation)) == {"2"}
        assert await redis.get(rig.keys.freed(board.id, board.generation)) == "1"
        s2 = rig.keys.season(board.id, board.generation, 2)
        assert await redis.zcard(s2.board(GLOBAL)) == 1  # the live season is untouched


async def test_no_archive_while_a_write_of_the_season_is_not_in_postgres(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "held", "desc", "set",
                             await redis_now(redis))
    model = BoardModel(board)
    await rig.cache.refresh()
    await rig.write(model, "ann", 10)
    await wait_for_season(redis, board, 2)
    for rollover in rig.rollovers:  # the writer has not run: the stream holds season 1
        await rollover.tick(rig.pg)
    assert await rig.pg.fetchval("SELECT archived_through FROM boards WHERE id = 'held'") == 0
    assert await redis.zcard(rig.keys.season(board.id, board.generation, 1).board(GLOBAL)) == 1
    await rig.settle()
    assert await archived(rig.pg, "held", 1) == [("ann", 10, 1)]


async def test_racing_archivers_archive_a_season_exactly_once(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "race", "asc", "set",
                             await redis_now(redis) - 3_000_000)  # seasons 1-3 ended
    for season in (1, 3):
        for user, score in (("ann", 5), ("bo", 5), ("cy", -2)):
            await rig.pg.execute(
                "INSERT INTO leaderboard (board, season, user_id, name, region, score, version,"
                " reached) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                "race", season, user, user.upper(), USERS[user], score, season * 10 + len(user))
    results = await asyncio.gather(*(archive.archive(rig.pg, board, 3) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    assert not await archive.archive(rig.pg, board, 3)
    assert await rig.pg.fetchval("SELECT archived_through FROM boards WHERE id = 'race'") == 3
    seasons = await rig.pg.fetch("SELECT season, entries FROM season_archive ORDER BY season")
    assert [(r["season"], r["entries"]) for r in seasons] == [(1, 3), (3, 3)]  # 2 was empty
    # asc: lowest first; ann and bo tie at 5 and bo reached it first (version 32 < 33)
    assert await archived(rig.pg, "race", 3) == [("cy", -2, 1), ("bo", 5, 2), ("ann", 5, 3)]


async def test_a_shard_without_a_mark_holds_archiving_back(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "wait", "desc", "set",
                             await redis_now(redis))
    model = BoardModel(board)
    await rig.cache.refresh()
    await rig.write(model, "cy", 3)
    await wait_for_season(redis, board, 2)
    await drain(rig.writer, 3)
    await rig.shards["NA"].unstored.confirm(rig.pg)  # else NA holds it back (its own write)
    for rollover in rig.rollovers[1:]:  # the first shard never marks
        await rollover.tick(rig.pg)
    assert await rig.pg.fetchval("SELECT count(*) FROM season_archive") == 0
    await rig.rollovers[0].tick(rig.pg)
    assert await archived(rig.pg, "wait", 1) == [("cy", 3, 1)]


def test_the_last_ended_season_is_archivable_once() -> None:
    board = Board("p", "p", "desc", "set", 10, 0, "g")
    assert archive.archivable(board, 0, 5_000_000) == 0  # season 1 still running
    assert archive.archivable(board, 0, 10_000_000) == 1  # season 1 ended exactly at W
    assert archive.archivable(board, 1, 25_000_000) == 2
    assert archive.archivable(board, 2, 25_000_000) == 0
    assert archive.archivable(Board("n", "n"), 0, 10**15) == 0  # no reset: never


async def test_a_past_season_reads_the_same_from_redis_its_rows_and_its_archive(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "past", "asc", "set",
                             await redis_now(redis))
    model = BoardModel(board)
    await rig.cache.refresh()
    for i, value in enumerate([4, 8, 4, 1, 9, 8]):
        await rig.write(model, list(USERS)[i % len(USERS)], value)
    await wait_for_season(redis, board, 2)
    ranker = Ranker(settings)
    requests = [ReadRequest("top", region, 10, "", "past", 1) for region in (GLOBAL, "EU")]
    requests += [ReadRequest(kind, GLOBAL, 1, user, "past", 1)
                 for kind in ("rank", "around") for user in USERS]

    async def answers() -> list[Any]:
        return [None if a is None else json.loads(a) for a in await ranker.read_many(requests)]

    from_redis = await answers()  # ended, not archived yet: still read from Redis
    assert [(e["user_id"], e["score"]) for e in from_redis[0]["entries"]] == [
        (e.user_id, e.score) for e in model.standings(1)]
    await drain(rig.writer, 3)
    season_1 = rig.keys.season(board.id, board.generation, 1).prefix
    await redis.delete(*await redis.keys(f"{season_1}*"))  # Redis lost the ended season
    assert await answers() == from_redis  # ranked from its Postgres rows
    await rig.settle()
    assert await rig.pg.fetchval("SELECT archived_through FROM boards WHERE id = 'past'") >= 1
    assert await answers() == from_redis  # from the archive
    await asyncio.sleep(0.5)  # the ranker's cache learns archived_through
    assert await answers() == from_redis


async def test_a_dead_lettered_write_holds_its_season_back_until_repaired(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "dl", "desc", "set",
                             await redis_now(redis))
    model = BoardModel(board)
    await rig.cache.refresh()
    await rig.write(model, "ann", 10)
    await wait_for_season(redis, board, 3)  # seasons 1 and 2 ended
    dead = await redis.xadd(rig.keys.dead("NA"), {"e": "7 9 9 9 NA cy CY", "b": "dl 2",
                                                  "_error": "refused"})
    await rig.settle()
    assert await rig.pg.fetchval("SELECT archived_through FROM boards WHERE id = 'dl'") == 1
    await redis.xdel(rig.keys.dead("NA"), dead)  # an operator repaired it
    await rig.settle()
    assert await rig.pg.fetchval("SELECT archived_through FROM boards WHERE id = 'dl'") >= 2


async def test_the_registry_is_repaired_from_postgres(
    settings: Settings, redis: aioredis.Redis, rig: Rig
) -> None:
    board = await make_board(redis, rig.pg, settings, "kept", "desc", "set",
                             await redis_now(redis))
    await redis.hdel(rig.keys.boards, board.id)  # lost (say, a create interrupted)
    await redis.hset(rig.keys.boards, "ghost", "zzz")  # a board Postgres does not hold
    rollover = rig.rollovers[0]
    assert await rollover.repair_registry() == 2
    assert await redis.hgetall(rig.keys.boards) == {"kept": board.generation}
    assert await rollover.repair_registry() == 0
    result = await rig.shards["EU"].write(WriteCommand("ann", "Ann", "EU", "set", 3,
                                                       board="kept"))
    assert result.status == "ok"
