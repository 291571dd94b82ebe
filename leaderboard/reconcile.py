"""Compare a board in Redis with Postgres and repair drift in the safe direction (newer wins)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from leaderboard.keys import Keys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline.writer import upsert
from leaderboard.recovery import Row, durable_rows, restore
from leaderboard.settings import GLOBAL

CHUNK = 5000


@dataclass
class Report:
    """What reconcile found (and, unless dry, fixed)."""

    users_in_postgres: int = 0
    users_in_redis: int = 0
    redis_behind: list[str] = field(default_factory=list)
    postgres_behind: list[str] = field(default_factory=list)
    missing_from_boards: list[str] = field(default_factory=list)

    @property
    def drift(self) -> int:
        return len(self.redis_behind) + len(self.postgres_behind) + len(self.missing_from_boards)

    def lines(self, fixed: bool) -> list[str]:
        verb = "fixed" if fixed else "found (dry run, nothing changed)"
        return [
            f"users: {self.users_in_postgres} in Postgres, {self.users_in_redis} in Redis",
            f"Redis older than Postgres: {len(self.redis_behind)} {verb} {self.redis_behind[:10]}",
            f"Postgres older than Redis: {len(self.postgres_behind)} {verb} "
            f"{self.postgres_behind[:10]}",
            f"hash without board entry: {len(self.missing_from_boards)} {verb} "
            f"{self.missing_from_boards[:10]}",
        ]


async def reconcile(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, *, dry_run: bool = False
) -> Report:
    report = Report()
    await _postgres_side(redis, pg, keys, report, dry_run)
    await _redis_side(redis, pg, keys, report, dry_run)
    return report


async def _postgres_side(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, report: Report, dry_run: bool
) -> None:
    """Rows whose Redis copy is missing or older: restore them (version-guarded)."""
    async for rows in durable_rows(pg, CHUNK):
        report.users_in_postgres += len(rows)
        async with redis.pipeline(transaction=False) as pipe:
            for r in rows:
                pipe.hget(keys.user(r["user_id"]), "version")
            versions = await pipe.execute()
        stale: list[Row] = [tuple(r) for r, v in zip(rows, versions, strict=True)
                            if v is None or int(v) < r["version"]]
        report.redis_behind += [str(r[0]) for r in stale]
        if stale and not dry_run:
            await restore(redis, keys, stale)


async def _redis_side(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, report: Report, dry_run: bool
) -> None:
    """Hashes newer than Postgres (store them) or missing from their boards (re-add them)."""
    prefix = keys.user("")
    async for batch in _scan_batches(redis, prefix + "*"):
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hgetall(key)
            hashes = await pipe.execute()
        users = {key[len(prefix):]: h for key, h in zip(batch, hashes, strict=True) if h}
        report.users_in_redis += len(users)
        stored = {r["user_id"]: r["version"] for r in await pg.fetch(
            "SELECT user_id, version FROM leaderboard WHERE user_id = ANY($1)", list(users))}
        newer = [ScoreEvent(user_id=u, name=h["name"], region=h["region"], score=h["score"],
                            version=h["version"], reached=h["reached"], ts=h["updated_at"])
                 for u, h in users.items() if stored.get(u, 0) < int(h["version"])]
        report.postgres_behind += [e.user_id for e in newer]
        if newer and not dry_run:
            await upsert(pg, newer)
        await _check_boards(redis, keys, users, report, dry_run)


async def _check_boards(redis: aioredis.Redis, keys: Keys, users: dict[str, dict[str, str]],
                        report: Report, dry_run: bool) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for h in users.values():
            pipe.zscore(keys.board(GLOBAL), h["member"])
            pipe.zscore(keys.board(h["region"]), h["member"])
        scores = await pipe.execute()
    for i, (user, h) in enumerate(users.items()):
        if scores[2 * i] is None or scores[2 * i + 1] is None:
            report.missing_from_boards.append(user)
            if not dry_run:
                await redis.zadd(keys.board(GLOBAL), {h["member"]: int(h["score"])})
                if h["region"] != GLOBAL:
                    await redis.zadd(keys.board(h["region"]), {h["member"]: int(h["score"])})


async def _scan_batches(redis: aioredis.Redis, match: str):  # type: ignore[no-untyped-def]
    cursor = 0
    while True:
        cursor, found = await redis.scan(cursor, match=match, count=CHUNK)
        if found:
            yield found
        if cursor == 0:
            return
