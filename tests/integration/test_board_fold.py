"""Boards across two Redis instances: writes of every board folded into GLOBAL, exactly.

EU lives on a second redis-server (no persistence, a free port, stopped after this module);
GLOBAL and NA on REDIS_URL. Three boards at once: ``default``, a desc/set board in its third
hourly season and an asc/best board without reset; a shard's write group mixes them.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
import redis.asyncio as aioredis

from leaderboard import board_registry
from leaderboard.actors.shard import RegionShard, WriteCommand, WriteMode
from leaderboard.boards import DEFAULT, Board, generation_of
from leaderboard.fold import DROPPED, FoldDeferred, FoldEvent, FoldLag, GlobalFold
from leaderboard.keys import Keys
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.recovery import BoardGuard
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve.ranking import Ranker, ReadRequest
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology
from tests.boards_model import BoardModel
from tests.e2e.servers import OwnRedis

REGIONS = [GLOBAL, "EU", "NA"]
HOUR_US = 3_600_000_000
INSERT = """
INSERT INTO boards (id, title, sort_order, operator, reset_seconds, reset_cron, start_at,
                    generation) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


@pytest.fixture
def sharded(settings: Settings, second: OwnRedis) -> Settings:
    return settings.model_copy(update={"redis_shards": f"EU={second.url}", "region_splits": ""})


@pytest.fixture
async def other(redis: aioredis.Redis, second: OwnRedis, settings: Settings
                ) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(second.url, decode_responses=True)
    await client.flushdb()
    await client.set(Keys(settings.board).epoch, "test")
    yield client
    await client.aclose()


