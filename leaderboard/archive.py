"""Ended seasons in Postgres: drain marks, the exactly-once archive, and reads of archives.

A season ``(B, k)`` is archived once every shard's drain mark is at or past its end: every write
applied on any instance before that instant is then in the ``leaderboard`` table, and no write
of ``k`` can follow (docs/boards.md, "Rollover"). The archive copies those rows with their ranks
computed in the ZSETs' own order, so the archive *is* the live board at the end of the season.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from leaderboard.boards import Board
from leaderboard.seasons import from_us

MARK = """
INSERT INTO drain_marks (shard, drained_through) VALUES ($1, $2)
ON CONFLICT (shard) DO UPDATE
  SET drained_through = GREATEST(drain_marks.drained_through, EXCLUDED.drained_through),
      updated_at = NOW()
"""

# W: every shard of the current topology has a mark (a new shard holds archiving back)
DRAINED = """
SELECT CASE WHEN count(*) = cardinality($1::text[]) THEN min(drained_through) END AS w
FROM drain_marks WHERE shard = ANY($1::text[])
"""

LOCK_BOARD = """
SELECT archived_through FROM boards
WHERE id = $1 AND generation = $2 AND deleted_at IS NULL FOR UPDATE SKIP LOCKED
"""

SEASONS_WITH_ROWS = """
SELECT DISTINCT season FROM leaderboard
WHERE board = $1 AND season > $2 AND season <= $3 ORDER BY season
"""

ARCHIVE_SEASON = """
INSERT INTO season_archive (board, season, started_at, ended_at, entries)
SELECT $1, $2, $3, $4, count(*) FROM leaderboard WHERE board = $1 AND season = $2
"""

# ranks in the ZSET order: sort key descending, then first to reach it, then user id bytes
# descending (the member is 16 digits of MAX - reached, then the user id)
ARCHIVE_ENTRIES = """
INSERT INTO archive_entries
  (board, season, user_id, name, region, score, version, reached, global_rank, region_rank,
   metadata)
SELECT board, season, user_id, name, region, score, version, reached,
  row_number() OVER (ORDER BY score * $3 DESC, reached, user_id COLLATE "C" DESC),
  row_number() OVER (PARTITION BY region ORDER BY score * $3 DESC, reached,
                     user_id COLLATE "C" DESC),
  metadata
FROM leaderboard WHERE board = $1 AND season = $2
"""

DROP_ROWS = "DELETE FROM leaderboard WHERE board = $1 AND season = $2"

ADVANCE = """
UPDATE boards SET archived_through = $2, rev = nextval('boards_rev') WHERE id = $1
"""


class Connects(Protocol):
    def acquire(self) -> Any: ...


async def mark(pg: asyncpg.Pool, shard: str, drained_through: int) -> None:
    """This shard's instance holds nothing before ``drained_through`` that Postgres lacks."""
    await pg.execute(MARK, shard, drained_through)


async def drained_through(pg: asyncpg.Pool, shards: list[str]) -> int | None:
    """W: the instant up to which every shard's writes are in Postgres (None: a shard has no
    mark yet)."""
    w = await pg.fetchval(DRAINED, shards)
    return None if w is None else int(w)


def archivable(board: Board, archived: int, w: int) -> int:
    """The last season of ``board`` that ended at or before ``w``, if it is not archived yet
    (else 0)."""
    current = board.schedule.season_at(w) if board.resets else None
    if current is None:
        return 0
    last = current - 1
    return last if last > archived else 0


async def archive(pg: asyncpg.Pool, board: Board, through: int) -> bool:
    """Archive every season of ``board`` up to ``through`` not archived yet, in one transaction.

    False when another process holds the board (it is archiving it) or already did; the board
    row's lock and ``archived_through`` make this exactly once, and the archive tables' primary
    keys make a second copy impossible anyway.
    """
    async with pg.acquire() as conn, conn.transaction():
        done = await conn.fetchval(LOCK_BOARD, board.id, board.generation)
        if done is None or done >= through:
            return False
        sign = 1 if board.order == "desc" else -1
        for row in await conn.fetch(SEASONS_WITH_ROWS, board.id, done, through):
            season = int(row["season"])
            start, end = board.schedule.bounds(season)
            assert end is not None
            await conn.execute(ARCHIVE_SEASON, board.id, season, from_us(start), from_us(end))
            await conn.execute(ARCHIVE_ENTRIES, board.id, season, sign)
            await conn.execute(DROP_ROWS, board.id, season)
        await conn.execute(ADVANCE, board.id, through)
    return True
