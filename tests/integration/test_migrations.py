"""Schema migrations against the real Postgres, each test in a throwaway database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from leaderboard.boards import DEFAULT, Board, BoardCreate
from leaderboard.pipeline.db import (
    Migration,
    MigrationError,
    ensure_database,
    migrate,
    migrations,
    schema_version,
)
from leaderboard.settings import Settings

# sha256 of leaderboard/pipeline/schema.sql as it was before migrations: 0001 is that file
SCHEMA_SQL_SHA256 = "22c36ee5d84e93254661b80f0381ba9d0a676543cf6b27bcdc3994869c607f45"


@pytest.fixture
async def fresh(settings: Settings) -> AsyncIterator[Settings]:
    """Settings naming a database that does not exist yet; dropped afterwards."""
    name = f"{settings.database_name()}_mig_{uuid.uuid4().hex[:8]}"
    yield settings.model_copy(update={"pgdatabase": name, "database_url": None})
    admin = await asyncpg.connect(settings.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def create_empty(s: Settings) -> None:
    admin = await asyncpg.connect(s.dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{s.database_name()}"')
    finally:
        await admin.close()


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


def test_0001_is_the_old_schema_sql_byte_for_byte() -> None:
    first = migrations()[0]
    assert (first.version, first.name, first.sha256) == (1, "initial", SCHEMA_SQL_SHA256)


async def test_a_fresh_database_is_created_and_migrated(fresh: Settings) -> None:
    assert await ensure_database(fresh) == [m.version for m in migrations()]
    conn = await asyncpg.connect(fresh.dsn())
    try:
        assert {"leaderboard", "credentials", "schema_version"} <= await tables(conn)
        assert await schema_version(conn) == len(migrations())
        row = await conn.fetchrow("SELECT name, sha256 FROM schema_version WHERE version = 1")
        assert row is not None and (row["name"], row["sha256"]) == ("initial", SCHEMA_SQL_SHA256)
    finally:
        await conn.close()


async def test_running_twice_applies_nothing_the_second_time(fresh: Settings) -> None:
    await ensure_database(fresh)
    assert await ensure_database(fresh) == []
    conn = await asyncpg.connect(fresh.dsn())
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_version") == len(migrations())
    finally:
        await conn.close()


async def test_a_database_made_by_the_old_schema_sql_is_version_1_and_keeps_its_rows(
    fresh: Settings,
) -> None:
    await create_empty(fresh)
    conn = await asyncpg.connect(fresh.dsn())
    try:
        await conn.execute(migrations()[0].sql)  # what the old ensure_database ran
        await conn.execute("INSERT INTO leaderboard (user_id, name, region, score, version, reached)"
                           " VALUES ('alice', 'Alice', 'EU', 42, 7, 7)")
        assert await schema_version(conn) == 0
        await ensure_database(fresh)
        assert await schema_version(conn) == len(migrations())
        row = await conn.fetchrow("SELECT name, region, score, version, reached FROM leaderboard")
        assert row is not None and tuple(row) == ("Alice", "EU", 42, 7, 7)
    finally:
        await conn.close()


async def test_concurrent_starters_on_a_missing_database(fresh: Settings) -> None:
    results = await asyncio.gather(*(ensure_database(fresh) for _ in range(4)))
    assert sorted(results, key=len) == [[], [], [], [m.version for m in migrations()]]


async def test_the_lock_serialises_a_migration_that_is_not_idempotent(fresh: Settings) -> None:
    # without the advisory lock both would run CREATE TABLE t and one would fail
    steps = [*migrations(), Migration(len(migrations()) + 1, "slow",
                                      "CREATE TABLE t (x int); SELECT pg_sleep(0.3);")]
    await create_empty(fresh)
    conns = [await asyncpg.connect(fresh.dsn()) for _ in range(2)]
    try:
        done = await asyncio.gather(*(migrate(c, steps) for c in conns))
        assert sorted(len(d) for d in done) == [0, len(steps)]
        assert await schema_version(conns[0]) == len(steps)
    finally:
        for c in conns:
            await c.close()


async def test_a_failing_migration_changes_nothing_and_is_retried(fresh: Settings) -> None:
    n = len(migrations())
    bad = Migration(n + 1, "bad", "CREATE TABLE half (x int); SELECT 1 / 0;")
    await ensure_database(fresh)
    conn = await asyncpg.connect(fresh.dsn())
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, [*migrations(), bad])
        assert "half" not in await tables(conn) and await schema_version(conn) == n
        fixed = Migration(n + 1, "bad", "CREATE TABLE half (x int);")
        assert await migrate(conn, [*migrations(), fixed]) == [n + 1]
        # the lock was released after the failure: another session can take it at once
        assert await conn.fetchval("SELECT pg_try_advisory_lock(1)")
    finally:
        await conn.close()


async def test_an_edited_migration_stops_the_start(fresh: Settings) -> None:
    await ensure_database(fresh)
    conn = await asyncpg.connect(fresh.dsn())
    try:
        edited = [Migration(1, "initial", migrations()[0].sql + "\n-- edited\n")]
        with pytest.raises(MigrationError, match="edited after it was applied"):
            await migrate(conn, edited)
    finally:
        await conn.close()


async def test_a_database_ahead_of_the_code_is_left_alone(fresh: Settings) -> None:
    await ensure_database(fresh)
    conn = await asyncpg.connect(fresh.dsn())
    try:
        await conn.execute("INSERT INTO schema_version (version, name, sha256) "
                           "VALUES (999, 'future', 'x')")
        assert await migrate(conn) == []
        assert await schema_version(conn) == 999
    finally:
        await conn.close()


async def test_0002_boards_keeps_a_version_1_databases_rows_as_default_season_1(
    fresh: Settings,
) -> None:
    """0002 applied after 0001 on a database with a row: the row becomes board default, season 1."""
    await create_empty(fresh)
    conn = await asyncpg.connect(fresh.dsn())
    try:
        await migrate(conn, migrations()[:1])
        await conn.execute("INSERT INTO leaderboard (user_id, name, region, score, version, reached)"
                           " VALUES ('alice', 'Alice', 'EU', 42, 7, 7)")
        assert await migrate(conn, migrations()[:2]) == [2]
        assert migrations()[1].name == "boards"
        row = await conn.fetchrow("SELECT board, season, user_id, score FROM leaderboard")
        assert row is not None and tuple(row) == ("default", 1, "alice", 42)
        stored = await conn.fetchrow("SELECT * FROM boards WHERE id = 'default'")
        assert stored is not None and Board.from_row(stored) == DEFAULT
        b = BoardCreate(id="speed", order="asc", operator="best", reset="@daily").board(10**15)
        cols = b.row()
        await conn.execute(
            f"INSERT INTO boards ({', '.join(cols)}) VALUES "
            f"({', '.join(f'${i}' for i in range(1, len(cols) + 1))})", *cols.values())
        back = await conn.fetchrow("SELECT * FROM boards WHERE id = 'speed'")
        assert back is not None and Board.from_row(back) == b and back["rev"] > stored["rev"]
        with pytest.raises(asyncpg.CheckViolationError):  # the id rule holds in Postgres too
            await conn.execute("INSERT INTO boards (id, title, start_at, generation) "
                               "VALUES ('Bad', 'x', now(), 'g')")
        # the same user may hold a row per board and season (the new primary key)
        await conn.execute("INSERT INTO leaderboard (board, season, user_id, name, region, score,"
                           " version, reached) VALUES ('speed', 3, 'alice', 'Alice', 'EU', 1, 8, 8)")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO leaderboard (user_id, name, region, score, version,"
                               " reached) VALUES ('alice', 'A', 'EU', 1, 9, 9)")
    finally:
        await conn.close()