class Boards:
    """Two boards created now (rows in Postgres, registered on both instances), and models."""

    def __init__(self, settings: Settings) -> None:
        now = time.time_ns() // 1000
        tag = uuid.uuid4().hex[:8]
        self.hourly = Board(f"h{tag}", "hourly", "desc", "set", 3600,
                            now - 2 * HOUR_US - HOUR_US // 2, generation_of(now))
        self.best = Board(f"b{tag}", "best", "asc", "best", None, now - 1000, generation_of(now))
        self.all = [DEFAULT, self.hourly, self.best]
        self.models = {b.id: BoardModel(b) for b in self.all}
        self.keys = Keys(settings.board)

    def get(self, board_id: str) -> Board | None:
        return next((b for b in self.all if b.id == board_id), None)

    async def lookup(self, board_id: str) -> Board | None:
        return self.get(board_id)

    async def create(self, pg: asyncpg.Pool, instances: list[aioredis.Redis]) -> None:
        for b in (self.hourly, self.best):
            await pg.execute(INSERT, *b.row().values())
            await board_registry.publish(instances, instances[0], self.keys, b)


@pytest.fixture
async def boards(sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis,
                 pg: asyncpg.Pool) -> AsyncIterator[Boards]:
    made = Boards(sharded)
    await made.create(pg, [redis, other])
    yield made
    await pg.execute("DELETE FROM boards WHERE id = ANY($1)", [made.hourly.id, made.best.id])


def region_of(user: str) -> str:
    return REGIONS[int(user[1:]) % 3]


def command(board: Board, user: str, value: int, key: str | None = None) -> WriteCommand:
    mode: WriteMode = "add" if board.operator == "incr" else "set"
    return WriteCommand(user, f"N {user}", region_of(user), mode, value, key, board=board.id)


async def write_groups(shards: dict[str, RegionShard], boards: Boards, groups: int,
                       seed: int = 5) -> None:
    """Random write groups, each on one shard and mixing all three boards; feeds the models."""
    rng = random.Random(seed)
    for _ in range(groups):
        region = rng.choice(REGIONS)
        users = [f"u{i:02d}" for i in range(30) if region_of(f"u{i:02d}") == region]
        cmds = [command(rng.choice(boards.all), rng.choice(users), rng.randrange(-4, 5))
                for _ in range(rng.randrange(1, 7))]
        for cmd, res in zip(cmds, await shards[region].write_many(cmds), strict=True):
            assert res.status == "ok", res
            model = boards.models[cmd.board]
            out = model.write(res.version, cmd.user_id, cmd.name, cmd.region, "score", cmd.value)
            assert (out.season, out.entry.score) == (res.season, res.score)


async def board_of(ranker: Ranker, board: Board, region: str) -> list[tuple[str, int]]:
    top = await ranker.board_top(board, region, 1000)
    return [(e["user_id"], e["score"]) for e in top["entries"]]


def expected(boards: Boards, board: Board, region: str) -> list[tuple[str, int]]:
    season = board.schedule.season_at(time.time_ns() // 1000) or 1
    return [(e.user_id, e.score) for e in boards.models[board.id].standings(season, region)]


async def drain(redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool, keys: Keys,
                fold: GlobalFold) -> None:
    for w in (StreamWriter(redis, pg, keys, [GLOBAL, "NA"], "w-a", batch_size=100, block_ms=10,
                           claim_idle_ms=60_000),
              StreamWriter(other, pg, keys, ["EU"], "w-b", batch_size=100, block_ms=10,
                           claim_idle_ms=60_000, fold=fold)):
        await w.start()
        while await w.step():
            pass


def shards_of(settings: Settings, boards: Boards) -> dict[str, RegionShard]:
    return {r: RegionShard(settings, r, boards.get) for r in REGIONS}


async def test_mixed_boards_fold_into_global_with_their_order_and_season(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool,
    boards: Boards,
) -> None:
    keys, shards = boards.keys, shards_of(sharded, boards)
    assert shards["EU"]._fold is not None and shards["NA"]._fold is None
    await write_groups(shards, boards, 60)
    ranker = Ranker(sharded)
    for board in boards.all:
        for region in REGIONS:
            assert await board_of(ranker, board, region) == expected(boards, board, region)
    hourly, best = boards.hourly, boards.best
    p = keys.season(hourly.id, hourly.generation, 3)
    assert await redis.exists(p.board(GLOBAL)) and await other.exists(p.board("EU"))
    assert not await other.exists(p.board(GLOBAL)) and not await redis.exists(p.board("EU"))
    for client in (redis, other):  # GLOBAL's instance learns the season from the fold
        assert await client.smembers(keys.seasons(hourly.id, hourly.generation)) == {"3"}
        assert await client.smembers(keys.seasons(best.id, best.generation)) == {"1"}
    # asc: GLOBAL holds -score for the users of the second instance too
    eu_user = next(e for e in boards.models[best.id].seasons[1].values() if e.region == "EU")
    member = await redis.hget(keys.season(best.id, best.generation, 1).user(eu_user.user_id),
                              "member")
    assert await redis.zscore(keys.season(best.id, best.generation, 1).board(GLOBAL),
                              member) == -eu_user.score
    # an EU write answers its GLOBAL rank on every board; a best write that does not improve too
    worse = eu_user.score + 1
    cmds = [command(best, eu_user.user_id, worse), command(hourly, "u01", 0)]
    cmds[1] = WriteCommand("u01", "N u01", "EU", "add", 0, board=hourly.id)
    got = await shards["EU"].write_many(cmds)
    assert not got[0].improved
    assert got[0].rank == boards.models[best.id].rank(1, eu_user.user_id)
    boards.models[hourly.id].write(got[1].version, "u01", "N u01", "EU", "delta", 0)
    assert got[1].rank == boards.models[hourly.id].rank(3, "u01") and got[1].season == 3
    # the idempotency record keeps the GLOBAL rank, so a retry answers the same
    better = command(best, eu_user.user_id, eu_user.score - 10, key="k-fold")
    first = await shards["EU"].write(better)
    boards.models[best.id].write(first.version, eu_user.user_id, better.name, "EU", "score",
                                 better.value)
    assert first.rank == boards.models[best.id].rank(1, eu_user.user_id) and first.rank > 0
    record = keys.idempotency(eu_user.user_id, "k-fold", best.id, best.generation)
    assert await other.hget(record, "rank") == str(first.rank - 1)
    again = await shards["EU"].write(better)
    assert (again.status, again.rank) == ("replay", first.rank)
    # the writers store every board's events and fold nothing more (the fast path did it all)
    await drain(redis, other, pg, keys, GlobalFold(redis, keys, boards.lookup))
    for board in boards.all:
        season = 3 if board is hourly else 1
        rows = {r["user_id"]: r["score"] for r in await pg.fetch(
            "SELECT user_id, score FROM leaderboard WHERE board = $1 AND season = $2",
            board.id, season)}
        assert rows == {u: e.score for u, e in boards.models[board.id].seasons[season].items()}
    assert await other.xlen(keys.stream("EU")) == 0
    lag = FoldLag.from_hash(await redis.hgetall(keys.fold_stats))
    assert lag.applied_fast > 0 and lag.applied_net == 0


async def test_writers_fold_other_boards_when_the_fast_path_could_not(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool,
    boards: Boards, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, shards = boards.keys, shards_of(sharded, boards)

    async def down(*_: object) -> list[int]:
        raise REDIS_DOWN[0]("GLOBAL instance down")

    monkeypatch.setattr(shards["EU"]._fold, "apply", down)
    await write_groups(shards, boards, 40, seed=9)
    pending = await shards["EU"].write(replace(command(boards.best, "u01", -100),
                                               metadata='{"car":"fast"}'))
    assert pending.global_pending and pending.rank == 0
    boards.models[boards.best.id].write(pending.version, "u01", "N u01", "EU", "score", -100)
    ranker = Ranker(sharded)
    assert await board_of(ranker, boards.best, GLOBAL) != expected(boards, boards.best, GLOBAL)
    await drain(redis, other, pg, keys, GlobalFold(redis, keys, boards.lookup))
    for board in boards.all:
        assert await board_of(ranker, board, GLOBAL) == expected(boards, board, GLOBAL)
    # the writers' fold carries the entry's metadata to GLOBAL's instance too
    read = ReadRequest("rank", GLOBAL, 1, "u01", boards.best.id, 1)
    answer = (await ranker.read_many([read]))[0]
    assert isinstance(answer, bytes) and json.loads(answer)["metadata"] == {"car": "fast"}
    assert FoldLag.from_hash(await redis.hgetall(keys.fold_stats)).applied_net > 0


async def test_freed_seasons_and_deleted_boards_are_not_folded(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool,
    boards: Boards, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys, shards = boards.keys, shards_of(sharded, boards)
    hourly, best = boards.hourly, boards.best
    gkey = keys.season(hourly.id, hourly.generation, 3).board(GLOBAL)
    # season 3 already freed on GLOBAL's instance: a late fold must not bring it back
    await redis.set(keys.freed(hourly.id, hourly.generation), 3)
    res = await shards["EU"].write(command(hourly, "u01", 5))
    assert res.status == "ok" and res.rank == 0 and not res.global_pending
    assert not await redis.exists(gkey)
    assert not await redis.exists(keys.season(hourly.id, hourly.generation, 3).user("u01"))
    assert await redis.smembers(keys.seasons(hourly.id, hourly.generation)) == set()
    fold = GlobalFold(redis, keys, boards.lookup)
    await drain(redis, other, pg, keys, fold)  # the writers drop it too, and acknowledge it
    assert not await redis.exists(gkey) and await other.xlen(keys.stream("EU")) == 0
    await redis.set(keys.freed(hourly.id, hourly.generation), 2)  # only up to 2: 3 folds
    await shards["EU"].write(command(hourly, "u01", 6))
    assert await redis.zcard(gkey) == 1
    await drain(redis, other, pg, keys, fold)
    # GLOBAL's instance does not know the board (its registry write failed): deferred
    await redis.hdel(keys.boards, best.id)
    res = await shards["EU"].write(command(best, "u04", 7))
    assert res.status == "ok" and res.global_pending and res.rank == 0
    writer = StreamWriter(other, pg, keys, ["EU"], "w-b", batch_size=100, block_ms=10,
                          claim_idle_ms=60_000, fold=fold)
    await writer.start()
    with pytest.raises(FoldDeferred):
        await writer.step()
    assert await other.xlen(keys.stream("EU")) == 1  # kept: not acknowledged
    await redis.hset(keys.boards, best.id, best.generation)  # the maintenance loop's repair
    assert await writer.step() == 1
    while await writer.step():
        pass
    assert await redis.zcard(keys.season(best.id, best.generation, 1).board(GLOBAL)) == 1
    # created again under another generation: the old generation's events are dropped
    await redis.hset(keys.boards, best.id, "another")
    row = FoldEvent("u07", "N", "EU", 1, 1, 1, 0, best, 1)
    assert await fold.apply([row], "net") == [DROPPED]
    # the writers' cache no longer has the board (deleted): its events are left out, acknowledged
    await redis.hset(keys.boards, best.id, best.generation)

    async def down(*_: object) -> list[int]:
        raise REDIS_DOWN[0]("GLOBAL instance down")

    monkeypatch.setattr(shards["EU"]._fold, "apply", down)
    assert (await shards["EU"].write(command(best, "u07", 1))).global_pending

    async def deleted(board_id: str) -> Board | None:
        return None if board_id == best.id else await boards.lookup(board_id)

    await drain(redis, other, pg, keys, GlobalFold(redis, keys, deleted))
    assert await other.xlen(keys.stream("EU")) == 0
    assert await redis.hget(keys.season(best.id, best.generation, 1).user("u07"), "score") is None


async def test_each_instance_rebuilds_every_boards_current_season(
    sharded: Settings, redis: aioredis.Redis, other: aioredis.Redis, pg: asyncpg.Pool,
    boards: Boards,
) -> None:
    keys, shards = boards.keys, shards_of(sharded, boards)
    await write_groups(shards, boards, 50, seed=11)
    await drain(redis, other, pg, keys, GlobalFold(redis, keys, boards.lookup))
    ranker = Ranker(sharded)
    before = {(b.id, r): await board_of(ranker, b, r) for b in boards.all for r in REGIONS}
    await redis.flushdb()
    await other.flushdb()
    t = Topology.of(sharded)
    for url, client, shard in ((t.global_url, redis, GLOBAL), (t.urls()[1], other, "EU")):
        guard = BoardGuard(client, keys, shard, shards[shard].unstored,
                           lambda region, u=url: t.boards_on(u, region), boards.get)  # type: ignore[misc]
        assert await guard.check(pg) == "rebuilt"
    for client in (redis, other):
        assert await client.hget(keys.boards, boards.best.id) == boards.best.generation
    assert {(b.id, r): await board_of(ranker, b, r) for b in boards.all for r in REGIONS} == before
    h = boards.hourly
    assert not await redis.exists(keys.season(h.id, h.generation, 3).board("EU"))
    assert not await other.exists(keys.season(h.id, h.generation, 3).board(GLOBAL))
