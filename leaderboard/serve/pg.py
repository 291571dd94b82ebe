"""Postgres for the request paths: one lazily opened pool, and the one place where "Postgres is
down" becomes ``Unavailable`` (503 with Retry-After) instead of a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from leaderboard.errors import Unavailable
from leaderboard.pipeline.db import create_pool
from leaderboard.settings import Settings

# what a stopped, restarting or unreachable server raises (refused or reset sockets, a closed
# connection, "the database system is shutting down", SQLSTATE class 08); never query errors
PG_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


class Postgres:
    """``fetch``/``fetchrow``/``fetchval``/``execute`` on a pool opened on first use."""

    def __init__(self, settings: Settings, max_size: int = 4) -> None:
        self._settings = settings
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        try:
            yield
        except PG_DOWN as exc:
            raise Unavailable("Postgres is unreachable") from exc

    async def pool(self) -> asyncpg.Pool:
        """The pool, opened once (concurrent first callers share one attempt)."""
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    async with self._reachable():
                        self._pool = await create_pool(self._settings, self._max_size)
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        pool = await self.pool()
        async with self._reachable():
            rows: list[asyncpg.Record] = await pool.fetch(sql, *args)
            return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        pool = await self.pool()
        async with self._reachable():
            row: asyncpg.Record | None = await pool.fetchrow(sql, *args)
            return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        pool = await self.pool()
        async with self._reachable():
            return await pool.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        pool = await self.pool()
        async with self._reachable():
            status: str = await pool.execute(sql, *args)
            return status
