"""The atomic write script against the real Redis: boards, hash and stream agree."""

from __future__ import annotations

import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand, WriteMode
from leaderboard.keys import Keys, member_for
from leaderboard.pipeline.events import named
from leaderboard.serve.ranking import Ranker
from leaderboard.settings import MAX_SCORE, Settings


def cmd(user: str, mode: WriteMode, value: int, region: str = "EU") -> WriteCommand:
    return WriteCommand(user, f"Name {user}", region, mode, value)


async def test_one_write_updates_region_global_hash_and_stream(
    settings: Settings, redis: aioredis.Redis
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    result = await shard.write(cmd("ann", "set", 10))
    assert (result.status, result.score, result.rank) == ("ok", 10, 1)
    user = await redis.hgetall(keys.user("ann"))
    assert user["score"] == "10" and user["region"] == "EU" and user["version"] == str(result.version)
    assert await redis.zscore(keys.board("EU"), user["member"]) == 10
    assert await redis.zscore(keys.board("GLOBAL"), user["member"]) == 10
    events = await redis.xrange(keys.stream("EU"))
    assert len(events) == 1
    assert named(events[0][1]) == {
        "user_id": "ann", "name": "Name ann", "region": "EU", "score": "10",
        "version": str(result.version), "reached": user["reached"], "ts": user["updated_at"],
    }


async def test_global_user_is_only_on_global(settings: Settings, redis: aioredis.Redis) -> None:
    keys = Keys(settings.board)
    await RegionShard(settings, "GLOBAL").write(cmd("gus", "set", 5, region="GLOBAL"))
    assert await redis.zcard(keys.board("GLOBAL")) == 1
    for region in ("EU", "ASIA", "NA"):
        assert await redis.exists(keys.board(region)) == 0


async def test_modes_create_add_set(settings: Settings, redis: aioredis.Redis) -> None:
    shard = RegionShard(settings, "EU")
    assert (await shard.write(cmd("bo", "add", 7))).score == 7  # add creates from 0
    assert (await shard.write(cmd("bo", "create", 1))).status == "exists"
    assert (await shard.write(cmd("bo", "add", -10))).score == -3
    assert (await shard.write(cmd("bo", "set", 100))).score == 100
    assert (await shard.write(cmd("cy", "create", 4))).status == "ok"
    # a rejected write changes nothing: no event, same score
    keys = Keys(settings.board)
    assert await redis.xlen(keys.stream("EU")) == 4  # 4 applied, 1 refused
    assert await redis.hget(keys.user("bo"), "score") == "100"


async def test_extreme_scores_exact_and_out_of_range_changes_nothing(
    settings: Settings, redis: aioredis.Redis
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    top = await shard.write(cmd("max", "set", MAX_SCORE))
    low = await shard.write(cmd("min", "set", -MAX_SCORE))
    assert (top.score, low.score) == (MAX_SCORE, -MAX_SCORE)
    assert (await shard.write(cmd("max", "add", 1))).status == "out_of_range"
    assert (await shard.write(cmd("min", "add", -1))).status == "out_of_range"
    assert await redis.hget(keys.user("max"), "score") == str(MAX_SCORE)
    assert await redis.xlen(keys.stream("EU")) == 2
    near = await shard.write(cmd("near", "set", MAX_SCORE - 1))
    assert near.rank == 2  # MAX and MAX-1 stay distinct: doubles hold every integer < 2^53
    ranker = Ranker(settings)
    top3 = await ranker.top("GLOBAL", 3)
    assert [e["score"] for e in top3["entries"]] == [MAX_SCORE, MAX_SCORE - 1, -MAX_SCORE]


async def test_versions_strictly_increase(settings: Settings, redis: aioredis.Redis) -> None:
    shard = RegionShard(settings, "EU")
    versions = [(await shard.write(cmd("vic", "add", 1))).version for _ in range(50)]
    assert versions == sorted(versions) and len(set(versions)) == 50
    other = await RegionShard(settings, "NA").write(cmd("nat", "set", 1, region="NA"))
    assert other.version > versions[-1]  # one clock per Redis instance


async def test_ties_first_to_reach_ranks_higher(settings: Settings, redis: aioredis.Redis) -> None:
    eu, na = RegionShard(settings, "EU"), RegionShard(settings, "NA")
    await eu.write(cmd("first", "set", 50))
    await na.write(cmd("second", "set", 50, region="NA"))
    await eu.write(cmd("third", "set", 50))
    ranker = Ranker(settings)
    top = await ranker.top("GLOBAL", 10)
    assert [e["user_id"] for e in top["entries"]] == ["first", "second", "third"]
    # setting the same score again does not lose the place
    await eu.write(cmd("first", "set", 50))
    assert (await ranker.rank("GLOBAL", "first"))["rank"] == 1  # type: ignore[index]
    # leaving and coming back to 50 reaches it anew: now last among the 50s
    await eu.write(cmd("first", "add", 1))
    await eu.write(cmd("first", "add", -1))
    top = await ranker.top("GLOBAL", 10)
    assert [e["user_id"] for e in top["entries"]] == ["second", "third", "first"]
    eu_top = await ranker.top("EU", 10)
    assert [e["user_id"] for e in eu_top["entries"]] == ["third", "first"]


async def test_old_member_removed_when_score_changes(
    settings: Settings, redis: aioredis.Redis
) -> None:
    keys = Keys(settings.board)
    shard = RegionShard(settings, "EU")
    for s in (1, 2, 3):
        await shard.write(cmd("mo", "set", s))
    assert await redis.zcard(keys.board("EU")) == 1
    assert await redis.zcard(keys.board("GLOBAL")) == 1
    user = await redis.hgetall(keys.user("mo"))
    assert user["member"] == member_for("mo", int(user["reached"]))


async def test_values_beyond_the_exact_range_are_refused_before_redis(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(settings, "EU")
    await shard.write(cmd("big", "set", MAX_SCORE))
    # -(2^53 + 1) is not a double: the script would compute -1 instead of -2
    assert (await shard.write(cmd("big", "add", -(2**53 + 1)))).status == "out_of_range"
    assert await redis.hget(Keys(settings.board).user("big"), "score") == str(MAX_SCORE)


async def test_write_many_applies_in_order_in_one_round_trip(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(settings, "EU")
    cmds = [cmd("batch", "add", 1) for _ in range(10)] + [cmd("batch", "create", 5),
                                                            cmd("other", "set", MAX_SCORE + 1)]
    results = await shard.write_many(cmds)
    assert [r.score for r in results[:10]] == list(range(1, 11))
    assert [r.status for r in results[10:]] == ["exists", "out_of_range"]
    versions = [r.version for r in results[:10]]
    assert versions == sorted(versions) and len(set(versions)) == 10
    assert await redis.xlen(Keys(settings.board).stream("EU")) == 10
