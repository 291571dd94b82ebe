"""Admission inside the atomic write script: token buckets and backlog, against the real Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from leaderboard.actors.shard import RegionShard, WriteCommand
from leaderboard.keys import Keys
from leaderboard.settings import Settings


def limited(settings: Settings, **limits: Any) -> Settings:
    base = {"rate_limits_enabled": True, "user_rate_limit_count": 0,
            "region_rate_limit_per_sec": 0, "queue_reject_length": 0}
    return settings.model_copy(update={**base, **limits})


def add(user: str, region: str = "EU") -> WriteCommand:
    return WriteCommand(user, user.upper(), region, "add", 1)


async def test_fifty_concurrent_writes_admit_exactly_capacity(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(limited(settings, user_rate_limit_count=5, user_rate_limit_window=60), "EU")
    results = await asyncio.gather(*(shard.write(add("burst")) for _ in range(50)))
    ok = [r for r in results if r.status == "ok"]
    refused = [r for r in results if r.status != "ok"]
    assert len(ok) == 5 and len(refused) == 45
    assert sorted(r.remaining for r in ok) == [0, 1, 2, 3, 4]
    assert {(r.status, r.scope) for r in refused} == {("rate_limited", "user")}
    # the next token is 60/5 = 12 s away (a little less as time passed)
    assert all(11_000_000 <= r.retry_after_us <= 12_000_000 for r in refused)
    keys = Keys(settings.board)
    assert await redis.hget(keys.user("burst"), "score") == "5"
    assert await redis.xlen(keys.stream("EU")) == 5


async def test_refused_write_takes_no_token_from_the_other_bucket(
    settings: Settings, redis: aioredis.Redis
) -> None:
    s = limited(settings, user_rate_limit_count=3, user_rate_limit_window=3600,
                region_rate_limit_per_sec=1)
    shard = RegionShard(s, "EU")
    assert (await shard.write(add("a"))).status == "ok"  # takes the region's only token
    refused = await shard.write(add("a"))
    assert (refused.status, refused.scope) == ("rate_limited", "region")
    keys = Keys(settings.board)
    tokens = float(await redis.hget(keys.user_bucket("a"), "t"))
    assert 1.99 < tokens < 2.01  # the refused write left the user's bucket alone
    assert await redis.xlen(keys.stream("EU")) == 1


async def test_region_bucket_is_shared_by_all_users_of_the_region(
    settings: Settings, redis: aioredis.Redis
) -> None:
    s = limited(settings, region_rate_limit_per_sec=10)
    eu, na = RegionShard(s, "EU"), RegionShard(s, "NA")
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(*(eu.write(add(f"r{i}")) for i in range(40)))
    elapsed = loop.time() - start
    admitted = sum(r.status == "ok" for r in results)
    assert 10 <= admitted <= 10 + int(10 * elapsed) + 1
    assert {r.scope for r in results if r.status != "ok"} == {"region"}
    assert (await na.write(add("other", "NA"))).status == "ok"  # NA has its own bucket


async def test_backlog_limit_refuses_then_admits_after_drain(
    settings: Settings, redis: aioredis.Redis
) -> None:
    shard = RegionShard(limited(settings, queue_reject_length=10), "EU")
    results = [await shard.write(add(f"q{i}")) for i in range(12)]
    assert [r.status for r in results] == ["ok"] * 10 + ["queue_full"] * 2
    keys = Keys(settings.board)
    assert await redis.exists(keys.user("q10")) == 0  # refused: nothing written
    assert (await RegionShard(limited(settings, queue_reject_length=10), "NA")
            .write(add("n", "NA"))).status == "ok"  # per shard
    first = (await redis.xrange(keys.stream("EU"), count=1))[0][0]
    await redis.xdel(keys.stream("EU"), first)  # one event stored and deleted by a writer
    assert (await shard.write(add("q11"))).status == "ok"


async def test_limits_off_admit_everything(settings: Settings, redis: aioredis.Redis) -> None:
    s = settings.model_copy(update={"rate_limits_enabled": False, "user_rate_limit_count": 1,
                                    "queue_reject_length": 1})
    shard = RegionShard(s, "EU")
    results = await asyncio.gather(*(shard.write(add("free")) for _ in range(30)))
    assert all(r.status == "ok" and r.remaining == -1 for r in results)


@pytest.mark.parametrize("count,window,expected_us", [(5, 60, 12_000_000), (4, 2, 500_000)])
async def test_retry_after_matches_refill_rate(
    settings: Settings, redis: aioredis.Redis, count: int, window: float, expected_us: int
) -> None:
    shard = RegionShard(limited(settings, user_rate_limit_count=count,
                                user_rate_limit_window=window), "EU")
    for _ in range(count):
        assert (await shard.write(add("rr"))).status == "ok"
    refused = await shard.write(add("rr"))
    assert refused.status == "rate_limited"
    assert expected_us * 0.8 <= refused.retry_after_us <= expected_us
