"""Compare a board in Redis with Postgres and repair drift in the safe direction (newer wins)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import asyncpg
import redis.asyncio as aioredis

from leaderboard.boards import DEFAULT, Board
from leaderboard.changes import announce_flush
from leaderboard.keys import Keys, SeasonKeys
from leaderboard.models import ScoreEvent
from leaderboard.pipeline.writer import upsert
from leaderboard.recovery import Boards, Row, all_boards, durable_rows, restore
from leaderboard.redis_client import connect
from leaderboard.settings import GLOBAL
from leaderboard.shards import Topology

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


async def reconcile_all(
    topology: Topology, pg: asyncpg.Pool, keys: Keys, *, dry_run: bool = False,
    board: Board = DEFAULT, season: int = 1,
) -> Report:
    """Every Redis instance against Postgres, each for the boards it holds, for one board's
    season (board ``default``'s by default)."""
    report = Report()
    in_postgres = 0
    for url in topology.urls():
        redis = connect(url)
        try:
            await reconcile(redis, pg, keys, dry_run=dry_run,
                            boards=partial(topology.boards_on, url), report=report,
                            board=board, season=season)
        finally:
            await redis.aclose()
        in_postgres = in_postgres or report.users_in_postgres  # each pass reads every row
    report.users_in_postgres = in_postgres
    return report


@dataclass(frozen=True)
class Scope:
    """One board's season on one instance: its keys, and what the instance holds of it."""

    keys: Keys
    board: Board
    season: int
    boards: Boards

    @property
    def names(self) -> Keys | SeasonKeys:
        """Key names of the season (board default: the namespace's own ``board:``/``user:``)."""
        if self.board.id == DEFAULT.id:
            return self.keys
        return self.keys.season(self.board.id, self.board.generation, self.season)


async def reconcile(
    redis: aioredis.Redis, pg: asyncpg.Pool, keys: Keys, *, dry_run: bool = False,
    boards: Boards = all_boards, report: Report | None = None, board: Board = DEFAULT,
    season: int = 1,
) -> Report:
    """One instance against Postgres; ``boards(region)`` says what it holds of each region."""
    report = report or Report()
    scope = Scope(keys, board, season, boards)
    await _postgres_side(redis, pg, scope, report, dry_run)
    await _redis_side(redis, pg, scope, report, dry_run)
    if report.drift and not dry_run:  # repaired behind the writes' own announcements
        await announce_flush([redis], keys)
    return report


async def _postgres_side(
    redis: aioredis.Redis, pg: asyncpg.Pool, scope: Scope, report: Report, dry_run: bool,
) -> None:
    """Rows whose Redis copy is missing or older: restore them (version-guarded)."""
    boards = scope.boards
    async for chunk in durable_rows(pg, CHUNK, scope.board.id, scope.season):
        report.users_in_postgres += len(chunk)
        rows = [r for r in chunk if boards(r["region"])]
        async with redis.pipeline(transaction=False) as pipe:
            for r in rows:
                pipe.hget(scope.names.user(r["user_id"]), "version")
            versions = await pipe.execute()
        stale: list[Row] = [tuple(r) for r, v in zip(rows, versions, strict=True)
                            if v is None or int(v) < r["version"]]
        report.redis_behind += [str(r[0]) for r in stale]
        if stale and not dry_run:
            await restore(redis, scope.keys, stale, boards=boards, board=scope.board,
                          season=scope.season)


async def _redis_side(
    redis: aioredis.Redis, pg: asyncpg.Pool, scope: Scope, report: Report, dry_run: bool,
) -> None:
    """Hashes newer than Postgres (store them) or missing from their boards (re-add them)."""
    boards = scope.boards
    prefix = scope.names.user("")
    async for batch in _scan_batches(redis, prefix + "*"):
        async with redis.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.hgetall(key)
            hashes = await pipe.execute()
        users = {key[len(prefix):]: h for key, h in zip(batch, hashes, strict=True)
                 if h and boards(h["region"])}
        # a user counts once: on their region's instance (GLOBAL's holds copies of the others)
        report.users_in_redis += sum(1 for h in users.values()
                                     if "r" in boards(h["region"]) or h["region"] == GLOBAL)
        stored = {r["user_id"]: r["version"] for r in await pg.fetch(
            "SELECT user_id, version FROM leaderboard WHERE board = $2 AND season = $3 "
            "AND user_id = ANY($1)", list(users), scope.board.id, scope.season)}
        newer = [ScoreEvent(user_id=u, name=h["name"], region=h["region"], score=h["score"],
                            version=h["version"], reached=h["reached"], ts=h["updated_at"],
                            board=scope.board.id, season=scope.season,
                            metadata=h.get("meta", ""))
                 for u, h in users.items() if stored.get(u, 0) < int(h["version"])]
        report.postgres_behind += [e.user_id for e in newer]
        if newer and not dry_run:
            await upsert(pg, newer)
        await _check_boards(redis, scope, users, report, dry_run)


def _held(names: Keys | SeasonKeys, region: str, boards: Boards) -> list[str]:
    """The board keys this instance holds for a user of ``region``."""
    held = boards(region)
    out = [names.board(GLOBAL)] if "g" in held else []
    if "r" in held and region != GLOBAL:
        out.append(names.board(region))
    return out


async def _check_boards(redis: aioredis.Redis, scope: Scope, users: dict[str, dict[str, str]],
                        report: Report, dry_run: bool) -> None:
    wanted = {user: _held(scope.names, h["region"], scope.boards) for user, h in users.items()}
    async with redis.pipeline(transaction=False) as pipe:
        for user, h in users.items():
            for board in wanted[user]:
                pipe.zscore(board, h["member"])
        scores = iter(await pipe.execute())
    for user, h in users.items():
        missing = [board for board in wanted[user] if next(scores) is None]
        if missing:
            report.missing_from_boards.append(user)
            if not dry_run:
                for board in missing:
                    await redis.zadd(board, {h["member"]: scope.board.sort_key(int(h["score"]))})


async def _scan_batches(redis: aioredis.Redis, match: str):  # type: ignore[no-untyped-def]
    cursor = 0
    while True:
        cursor, found = await redis.scan(cursor, match=match, count=CHUNK)
        if found:
            yield found
        if cursor == 0:
            return
