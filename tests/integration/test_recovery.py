"""Redis losing its data: rebuild from Postgres, replay of unstored writes, warming reads."""

from __future__ import annotations

import random

import asyncpg
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.keys import Keys
from leaderboard.pipeline.events import named
from leaderboard.pipeline.writer import StreamWriter
from leaderboard.recovery import CONFIRM, HAS_STATISTICS, BoardGuard, rebuild_from_postgres
from leaderboard.serve.pg_ranks import PostgresRanks
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import Settings

REGIONS = ["GLOBAL", "ASIA", "EU", "NA"]


async def populate(settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool,
                   users: int = 120) -> dict[str, RegionShard]:
    """Random writes (many ties) stored in Postgres by a real writer."""
    rng = random.Random(7)
    shards = {r: RegionShard(settings, r) for r in REGIONS}
    for n in range(users * 3):
        i = n if n < users else rng.randrange(users)  # everyone once, then at random
        region = REGIONS[i % 4]
        await shards[region].write(WriteCommand(f"u{i:03d}", f"N{i}", region, "set",
                                                rng.randrange(10)))
    writer = StreamWriter(redis, pg, Keys(settings.board), REGIONS, "w-rec", batch_size=500,
                          block_ms=10, claim_idle_ms=60_000)
    await writer.start()
    while await writer.step():
        pass
    return shards


async def snapshot(ranker: Ranker) -> dict[str, dict[str, object]]:
    return {r: await ranker.top(r, 1000) for r in REGIONS}


