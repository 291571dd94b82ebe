"""B8 of ``scripts/bench boards`` (issue 11): what rank's new fields cost, like for like.

``GET /rank/{id}`` gained ``total``, ``percentile``, ``gap_to_next`` (issue 11) and ``metadata``,
and its script reads the user's profile (renames). Everything else on the path (HTTP, the hop
to the ranking replica, JSON) is unchanged, so the difference is the script's and the answer's
work. Both versions run here against the same 100,000-entry board in the bench's Redis index:
the rank script before issue 11 (copied below, as it was at 30f054e^) with its answer building,
and today's ``RANK`` with ``rank_answer``. Each is timed over the same reads, pipelined 100 per
round trip, best of 5, on one core; the difference is then set against the CPU of a whole rank
read over HTTP (two cores divided by the rank req/s measured in this run).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from bench import Result, record

from leaderboard.keys import Keys, member_for
from leaderboard.read_scripts import RANK
from leaderboard.serve.answers import rank_answer

OLD_RANK = """
if redis.call('EXISTS', KEYS[3]) == 0 or redis.call('EXISTS', KEYS[4]) == 1 then
  return 'warming'
end
local h = redis.call('HMGET', KEYS[2], 'member', 'name', 'region', 'score')
if not h[1] then return false end
local r = redis.call('ZREVRANK', KEYS[1], h[1])
if not r then return false end
return {r, h[2], h[3], h[4]}
"""
ENTRIES = 100_000
READS = 20_000
PIPELINE = 100


def old_answer(reply: list[Any], user_id: str) -> dict[str, Any]:
    """The answer as ``ranking.py`` built it before issue 11."""
    return {"rank": int(reply[0]) + 1, "user_id": user_id, "name": reply[1],
            "region": reply[2], "score": int(reply[3])}


async def _fill(redis: aioredis.Redis, keys: Keys) -> None:
    await redis.set(keys.epoch, "bench")
    for start in range(0, ENTRIES, 5_000):
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(start, start + 5_000):
                user, member = f"rf-{i:06d}", member_for(f"rf-{i:06d}", i + 1)
                pipe.zadd(keys.board("GLOBAL"), {member: i % 50_000})
                pipe.hset(keys.user(user), mapping={
                    "member": member, "name": f"Player {i}", "region": "EU",
                    "score": i % 50_000, "meta": '{"car":"mk2"}' if i % 2 else ""})
            await pipe.execute()


async def _time(redis: aioredis.Redis, keys: Keys, script: Any, users: list[str],
                answer: Callable[[list[Any], str], Any]) -> float:
    """µs per read: the script's calls, pipelined, plus building each answer."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for i in range(0, len(users), PIPELINE):
            chunk = users[i:i + PIPELINE]
            async with redis.pipeline(transaction=False) as pipe:
                for user in chunk:
                    await script(keys=[keys.board("GLOBAL"), keys.user(user), keys.epoch,
                                       keys.warming], client=pipe)
                replies = await pipe.execute()
            for user, reply in zip(chunk, replies, strict=True):
                answer(reply, user)
        best = min(best, time.perf_counter() - started)
    return best / len(users) * 1e6


async def _measure(redis_url: str) -> tuple[float, float]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    keys = Keys("rankfields")
    try:
        await _fill(redis, keys)
        users = [f"rf-{random.randrange(ENTRIES):06d}" for _ in range(READS)]
        old = await _time(redis, keys, redis.register_script(OLD_RANK), users, old_answer)
        new = await _time(redis, keys, redis.register_script(RANK), users, rank_answer)
        return old, new
    finally:
        await redis.eval("for _, k in ipairs(redis.call('KEYS', ARGV[1])) do "
                         "redis.call('UNLINK', k) end", 0, f"{keys.prefix}*")
        await redis.aclose()


def rank_fields(redis_url: str, rank_rps: float | None) -> None:
    """Record B8: µs per rank read before and after, and the share of a whole read."""
    old, new = asyncio.run(_measure(redis_url))
    record(Result("rf_old", "rank script + answer before issue 11 (µs per read, 1 core)", old,
                  "µs"))
    record(Result("rf_new", "rank script + answer now: total, percentile, gap, metadata, "
                  "profile name (µs per read)", new, "µs"))
    if rank_rps:
        whole = 2e6 / rank_rps  # CPU µs of one HTTP rank read when both cores are busy
        record(Result("rf_share", f"the new fields' cost: {new - old:.1f} µs of a whole rank "
                      f"read's ~{whole:.0f} µs (target < 10%)", 100 * (new - old) / whole, "%"))
