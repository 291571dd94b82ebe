"""Pipelined script calls: order, error replies, and a script cache Redis has lost."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from leaderboard.redis_client import run_script_many

APPEND = "redis.call('RPUSH', KEYS[1], ARGV[1]); if ARGV[1] == 'bad' then return redis.error_reply('no') end; return redis.call('LLEN', KEYS[1])"


async def test_calls_run_in_order_and_errors_come_back_per_call(redis: aioredis.Redis) -> None:
    script = redis.register_script(APPEND)
    replies = await run_script_many(redis, script, [(["l"], ["a"]), (["l"], ["bad"]), (["l"], ["c"])])
    assert replies[0] == 1 and replies[2] == 3
    assert isinstance(replies[1], ResponseError)
    assert await redis.lrange("l", 0, -1) == ["a", "bad", "c"]


async def test_a_flushed_script_cache_is_reloaded_and_each_call_runs_once(
    redis: aioredis.Redis,
) -> None:
    script = redis.register_script(APPEND)
    await run_script_many(redis, script, [(["l"], ["warm"])])
    await redis.script_flush()
    replies = await run_script_many(redis, script, [(["l"], [str(i)]) for i in range(5)])
    assert replies == [2, 3, 4, 5, 6]
    assert await redis.lrange("l", 0, -1) == ["warm", "0", "1", "2", "3", "4"]
