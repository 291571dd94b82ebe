"""Postgres: create the database if missing, migrate its schema, open pools.

The schema is a versioned folder of SQL files, ``migrations/NNNN_name.sql``, applied in order,
each in its own transaction together with its row in ``schema_version`` (version, name,
sha256 of the file, applied_at). Starters serialise on a Postgres advisory lock, so two
processes starting at once apply each migration once. A database made by the old
``schema.sql`` (no ``schema_version``) is recognised as version 1: 0001 is that file, and all of
it is ``IF NOT EXISTS``. An applied migration is never edited: a file whose checksum no longer
matches its recorded row stops the start-up (write a new migration instead).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from leaderboard.settings import Settings, StoreSettings

UPSERT = """
INSERT INTO leaderboard (board, season, user_id, name, region, score, version, reached, updated_at,
                         metadata)
SELECT u.board, u.season, u.user_id, u.name, u.region, u.score, u.version, u.reached,
       to_timestamp(u.ts / 1000.0) AT TIME ZONE 'UTC', nullif(u.meta, '')::json
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[], $8::text[], $9::bigint[], $10::text[])
     AS u(user_id, name, region, score, version, reached, ts, board, season, meta)
ON CONFLICT (board, season, user_id) DO UPDATE
  SET name = EXCLUDED.name, region = EXCLUDED.region, score = EXCLUDED.score,
      version = EXCLUDED.version, reached = EXCLUDED.reached, updated_at = EXCLUDED.updated_at,
      metadata = EXCLUDED.metadata
  WHERE EXCLUDED.version > leaderboard.version
"""


log = logging.getLogger(__name__)

MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_KEY = 0x6C62_6D69_6772_0001  # "lbmigr" 1: the advisory lock every starter takes
VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
)
"""


class MigrationError(RuntimeError):
    """The folder or the database's record of it is inconsistent; the start-up stops."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migration files in version order; numbered 1, 2, 3... without gaps or repeats."""
    folder = resources.files("leaderboard.pipeline").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = MIGRATION_FILE.match(entry.name)
        if m is not None:
            found.append(Migration(int(m[1]), m[2], entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise MigrationError(f"migration file {entry.name!r} is not NNNN_name.sql")
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations must be numbered 1..n: {[m.version for m in found]}")
    return found


async def migrate(conn: asyncpg.Connection, steps: list[Migration] | None = None) -> list[int]:
    """Apply the migrations this database lacks, under the advisory lock; the versions applied.

    ``steps`` defaults to the folder (tests pass their own).
    """
    steps = migrations() if steps is None else steps
    await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    try:
        await conn.execute(VERSION_TABLE)
        applied = {r["version"]: r["sha256"] for r in
                   await conn.fetch("SELECT version, sha256 FROM schema_version")}
        done: list[int] = []
        for mig in steps:
            if mig.version in applied:
                if applied[mig.version] != mig.sha256:
                    raise MigrationError(f"migration {mig.version:04d}_{mig.name} was edited "
                                         "after it was applied; add a new migration instead")
                continue
            async with conn.transaction():
                await conn.execute(mig.sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name, sha256) VALUES ($1, $2, $3)",
                    mig.version, mig.name, mig.sha256)
            log.info("schema: applied migration %04d_%s", mig.version, mig.name)
            done.append(mig.version)
        newer = sorted(set(applied) - {m.version for m in steps})
        if newer:
            log.warning("schema: the database has migrations this code does not know: %s", newer)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The highest applied migration (0 for a database without ``schema_version``)."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version"))


async def ensure_database(settings: StoreSettings) -> list[int]:
    """Create the configured database when it does not exist, then migrate it.

    Returns the versions this call applied (empty when the database was up to date).
    """
    name = settings.database_name()
    try:
        conn = await asyncpg.connect(settings.dsn())
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(settings.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another starter created it first (a race can surface as either)
        finally:
            await admin.close()
        conn = await asyncpg.connect(settings.dsn())
    try:
        applied = await migrate(conn)
        if await conn.fetchval("SHOW autovacuum") != "on":
            log.warning("Postgres has autovacuum off: the leaderboard table grows with every "
                        "score update (docs/operations.md); turn it on in postgresql.conf")
        return applied
    finally:
        await conn.close()


async def create_pool(settings: Settings, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=max_size)
    assert pool is not None
    return pool
