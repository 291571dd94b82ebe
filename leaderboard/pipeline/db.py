"""Postgres: create the database if missing, apply the schema, open pools."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg

from leaderboard.settings import Settings, StoreSettings

log = logging.getLogger(__name__)

UPSERT = """
INSERT INTO leaderboard (user_id, name, region, score, version, reached, updated_at)
SELECT u.user_id, u.name, u.region, u.score, u.version, u.reached,
       to_timestamp(u.ts / 1000.0) AT TIME ZONE 'UTC'
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
            $7::bigint[]) AS u(user_id, name, region, score, version, reached, ts)
ON CONFLICT (user_id) DO UPDATE
  SET name = EXCLUDED.name, region = EXCLUDED.region, score = EXCLUDED.score,
      version = EXCLUDED.version, reached = EXCLUDED.reached, updated_at = EXCLUDED.updated_at
  WHERE EXCLUDED.version > leaderboard.version
"""


def schema_sql() -> str:
    return resources.files("leaderboard.pipeline").joinpath("schema.sql").read_text()


async def ensure_database(settings: StoreSettings) -> None:
    """Create the configured database when it does not exist, then apply the schema."""
    name = settings.database_name()
    try:
        conn = await asyncpg.connect(settings.dsn())
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(settings.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
        conn = await asyncpg.connect(settings.dsn())
    try:
        await conn.execute(schema_sql())
        if await conn.fetchval("SHOW autovacuum") != "on":
            log.warning("Postgres has autovacuum off: the leaderboard table grows with every "
                        "score update (docs/operations.md); turn it on in postgresql.conf")
    finally:
        await conn.close()


async def create_pool(settings: Settings, max_size: int = 4) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(settings.dsn(), min_size=1, max_size=max_size)
    assert pool is not None
    return pool
