"""Idempotency-Key inside the atomic write script: a retry returns the first answer, applies once."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.keys import Keys
from leaderboard.pipeline.events import named
from leaderboard.settings import Settings


def add(user: str, delta: int, key: str | None) -> WriteCommand:
    return WriteCommand(user, user.upper(), "EU", "add", delta, key)


async def test_retry_with_same_key_applies_once_and_returns_first_answer(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(settings, "EU")
    first = await shard.write(add("ann", 10, "k-1"))
    await shard.write(add("bob", 50, None))  # ann's rank changes meanwhile
    again = await shard.write(add("ann", 10, "k-1"))
    assert first.status == "ok" and again.status == "replay"
    assert (again.score, again.version, again.rank) == (first.score, first.version, first.rank)
    keys = Keys(settings.board)
    assert await redis.hget(keys.user("ann"), "score") == "10"
    events = [f for _, f in await redis.xrange(keys.stream("EU")) if named(f)["user_id"] == "ann"]
    assert len(events) == 1
    third = await shard.write(add("ann", 10, "k-2"))  # a new key is a new write
    assert (third.status, third.score) == ("ok", 20)


async def test_concurrent_retries_apply_once(settings: Settings, redis: aioredis.Redis) -> None:
    shard = RegionShard(settings, "EU")
    results = await asyncio.gather(*(shard.write(add("cy", 7, "same")) for _ in range(20)))
    assert sorted(r.status for r in results) == ["ok"] + ["replay"] * 19
    assert {r.score for r in results} == {7}


async def test_same_key_different_request_is_refused(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(settings, "EU")
    assert (await shard.write(add("di", 1, "k"))).status == "ok"
    assert (await shard.write(add("di", 2, "k"))).status == "key_reused"
    assert (await shard.write(WriteCommand("di", "DI", "EU", "set", 1, "k"))).status == "key_reused"
    assert await redis.hget(Keys(settings.board).user("di"), "score") == "1"


async def test_keys_are_per_user(settings: Settings, redis: aioredis.Redis) -> None:
    shard = RegionShard(settings, "EU")
    assert (await shard.write(add("eve", 1, "shared"))).status == "ok"
    assert (await shard.write(add("fay", 1, "shared"))).status == "ok"


async def test_replay_takes_no_token_and_refused_write_is_not_remembered(
    settings: Settings, redis: aioredis.Redis
) -> None:
    s = settings.model_copy(update={"rate_limits_enabled": True, "user_rate_limit_count": 1,
                                    "user_rate_limit_window": 3600.0})
    shard = RegionShard(s, "EU")
    assert (await shard.write(add("gil", 1, "a"))).status == "ok"
    assert (await shard.write(add("gil", 1, "a"))).status == "replay"  # no token needed
    refused = await shard.write(add("gil", 1, "b"))
    assert refused.status == "rate_limited"
    keys = Keys(settings.board)
    assert await redis.exists(keys.idempotency("gil", "b")) == 0  # a retry of b may still apply
    assert 0 < await redis.ttl(keys.idempotency("gil", "a")) <= settings.idempotency_ttl_seconds
