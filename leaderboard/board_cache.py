"""Every live board, in every process that needs them, without a per-request Postgres query.

Postgres's ``boards`` table is the source of truth. A ``BoardCache`` loads it once, then polls
the registry's revision counter in Redis (``Keys.boards_rev``, bumped on every create and
delete) and reloads the rows whose ``rev`` moved; a lookup that misses reloads at once when the
revision moved (else at most every ``MISS_INTERVAL_S``), so a board created through one gateway
replica is usable through another immediately and everywhere within ``REFRESH_S``. What a write may touch is decided by
the registry hash in Redis, not by this cache (docs/boards.md), so a stale cache can delay a
board, never admit a write to a deleted one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import asyncpg
import redis.asyncio as aioredis

from leaderboard.boards import DEFAULT, Board
from leaderboard.errors import Unavailable
from leaderboard.keys import Keys
from leaderboard.redis_client import REDIS_DOWN

log = logging.getLogger(__name__)

REFRESH_S = 0.25
MISS_INTERVAL_S = 0.1
COLUMNS = ("id, title, sort_order, operator, reset_seconds, reset_cron, start_at, generation, "
           "deleted_at, rev, archived_through")


class Rows(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...


class BoardCache:
    """Board id -> ``Board`` (``default`` always present), kept fresh by ``run``."""

    def __init__(self, pg: Rows, redis: aioredis.Redis, keys: Keys) -> None:
        self._pg = pg
        self._redis = redis
        self._keys = keys
        self._boards: dict[str, Board] = {DEFAULT.id: DEFAULT}
        self._deleting: set[str] = set()
        self._archived: dict[str, int] = {}  # board id -> archived_through
        self._pg_rev = 0
        self._redis_rev: str | None = None
        self._last_miss = 0.0
        self._lock = asyncio.Lock()

    def get(self, board_id: str) -> Board | None:
        return self._boards.get(board_id)

    def archived(self, board_id: str) -> int:
        """Every season of the board up to this one is archived in Postgres (or was empty)."""
        return self._archived.get(board_id, 0)

    def all(self) -> list[Board]:
        return sorted(self._boards.values(), key=lambda b: b.id)

    def deleting(self, board_id: str) -> bool:
        """Whether the board is deleted and its data still being purged."""
        return board_id in self._deleting

    def put(self, board: Board) -> None:
        """A board this process just created: visible here before the next refresh."""
        self._boards[board.id] = board

    def drop(self, board_id: str) -> None:
        """A board this process just deleted."""
        self._boards.pop(board_id, None)
        self._deleting.add(board_id)

    async def lookup(self, board_id: str) -> Board | None:
        """The board; on a miss, a reload first whenever the registry's revision moved since
        the last one (a board answered 201 anywhere is found here at once), and otherwise at
        most every ``MISS_INTERVAL_S`` (a flood of unknown ids costs a GET each)."""
        found = self._boards.get(board_id)
        if found is not None:
            return found
        try:
            rev: str | None = str(await self._redis.get(self._keys.boards_rev))
        except REDIS_DOWN:
            rev = None
        moved = rev is not None and rev != self._redis_rev
        if moved or time.monotonic() - self._last_miss >= MISS_INTERVAL_S:
            self._last_miss = time.monotonic()
            await self.refresh()
            if rev is not None:
                self._redis_rev = rev
        return self._boards.get(board_id)

    async def refresh(self) -> None:
        """Apply every row whose ``rev`` moved since the last refresh, then reconcile with the
        ids that exist: a row purged before this process saw its tombstone, or one whose
        revision committed after a higher one, is caught here."""
        async with self._lock:
            rows = await self._pg.fetch(
                f"SELECT {COLUMNS} FROM boards WHERE rev > $1 ORDER BY rev", self._pg_rev)
            for row in rows:
                self._apply(row)
            ids = await self._pg.fetch("SELECT id, deleted_at IS NOT NULL AS gone FROM boards")
            live = {r["id"] for r in ids if not r["gone"]} | {DEFAULT.id}
            self._deleting = {r["id"] for r in ids if r["gone"]}
            for board_id in set(self._boards) - live:
                del self._boards[board_id]
                self._archived.pop(board_id, None)
            missing = sorted(live - set(self._boards))
            if missing:
                for row in await self._pg.fetch(
                        f"SELECT {COLUMNS} FROM boards WHERE id = ANY($1)", missing):
                    self._apply(row)

    def _apply(self, row: asyncpg.Record) -> None:
        self._pg_rev = max(self._pg_rev, int(row["rev"]))
        board_id = row["id"]
        if row["deleted_at"] is not None:
            self._boards.pop(board_id, None)
            self._deleting.add(board_id)
            return
        self._deleting.discard(board_id)
        self._archived[board_id] = int(row["archived_through"])
        if board_id != DEFAULT.id:
            self._boards[board_id] = Board.from_row(row)

    async def tick(self) -> None:
        """One poll of the registry's revision; a reload when it moved."""
        rev = str(await self._redis.get(self._keys.boards_rev))
        if rev != self._redis_rev:
            await self.refresh()
            self._redis_rev = rev

    async def run(self) -> None:
        """Poll forever; Redis or Postgres away only delays the next refresh."""
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except (*REDIS_DOWN, Unavailable, asyncpg.PostgresError) as exc:
                log.warning("board cache: refresh failed: %r", exc)
            await asyncio.sleep(REFRESH_S)
