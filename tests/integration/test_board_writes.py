"""The write script with boards, on the real Redis, against tests/boards_model.py.

Operators x orders on 1-second seasons (boundaries crossed by pauses), the shard's estimate of
Redis's clock sometimes far off (``season_stale`` reruns): every write lands in the season its
answer names, which is the season of its version, and each season's boards equal the model.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from hypothesis import given, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leaderboard.actors.shard import RegionShard, WriteCommand, WriteMode
from leaderboard.boards import Board, Operator, Order, generation_of
from leaderboard.keys import Keys
from leaderboard.pipeline.events import decode
from leaderboard.settings import GLOBAL, MAX_SCORE, Settings
from tests.boards_model import BoardModel

USERS = {"ann": "EU", "bo": "EU", "cy": "NA", "gus": "GLOBAL"}
VALUES = st.one_of(st.integers(-3, 3), st.integers(-3, 3),
                   st.sampled_from([MAX_SCORE, -MAX_SCORE, MAX_SCORE + 1]))
STEP = st.tuples(st.sampled_from(sorted(USERS)), st.booleans(), VALUES,
                 st.sampled_from([0, 0, 0, 0, 0, 150, 400]),
                 st.sampled_from([0, 0, 0, -3_000_000, 5_000_000]))


async def redis_now(r: aioredis.Redis) -> int:
    sec, us = await r.time()
    return int(sec) * 1_000_000 + int(us)


async def fresh(settings: Settings) -> aioredis.Redis:
    r = aioredis.Redis.from_url(settings.redis_url, decode_responses=True)
    await r.flushdb()
    await r.set(Keys(settings.board).epoch, "test")
    return r


async def registered(r: aioredis.Redis, settings: Settings, order: Order, operator: Operator,
                     reset: int | None = 1, start_shift_us: int = 0) -> Board:
    """A board created now (start shifted), in the registry as POST /boards leaves it."""
    now = await redis_now(r)
    board = Board(f"{operator}-{order}", "t", order, operator, reset, now + start_shift_us,
                  generation_of(now))
    await r.hset(Keys(settings.board).boards, board.id, board.generation)
    return board


def shards(settings: Settings, board: Board) -> dict[str, RegionShard]:
    lookup = {board.id: board}.get
    return {region: RegionShard(settings, region, lookup) for region in set(USERS.values())}


def mode_for(board: Board, delta: bool) -> WriteMode:
    if board.operator == "set":
        return "add" if delta else "set"
    return "set" if board.operator == "best" else "add"


@given(order=st.sampled_from(["desc", "asc"]), operator=st.sampled_from(["set", "best", "incr"]),
       steps=st.lists(STEP, min_size=1, max_size=20), offset=st.integers(0, 999_999))
@hsettings(max_examples=30)
def test_writes_agree_with_the_model_across_season_boundaries(
    settings: Settings, order: Order, operator: Operator,
    steps: list[tuple[str, bool, int, int, int]], offset: int,
) -> None:
    asyncio.run(_scenario(settings, order, operator, steps, offset))


async def _scenario(settings: Settings, order: Order, operator: Operator,
                    steps: list[tuple[str, bool, int, int, int]], offset: int) -> None:
    r = await fresh(settings)
    keys = Keys(settings.board)
    board = await registered(r, settings, order, operator, start_shift_us=-offset)
    by_region = shards(settings, board)
    model = BoardModel(board)
    last_season, stored = 0, 0
    for user, delta, value, pause_ms, skew_us in steps:
        await asyncio.sleep(pause_ms / 1000)
        shard = by_region[USERS[user]]
        shard.clock.offset_us = skew_us  # the shard's idea of Redis's clock, sometimes seconds off
        mode = mode_for(board, delta)
        cmd = WriteCommand(user, user.upper(), USERS[user], mode, value, board=board.id)
        res = await shard.write(cmd)
        note(f"{cmd} -> {res}")
        if abs(value) > MAX_SCORE:
            assert res.status == "out_of_range"
            continue
        if res.status == "out_of_range":  # only a sum can leave the range: the model agrees
            now = board.schedule.season_at(await redis_now(r)) or 1
            olds = [model.seasons.get(k, {}).get(user) for k in (now, now - 1)]
            assert mode == "add" and any(
                abs((o.score if o else 0) + value) > MAX_SCORE for o in olds)
            continue
        assert res.status == "ok", res
        assert res.season >= last_season  # the instance clock never goes back
        last_season = res.season
        kind = "delta" if mode == "add" else "score"
        if res.improved:
            out = model.write(res.version, user, user.upper(), USERS[user], kind, value)
            assert out.season == res.season  # the season of its version: t decided both
            assert out.applied.stored and res.score == out.entry.score
            stored += 1
        else:
            assert operator == "best"
            start, _ = board.schedule.bounds(res.season)
            out = model.write(start, user, user.upper(), USERS[user], kind, value)
            assert not out.applied.stored and res.score == out.entry.score
            assert res.version == out.entry.version
    await _same_as_model(r, keys, board, model, stored)
    await r.aclose()
    for shard in by_region.values():
        await shard._redis.aclose()


async def _same_as_model(r: aioredis.Redis, keys: Keys, board: Board, model: BoardModel,
                         stored: int) -> None:
    """Every season's boards, hashes, seasons set and stream events equal the model's."""
    for season in model.seasons:
        p = keys.season(board.id, board.generation, season)
        for region in (GLOBAL, "EU", "NA"):
            members = await r.zrevrange(p.board(region), 0, -1, withscores=True)
            want = model.standings(season, region)
            assert [m[16:] for m, _ in members] == [e.user_id for e in want], (season, region)
            assert [int(s) for _, s in members] == [board.sort_key(e.score) for e in want]
        for e in model.seasons[season].values():
            h = await r.hgetall(p.user(e.user_id))
            assert (int(h["score"]), int(h["version"]), int(h["reached"])) == (
                e.score, e.version, e.reached)
    assert await r.smembers(keys.seasons(board.id, board.generation)) == {
        str(s) for s in model.seasons}
    events = [decode(f) for _, f in await r.xrange(keys.stream("EU"))] + \
        [decode(f) for _, f in await r.xrange(keys.stream("NA"))] + \
        [decode(f) for _, f in await r.xrange(keys.stream("GLOBAL"))]
    assert len(events) == stored
    for ev in events:
        assert ev.board == board.id
        assert ev.season == board.schedule.season_at(ev.version)
        latest = model.seasons[ev.season][ev.user_id]
        assert ev.version <= latest.version


async def test_best_not_improved_writes_nothing_and_is_remembered(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    keys = Keys(settings.board)
    board = await registered(redis, settings, "asc", "best", reset=None)
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    first = await shard.write(WriteCommand("ann", "Ann", "EU", "set", 50, board=board.id))
    assert (first.status, first.season, first.improved, first.score) == ("ok", 1, True, 50)
    clock = await redis.get(keys.clock)
    p = keys.season(board.id, board.generation, 1)
    member = await redis.hget(p.user("ann"), "member")
    assert await redis.zscore(p.board(GLOBAL), member) == -50  # asc: the sort key is -score
    worse = WriteCommand("ann", "Ann", "EU", "set", 60, "k1", board=board.id)
    res = await shard.write(worse)
    assert (res.status, res.score, res.version, res.improved) == ("ok", 50, first.version, False)
    assert await redis.get(keys.clock) == clock and await redis.xlen(keys.stream("EU")) == 1
    again = await shard.write(worse)
    assert (again.status, again.score, again.season, again.improved) == ("replay", 50, 1, False)
    better = await shard.write(WriteCommand("ann", "Ann", "EU", "set", 40, board=board.id))
    assert (better.score, better.improved) == (40, True) and better.version > first.version
    fields = (await redis.xrange(keys.stream("EU")))[-1][1]
    assert fields["b"] == f"{board.id} 1" and decode(fields).score == 40
    assert await redis.exists(keys.idempotency("ann", "k1", board.id, board.generation)) == 1
    assert await redis.exists(keys.idempotency("ann", "k1")) == 0  # not the default board's


async def test_refusals_before_and_inside_the_script(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    keys = Keys(settings.board)
    incr = await registered(redis, settings, "desc", "incr", reset=None)
    later = Board("later", "t", "desc", "set", 60, incr.start_us + 30_000_000, "g1")
    await redis.hset(keys.boards, "later", "g1")
    shard = RegionShard(settings, "EU", {incr.id: incr, "later": later}.get)

    async def status(mode: WriteMode, board: str) -> str:
        return (await shard.write(WriteCommand("ann", "A", "EU", mode, 1, board=board))).status

    assert await status("set", incr.id) == "operator_mismatch"
    assert await status("create", incr.id) == "operator_mismatch"
    assert await status("add", "nope") == "unknown_board"
    res = await shard.write(WriteCommand("ann", "A", "EU", "set", 1, board="later"))
    assert res.status == "season_not_started" and 0 < res.retry_after_us <= 30_000_000
    await redis.hset(keys.boards, incr.id, "another-generation")  # deleted and created again
    assert await status("add", incr.id) == "board_changed"
    await redis.hdel(keys.boards, incr.id)
    assert await status("add", incr.id) == "board_changed"
    await redis.delete(keys.epoch)  # Redis lost its data: the registry comes back with the rebuild
    assert await status("add", incr.id) == "warming"
    assert await redis.xlen(keys.stream("EU")) == 0 and await redis.get(keys.clock) is None


async def test_a_retry_after_the_boundary_replays_its_season(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    board = await registered(redis, settings, "desc", "set")
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    cmd = WriteCommand("ann", "A", "EU", "add", 5, "retry-1", board=board.id)
    first = await shard.write(cmd)
    _, end = board.schedule.bounds(first.season)
    assert end is not None
    await asyncio.sleep((end - await redis_now(redis)) / 1e6 + 0.05)
    again = await shard.write(cmd)
    assert (again.status, again.season, again.score) == ("replay", first.season, 5)
    fresh_write = await shard.write(WriteCommand("ann", "A", "EU", "add", 5, board=board.id))
    assert fresh_write.season > first.season and fresh_write.score == 5  # a new season: from 0


@pytest.mark.parametrize("skew_us", [-10_000_000, 10_000_000])
async def test_a_far_off_clock_estimate_still_lands_in_the_right_season(
    settings: Settings, redis: aioredis.Redis, skew_us: int,
) -> None:
    board = await registered(redis, settings, "desc", "set", start_shift_us=-5_500_000)
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    shard.clock.offset_us = skew_us
    res = await shard.write(WriteCommand("ann", "A", "EU", "set", 3, board=board.id))
    assert res.status == "ok" and res.season == board.schedule.season_at(res.version)


async def test_default_board_keys_events_and_records_are_unchanged(
    settings: Settings, redis: aioredis.Redis,
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    res = await shard.write(WriteCommand("ann", "A", "EU", "set", 3, "k"))
    assert (res.status, res.season, res.improved) == ("ok", 1, True)
    assert list((await redis.xrange(keys.stream("EU")))[0][1]) == ["e"]
    assert sorted(await redis.hkeys(keys.idempotency("ann", "k"))) == [
        "fp", "rank", "score", "version"]
    assert await redis.keys("*:b:*") == []
