"""Erasing a user (``DELETE /users/me``): every entry on every board and season, live and
archived, in Redis and Postgres, and the account.

Order matters, so that nothing comes back: first the user is marked erased (``erased_users``
in Postgres; ``erased`` in their profile hash on every Redis instance, which the write script
refuses and the apply scripts skip: folds and replays of events already queued), then their
keys and rows go; once the streams have drained past that moment, the rows the writers stored
meanwhile go too, and the erasure is marked complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import asyncpg
import redis.asyncio as aioredis

from leaderboard import board_purge
from leaderboard.boards import DEFAULT, Board
from leaderboard.changes import announce_flush
from leaderboard.keys import Keys
from leaderboard.shards import Topology

log = logging.getLogger("ray.serve")

# KEYS: the user's hash in each season (one per key). Removes each from its season's GLOBAL and
# region ZSETs (on this instance) and deletes it. Returns how many entries were removed.
ERASE = """
local n = 0
for _, hkey in ipairs(KEYS) do
  local h = redis.call('HMGET', hkey, 'member', 'region')
  if h[1] then
    local prefix = string.sub(hkey, 1, #hkey - #string.match(hkey, 'user:[^:]*$'))
    redis.call('ZREM', prefix .. 'board:GLOBAL', h[1])
    redis.call('ZREM', prefix .. 'board:' .. h[2], h[1])
    n = n + 1
  end
  redis.call('DEL', hkey)
end
return n
"""

# the user's archived entries go, and the ranks behind them close up (negated first: the
# unique rank indexes are checked row by row)
CLOSE_GLOBAL = """
UPDATE archive_entries SET global_rank = -(global_rank - 1)
WHERE board = $1 AND season = $2 AND global_rank > $3
"""
CLOSE_REGION = """
UPDATE archive_entries SET region_rank = -(region_rank - 1)
WHERE board = $1 AND season = $2 AND region = $3 AND region_rank > $4
"""
UNNEGATE = """
UPDATE archive_entries SET global_rank = abs(global_rank), region_rank = abs(region_rank)
WHERE board = $1 AND season = $2 AND (global_rank < 0 OR region_rank < 0)
"""


async def mark(pg: asyncpg.Pool, instances: Iterable[aioredis.Redis], main: aioredis.Redis,
               keys: Keys, user_id: str) -> None:
    """From here no write of the user applies anywhere, and no queued event of theirs does."""
    await pg.execute("INSERT INTO erased_users (user_id) VALUES ($1) ON CONFLICT (user_id) "
                     "DO UPDATE SET erased_at = NOW(), purged_at = NULL", user_id)
    profile = keys.profile(user_id)
    await asyncio.gather(*(r.hset(profile, mapping={"erased": "1"}) for r in instances))
    await asyncio.gather(*(r.hdel(profile, "name") for r in instances))
    await main.incr(keys.profiles_rev)  # cached archive answers held the user


async def restore_tombstones(redis: aioredis.Redis, keys: Keys, pg: asyncpg.Pool) -> int:
    """After Redis lost its data: the erased users' marks, before anything is replayed or
    rebuilt (their old tokens stay refused, their queued events stay dropped)."""
    users = [r["user_id"] for r in await pg.fetch("SELECT user_id FROM erased_users")]
    async with redis.pipeline(transaction=False) as pipe:
        for user in users:
            pipe.hset(keys.profile(user), "erased", "1")
        await pipe.execute()
    return len(users)


async def restore_profiles(redis: aioredis.Redis, keys: Keys, pg: asyncpg.Pool,
                           chunk: int = 10_000) -> int:
    """After Redis lost its data: the profile names of users who renamed themselves, so reads
    show them and a token from before the rename cannot write the old name back."""
    restored, last = 0, ""
    while rows := await pg.fetch(
            "SELECT user_id, name FROM credentials WHERE renamed_at IS NOT NULL AND user_id > $1 "
            "ORDER BY user_id LIMIT $2", last, chunk):
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.hset(keys.profile(row["user_id"]), "name", row["name"])
            await pipe.execute()
        restored += len(rows)
        last = rows[-1]["user_id"]
    return restored


async def purge_redis(redis: aioredis.Redis, keys: Keys, boards: list[Board],
                      user_id: str) -> int:
    """The user's entries in every season of every board on one instance, their buckets and
    idempotency records."""
    hashes = [keys.user(user_id)]
    for board in boards:
        if board.id == DEFAULT.id:
            continue
        seasons = await redis.smembers(keys.seasons(board.id, board.generation))
        hashes += [keys.season(board.id, board.generation, int(k)).user(user_id)
                   for k in seasons]
    removed = int(await redis.eval(ERASE, len(hashes), *hashes))
    await redis.delete(keys.user_bucket(user_id))
    await board_purge.unlink_prefix(redis, f"{keys.prefix}*idem:{user_id}:*")
    return removed


async def purge_postgres(pg: asyncpg.Pool, user_id: str, account: bool = True) -> None:
    """The user's rows, live and archived (ranks behind them close up), and the account."""
    async with pg.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM leaderboard WHERE user_id = $1", user_id)
        rows = await conn.fetch(
            "DELETE FROM archive_entries WHERE user_id = $1 "
            "RETURNING board, season, region, global_rank, region_rank", user_id)
        for r in rows:
            await conn.execute(CLOSE_GLOBAL, r["board"], r["season"], r["global_rank"])
            await conn.execute(CLOSE_REGION, r["board"], r["season"], r["region"],
                               r["region_rank"])
            await conn.execute(UNNEGATE, r["board"], r["season"])
            await conn.execute("UPDATE season_archive SET entries = entries - 1 "
                               "WHERE board = $1 AND season = $2", r["board"], r["season"])
        if account:
            await conn.execute("DELETE FROM credentials WHERE user_id = $1", user_id)


async def erase(pg: asyncpg.Pool, instances: dict[str, aioredis.Redis], topology: Topology,
                keys: Keys, boards: list[Board], user_id: str) -> None:
    """Everything of the user now (after ``mark``)."""
    for redis in instances.values():
        await purge_redis(redis, keys, boards, user_id)
    await announce_flush(instances.values(), keys)  # every rank behind the user moved
    await purge_postgres(pg, user_id)


async def finish(pg: asyncpg.Pool, instances: dict[str, aioredis.Redis], topology: Topology,
                 keys: Keys, boards: list[Board], user_id: str) -> bool:
    """Once the streams drained past the erasure, what the writers stored meanwhile goes too."""
    if not await board_purge.wait_drained(instances, topology, keys, timeout_s=600):
        log.warning("erasure of %s: streams did not drain; it finishes on the next attempt",
                    user_id)
        return False
    await erase(pg, instances, topology, keys, boards, user_id)
    await pg.execute("UPDATE erased_users SET purged_at = NOW() WHERE user_id = $1", user_id)
    return True
