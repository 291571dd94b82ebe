"""Reads of a board's season on the real Redis: live season by the instance clock, past seasons
while Redis holds them, ranks as tests/boards_model.py ranks them."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.boards import DEFAULT, Board, Operator, Order
from leaderboard.errors import BoardChanged, NoSuchSeason
from leaderboard.keys import Keys
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import GLOBAL, Settings
from tests.boards_model import BoardModel
from tests.integration.test_board_writes import USERS, redis_now, registered


async def write_all(settings: Settings, board: Board, model: BoardModel,
                    values: list[tuple[str, int]]) -> int:
    """Writes through the users' shards, fed to the model; the season of the last one."""
    shards = {r: RegionShard(settings, r, {board.id: board}.get) for r in set(USERS.values())}
    season = 0
    mode = "add" if board.operator == "incr" else "set"
    for user, value in values:
        res = await shards[USERS[user]].write(
            WriteCommand(user, user.upper(), USERS[user], mode, value, board=board.id))
        assert res.status == "ok"
        kind = "delta" if mode == "add" else "score"
        if res.improved:
            model.write(res.version, user, user.upper(), USERS[user], kind, value)
        season = res.season
    for shard in shards.values():
        await shard._redis.aclose()
    return season


async def same_as_model(ranker: Ranker, board: Board, model: BoardModel, season: int,
                        asked: int | None) -> None:
    for region in (GLOBAL, "EU", "NA"):
        want = model.standings(season, region)
        top = await ranker.board_top(board, region, 10, asked)
        assert top["season"] == season and top["total"] == len(want)
        assert [(e["user_id"], e["score"], e["rank"]) for e in top["entries"]] == [
            (e.user_id, e.score, i) for i, e in enumerate(want, start=1)]
        for user in USERS:
            rank = await ranker.board_rank(board, region, user, asked)
            assert (None if rank is None else rank["rank"]) == model.rank(season, user, region)
            around = await ranker.board_around(board, region, user, 1, asked)
            if around is not None:
                assert around["season"] == season and around["self"]["user_id"] == user


@pytest.mark.parametrize(("order", "operator"), [("desc", "set"), ("asc", "best"),
                                                 ("desc", "incr")])
async def test_live_and_past_seasons_rank_as_the_model(
    settings: Settings, redis: aioredis.Redis, order: Order, operator: Operator,
) -> None:
    board = await registered(redis, settings, order, operator, reset=1, start_shift_us=-100_000)
    model = BoardModel(board)
    ranker = Ranker(settings)
    values = [("ann", 5), ("bo", 5), ("cy", 9), ("gus", 1), ("ann", 2), ("cy", 9)]
    first = await write_all(settings, board, model, values)
    await same_as_model(ranker, board, model, first, None)
    _, end = board.schedule.bounds(first)
    assert end is not None
    await asyncio.sleep((end - await redis_now(redis)) / 1e6 + 0.05)
    second = await write_all(settings, board, model, [("bo", 3), ("gus", 4)])
    assert second > first
    await same_as_model(ranker, board, model, second, None)  # the live season moved on
    await same_as_model(ranker, board, model, first, first)  # the ended one, still in Redis
    with pytest.raises(NoSuchSeason):
        await ranker.board_top(board, GLOBAL, 10, second + 2)
    ranker.clock.offset_us = -5_000_000  # a replica whose clock is seconds off reads the same
    assert (await ranker.board_top(board, GLOBAL, 10))["season"] == second
    ranker.clock.offset_us = 5_000_000
    assert (await ranker.board_top(board, GLOBAL, 10))["season"] == second


async def test_a_season_boundary_with_no_writes_reads_an_empty_live_board(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    board = await registered(redis, settings, "desc", "set", reset=1)
    model = BoardModel(board)
    first = await write_all(settings, board, model, [("ann", 1)])
    _, end = board.schedule.bounds(first)
    assert end is not None
    await asyncio.sleep((end - await redis_now(redis)) / 1e6 + 0.05)
    top = await Ranker(settings).board_top(board, GLOBAL, 10)
    assert top["season"] > first and top["entries"] == [] and top["total"] == 0


async def test_refusals_of_board_reads(settings: Settings, redis: aioredis.Redis) -> None:
    keys = Keys(settings.board)
    later = await registered(redis, settings, "desc", "set", reset=60, start_shift_us=30_000_000)
    ranker = Ranker(settings)
    with pytest.raises(NoSuchSeason):
        await ranker.board_top(later, GLOBAL, 10)
    with pytest.raises(NoSuchSeason):
        await ranker.board_rank(later, GLOBAL, "ann", 1)
    await redis.hdel(keys.boards, later.id)
    with pytest.raises(BoardChanged):
        await ranker.board_top(later, GLOBAL, 10)
    await redis.delete(keys.epoch)  # warming: read from Postgres, but not a season to come
    with pytest.raises(NoSuchSeason):
        await ranker.board_top(later, GLOBAL, 10)


async def test_the_default_board_reads_as_today_with_season_1(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    await RegionShard(settings, "EU").write(WriteCommand("ann", "A", "EU", "set", 3))
    ranker = Ranker(settings)
    assert await ranker.board_top(DEFAULT, "EU", 5) == {**await ranker.top("EU", 5), "season": 1}
    assert (await ranker.board_rank(DEFAULT, GLOBAL, "ann", 1)) == {
        **(await ranker.rank(GLOBAL, "ann") or {}), "season": 1}
    with pytest.raises(NoSuchSeason):
        await ranker.board_around(DEFAULT, GLOBAL, "ann", 3, 2)