async def test_rebuild_restores_exact_boards(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    await populate(settings, redis, pg)
    ranker = Ranker(settings)
    before = await snapshot(ranker)
    keys = Keys(settings.board)
    await redis.flushdb()
    assert await rebuild_from_postgres(redis, pg, keys, chunk=37) == 120
    await redis.set(keys.epoch, "rebuilt")
    assert await snapshot(ranker) == before  # same order, ties included


async def test_rebuild_never_overwrites_a_newer_write(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    shards = await populate(settings, redis, pg, users=20)
    keys = Keys(settings.board)
    await redis.flushdb()
    newer = await shards["EU"].write(WriteCommand("u002", "N2", "EU", "set", 999))  # during rebuild
    await rebuild_from_postgres(redis, pg, keys)
    assert await redis.hget(keys.user("u002"), "score") == "999"
    assert int(await redis.hget(keys.user("u002"), "version")) == newer.version
    assert await redis.zcard(keys.board("GLOBAL")) == 20
    later = await shards["EU"].write(WriteCommand("u006", "N6", "EU", "add", 1))
    assert later.version > newer.version  # the clock moved past every restored version


async def test_postgres_ranks_equal_redis_ranks(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    await populate(settings, redis, pg)
    ranker, durable = Ranker(settings), PostgresRanks(pg)
    for region in REGIONS:
        live = await ranker.top(region, 1000)
        cold = await durable.top(region, 1000)
        assert cold.pop("warming") is True
        assert cold == live
        for entry in live["entries"][::7]:
            user = str(entry["user_id"])
            got = await durable.rank(region, user)
            assert got is not None and got.pop("warming") is True
            assert got == await ranker.rank(region, user)
            for span in (1, 4):
                around = await durable.around(region, user, span)
                assert around is not None and around.pop("warming") is True
                assert around == await ranker.around(region, user, span)
    assert await durable.rank("NA", "u002") is None  # u002 is an EU user
    assert await durable.rank("GLOBAL", "ghost") is None


async def test_lost_board_reads_say_warming_and_come_from_postgres(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    await populate(settings, redis, pg, users=30)
    ranker = Ranker(settings)
    expected = await ranker.top("EU", 5)
    await redis.flushdb()
    cold = await ranker.top("EU", 5)
    assert cold.pop("warming") is True and cold == expected
    rank = await ranker.rank("GLOBAL", "u002")
    assert rank is not None and rank["warming"] is True


async def test_writes_while_warming(settings: Settings, redis: aioredis.Redis,
                                    pg: asyncpg.Pool) -> None:
    shards = await populate(settings, redis, pg, users=12)
    await redis.flushdb()
    eu = shards["EU"]
    assert (await eu.write(WriteCommand("u002", "N2", "EU", "add", 1))).status == "warming"
    assert (await eu.write(WriteCommand("u002", "N2", "EU", "create", 1))).status == "warming"
    done = await eu.write(WriteCommand("u002", "N2", "EU", "set", 50))  # absolute: safe
    assert done.status == "ok" and done.rank == 0  # no rank while the board is incomplete


async def test_guard_replays_unstored_writes_and_rebuilds(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    shards = await populate(settings, redis, pg, users=16)
    keys = Keys(settings.board)
    eu = shards["EU"]
    unstored = await eu.write(WriteCommand("fresh", "F", "EU", "set", 77))  # not in Postgres
    assert len(eu.unstored) >= 1
    guard = BoardGuard(redis, keys, "EU", eu.unstored)
    assert await guard.check(pg) == "ok"
    await redis.flushdb()  # the unstored write's event was only in the lost stream
    assert await guard.check(pg) == "rebuilt"
    assert await redis.exists(keys.epoch) == 1 and await redis.exists(keys.warming) == 0
    assert await redis.hget(keys.user("fresh"), "version") == str(unstored.version)
    assert await redis.zcard(keys.board("GLOBAL")) == 17
    replayed = [f for _, f in await redis.xrange(keys.stream("EU")) if named(f)["user_id"] == "fresh"]
    assert len(replayed) == 1  # back on the stream, so the writers will store it
    writer = StreamWriter(redis, pg, keys, REGIONS, "w-after", batch_size=500, block_ms=10,
                          claim_idle_ms=60_000)
    await writer.start()
    while await writer.step():
        pass
    assert await eu.unstored.confirm(pg) >= 1
    assert "fresh" not in {e.user_id for e in eu.unstored.events()}
    assert await pg.fetchval("SELECT score FROM leaderboard WHERE user_id = 'fresh'") == 77


async def test_guard_clears_a_stale_warming_flag_and_never_flags_a_complete_board(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    guard = BoardGuard(redis, keys, "EU", shard.unstored)
    await redis.set(keys.warming, "a rebuilder that died after setting the epoch")
    assert await guard.check(pg) == "ok"
    assert await redis.exists(keys.warming) == 0
    await redis.set(keys.rebuild_lock, "someone")  # a rebuild in progress keeps its flag
    await redis.set(keys.warming, "someone")
    assert await guard.check(pg) == "ok"
    assert await redis.exists(keys.warming) == 1


async def test_a_rebuild_keeps_erased_users_erased(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    assert (await shard.write(WriteCommand("gone", "G", "EU", "set", 9))).status == "ok"
    await pg.execute("INSERT INTO erased_users (user_id) VALUES ('gone') ON CONFLICT DO NOTHING")
    await redis.flushdb()  # Redis lost its data, the tombstone with it
    await rebuild_from_postgres(redis, pg, keys)
    assert await redis.hget(keys.profile("gone"), "erased") == "1"
    # the shard's unstored write of that user is not replayed, and new writes are refused
    guard = BoardGuard(redis, keys, "EU", shard.unstored)
    await guard._replay()
    assert not await redis.exists(keys.user("gone"))
    assert (await shard.write(WriteCommand("gone", "G", "EU", "set", 1))).status == "erased"


async def test_a_rebuild_restores_renamed_users_profiles(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    await pg.execute("INSERT INTO credentials (user_id, name, region, password_hash, renamed_at) "
                     "VALUES ('ren', 'New', 'EU', 'x', now()), ('kept', 'Same', 'EU', 'x', NULL)")
    shard = RegionShard(settings, "EU")
    await redis.hset(keys.profile("ren"), "name", "New")
    assert (await shard.write(WriteCommand("ren", "Old", "EU", "set", 9))).name == "New"
    await redis.flushdb()  # Redis lost its data, the profile with it
    await rebuild_from_postgres(redis, pg, keys)
    assert await redis.hget(keys.profile("ren"), "name") == "New"
    assert not await redis.exists(keys.profile("kept"))  # only renamed users get a profile
    # a token issued before the rename (name "Old") still writes the new name
    assert (await shard.write(WriteCommand("ren", "Old", "EU", "set", 10))).name == "New"


async def test_the_first_confirm_gives_the_planner_statistics_to_find_events_by_key(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    """Never analyzed (autovacuum off, or not yet), the table let the planner probe CONFIRM's
    events through a score index, reading every entry of the board for each: ~45x the CPU
    at 1,000 entries. The first confirm analyzes it, and the probe then takes the key."""
    await pg.execute("DELETE FROM pg_statistic WHERE starelid = 'leaderboard'::regclass")
    shards = await populate(settings, redis, pg)
    await pg.execute("INSERT INTO leaderboard (user_id, name, region, score, version, reached) "
                     "SELECT 'x' || i, 'X', 'EU', i, 1, 1 FROM generate_series(1, 5000) i")
    assert not await pg.fetchval(HAS_STATISTICS)
    assert len(shards["EU"].unstored) > 0
    assert await shards["EU"].unstored.confirm(pg) > 0
    assert await pg.fetchval(HAS_STATISTICS)
    plan = await pg.fetch("EXPLAIN " + CONFIRM, ["default"], [1], ["u001"], [1])
    assert "leaderboard_pkey" in "\n".join(r[0] for r in plan)
