"""Write-behind against the real Redis and Postgres: upsert guard, ack order, redelivery."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.boards import Board, generation_of
from leaderboard.keys import WRITERS_GROUP, Keys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline import stream
from leaderboard.pipeline.writer import StreamWriter, upsert
from leaderboard.settings import Settings


def event(user: str, score: int, version: int) -> ScoreEvent:
    return ScoreEvent(user_id=user, name=user.upper(), region="EU", score=score,
                      version=version, reached=version, ts=1_700_000_000_000)


async def rows(pg: asyncpg.Pool) -> dict[str, tuple[int, int]]:
    return {r["user_id"]: (r["score"], r["version"])
            for r in await pg.fetch("SELECT user_id, score, version FROM leaderboard")}


def make_writer(settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool, consumer: str,
                claim_idle_ms: int = 60_000) -> StreamWriter:
    return StreamWriter(redis, pg, Keys(settings.board), settings.region_list, consumer,
                        batch_size=100, block_ms=10, claim_idle_ms=claim_idle_ms)


async def drain(writer: StreamWriter, rounds: int = 20) -> int:
    total = 0
    for _ in range(rounds):
        total += await writer.step()
    return total


async def test_upsert_dedupes_and_never_goes_back(pg: asyncpg.Pool) -> None:
    await upsert(pg, [event("a", 1, 10), event("a", 3, 30), event("a", 2, 20), event("b", 5, 5)])
    assert await rows(pg) == {"a": (3, 30), "b": (5, 5)}
    await upsert(pg, [event("a", 99, 25), event("b", 6, 6)])  # a's event is older: ignored
    assert await rows(pg) == {"a": (3, 30), "b": (6, 6)}
    await upsert(pg, [event("a", 3, 30), event("b", 6, 6)])  # replay: no change
    assert await rows(pg) == {"a": (3, 30), "b": (6, 6)}


async def test_concurrent_overlapping_batches_do_not_deadlock(pg: asyncpg.Pool) -> None:
    users = [f"u{i:03d}" for i in range(200)]
    batch1 = [event(u, i, 100 + i) for i, u in enumerate(users)]
    batch2 = [event(u, i * 2, 1000 + i) for i, u in enumerate(reversed(users))]
    await asyncio.gather(*(upsert(pg, b) for b in (batch1, batch2, batch1[::-1], batch2[::-1])))
    stored = await rows(pg)
    assert all(stored[u] == ((199 - users.index(u)) * 2, 1000 + 199 - users.index(u))
               for u in users)


async def test_step_moves_stream_into_postgres_then_acks(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    shards = {r: RegionShard(settings, r) for r in ("EU", "NA")}
    writer = make_writer(settings, redis, pg, "w-test")
    await writer.start()
    for i in range(30):
        region = "EU" if i % 2 else "NA"
        await shards[region].write(WriteCommand(f"p{i % 7}", "P", region, "add", i))
    assert await drain(writer) == 30
    keys = Keys(settings.board)
    for region in ("EU", "NA"):
        assert await redis.xlen(keys.stream(region)) == 0
        assert (await redis.xpending(keys.stream(region), WRITERS_GROUP))["pending"] == 0
    stored = await rows(pg)
    for i in range(7):
        h = await redis.hgetall(keys.user(f"p{i}"))
        assert stored[f"p{i}"] == (int(h["score"]), int(h["version"]))


async def test_batch_of_a_dead_consumer_is_claimed_and_stored(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    await stream.ensure_groups(redis, [keys.stream(r) for r in settings.region_list])
    for i in range(5):
        await shard.write(WriteCommand(f"d{i}", "D", "EU", "set", i))
    taken = await stream.read(redis, "doomed", [keys.stream("EU")], ">", 100, None)
    assert len(taken) == 5  # read, never acknowledged: the consumer "died" here
    survivor = make_writer(settings, redis, pg, "survivor", claim_idle_ms=1000)
    await survivor.start()
    assert await survivor.step() == 0  # nothing of its own, nothing new, too early to claim
    await asyncio.sleep(1.1)
    assert await drain(survivor, 5) == 5
    assert set(await rows(pg)) == {f"d{i}" for i in range(5)}
    assert (await redis.xpending(keys.stream("EU"), WRITERS_GROUP))["pending"] == 0


async def test_restarted_consumer_rereads_its_own_pending(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    await stream.ensure_groups(redis, [keys.stream(r) for r in settings.region_list])
    await shard.write(WriteCommand("r1", "R", "EU", "set", 11))
    taken = await stream.read(redis, "writer-0", [keys.stream("EU")], ">", 100, None)
    assert len(taken) == 1
    restarted = make_writer(settings, redis, pg, "writer-0")  # same name, new process
    await restarted.start()
    assert await restarted.step() == 1
    assert (await rows(pg))["r1"][0] == 11


async def test_malformed_event_goes_to_dead_letter_and_rest_is_stored(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    writer = make_writer(settings, redis, pg, "w-dlq")
    await writer.start()
    await RegionShard(settings, "EU").write(WriteCommand("ok1", "O", "EU", "set", 1))
    await redis.xadd(keys.stream("EU"), {"user_id": "bad", "score": "1.5"})
    assert await drain(writer, 3) == 2
    assert set(await rows(pg)) == {"ok1"}
    dead = await redis.xrange(keys.dead("EU"))
    assert len(dead) == 1 and dead[0][1]["user_id"] == "bad" and "_error" in dead[0][1]
    assert await redis.xlen(keys.stream("EU")) == 0


async def test_dead_letter_streams_are_bounded(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    writer = make_writer(settings, redis, pg, "w-dlq-bound")
    writer.dead_maxlen = 100
    await writer.start()
    for i in range(1000):
        await redis.xadd(keys.stream("EU"), {"user_id": f"bad{i}", "score": "1.5"})
    assert await drain(writer, 50) == 1000
    assert 100 <= await redis.xlen(keys.dead("EU")) < 300  # trimmed, newest kept
    assert (await redis.xrevrange(keys.dead("EU"), count=1))[0][1]["user_id"] == "bad999"


async def test_writer_recreates_groups_after_redis_lost_its_data(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    writer = make_writer(settings, redis, pg, "w-flush")
    await writer.start()
    await redis.flushdb()
    assert await writer.step() == 0  # NOGROUP: groups recreated, nothing lost
    await RegionShard(settings, "EU").write(WriteCommand("after", "A", "EU", "set", 3))
    assert await drain(writer, 3) == 1
    assert (await rows(pg))["after"][0] == 3


async def test_event_postgres_refuses_goes_to_dead_letter_rest_stored(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    writer = make_writer(settings, redis, pg, "w-poison")
    await writer.start()
    await pg.execute("ALTER TABLE leaderboard ADD CONSTRAINT no_poison CHECK (user_id <> 'poison')")
    try:
        for user in ("fine1", "poison", "fine2"):
            await shard.write(WriteCommand(user, "P", "EU", "set", 1))
        assert await drain(writer, 3) == 3
    finally:
        await pg.execute("ALTER TABLE leaderboard DROP CONSTRAINT no_poison")
    assert set(await rows(pg)) == {"fine1", "fine2"}
    dead = await redis.xrange(keys.dead("EU"))
    assert [f["user_id"] for _, f in dead] == ["poison"]
    assert "CheckViolation" in dead[0][1]["_error"]
    assert writer.stats.dead_lettered == 1 and await redis.xlen(keys.stream("EU")) == 0


async def test_entry_delivered_too_often_is_dead_lettered_on_recovery(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    await stream.ensure_groups(redis, [keys.stream(r) for r in settings.region_list])
    shard = RegionShard(settings, "EU")
    await shard.write(WriteCommand("crashy", "C", "EU", "set", 1))
    await shard.write(WriteCommand("calm", "C", "EU", "set", 2))
    taken = await stream.read(redis, "writer-9", [keys.stream("EU")], ">", 100, None)
    # as if writers had died holding it again and again
    await redis.xclaim(keys.stream("EU"), WRITERS_GROUP, "writer-9", 0, [taken[0].entry_id],
                       retrycount=5)
    restarted = make_writer(settings, redis, pg, "writer-9")
    await restarted.start()
    assert await restarted.step() == 2
    assert set(await rows(pg)) == {"calm"}
    dead = await redis.xrange(keys.dead("EU"))
    assert [f["user_id"] for _, f in dead] == ["crashy"]
    assert "delivered 6 times" in dead[0][1]["_error"]


async def test_streams_of_shards_no_longer_configured_are_still_drained(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    # writes acknowledged while EU was split in two: some of them sit on shard EU.1's stream
    split = settings.model_copy(update={"region_splits": "EU=2"})
    extra = RegionShard(split, "EU.1")
    for i in range(5):
        assert (await extra.write(WriteCommand(f"s{i}", "S", "EU", "set", 10 + i))).status == "ok"
    # then the split is lowered: EU.1 is no longer a shard, but its stream must still reach Postgres
    keys = Keys(settings.board)
    assert "EU.1" not in settings.region_list
    shards = await stream.shards_to_drain(redis, keys, settings.region_list)
    assert shards[:len(settings.region_list)] == settings.region_list and shards[-1] == "EU.1"
    writer = StreamWriter(redis, pg, keys, shards, "w-left", batch_size=100, block_ms=10,
                          claim_idle_ms=60_000)
    await writer.start()
    await drain(writer, 5)
    assert await redis.xlen(keys.stream("EU.1")) == 0
    stored = await rows(pg)
    for i in range(5):
        version = int(await redis.hget(keys.user(f"s{i}"), "version"))
        assert stored[f"s{i}"] == (10 + i, version)


async def test_events_of_the_older_multi_field_form_are_still_stored_after_an_upgrade(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    # the stream as the previous release left it: one field per value, then new compact events
    keys = Keys(settings.board)
    old = {"user_id": "legacy", "name": "Old Form", "region": "EU", "score": "7",
           "version": "1700000000000001", "reached": "1700000000000001", "ts": "1700000000000"}
    await redis.xadd(keys.stream("EU"), old)  # type: ignore[arg-type]
    await redis.xadd(keys.stream("EU"), {**old, "user_id": "both", "score": "1"})  # type: ignore[arg-type]
    shard = RegionShard(settings, "EU")
    await shard.write(WriteCommand("both", "Both", "EU", "set", 2))  # newer, compact
    await shard.write(WriteCommand("fresh", "Fresh One", "EU", "set", 3))
    entries = [f for _, f in await redis.xrange(keys.stream("EU"))]
    assert [sorted(f) for f in entries] == [sorted(old)] * 2 + [["e"]] * 2
    writer = make_writer(settings, redis, pg, "w-upgrade")
    await writer.start()
    assert await drain(writer, 3) == 4
    stored = {r["user_id"]: (r["name"], r["score"], r["version"]) for r in await pg.fetch(
        "SELECT user_id, name, score, version FROM leaderboard")}
    assert stored["legacy"] == ("Old Form", 7, 1700000000000001)
    assert stored["both"][:2] == ("Both", 2) and stored["fresh"][:2] == ("Fresh One", 3)
    assert writer.stats.dead_lettered == 0 and await redis.xlen(keys.stream("EU")) == 0


async def test_malformed_compact_event_goes_to_dead_letter(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    keys = Keys(settings.board)
    writer = make_writer(settings, redis, pg, "w-dlq2")
    await writer.start()
    await redis.xadd(keys.stream("EU"), {"e": "1.5 2 3 4 EU bad Bad"})
    await RegionShard(settings, "EU").write(WriteCommand("ok2", "O", "EU", "set", 1))
    assert await drain(writer, 3) == 2
    assert set(await rows(pg)) == {"ok2"}
    dead = await redis.xrange(keys.dead("EU"))
    assert len(dead) == 1 and dead[0][1]["e"] == "1.5 2 3 4 EU bad Bad"
    assert "not an integer" in dead[0][1]["_error"]


async def test_board_writes_reach_postgres_per_board_and_season(
    settings: Settings, redis: aioredis.Redis, pg: asyncpg.Pool
) -> None:
    now = int((await redis.time())[0]) * 1_000_000
    board = Board("speed", "S", "asc", "best", None, now - 1, generation_of(now))
    await redis.hset(Keys(settings.board).boards, board.id, board.generation)
    shard = RegionShard(settings, "EU", {board.id: board}.get)
    await shard.write(WriteCommand("ann", "Ann", "EU", "set", 7))  # the default board
    best = await shard.write(WriteCommand("ann", "Ann", "EU", "set", 40, board="speed"))
    await shard.write(WriteCommand("ann", "Ann", "EU", "set", 50, board="speed"))  # not better
    writer = make_writer(settings, redis, pg, "w-boards")
    await writer.start()
    assert await drain(writer) == 2
    stored = {(r["board"], r["season"], r["user_id"]): (r["score"], r["version"])
              for r in await pg.fetch("SELECT board, season, user_id, score, version "
                                      "FROM leaderboard")}
    assert stored[("speed", 1, "ann")] == (40, best.version) and len(stored) == 2
    assert stored[("default", 1, "ann")][0] == 7
    assert await shard.unstored.confirm(pg) == 2 and len(shard.unstored) == 0
