"""Reads of an ended season from Postgres: its archive, or its rows before the archive exists.

An archived season is read from ``archive_entries``, whose ranks were materialised in the ZSET
order when the season ended: top, rank and around are index range reads, and the answers never
change (the ranker caches them). A season that ended but is not archived yet and is not in
Redis any more (Redis lost its data; the rebuild restores current seasons only) is ranked on
the fly from its ``leaderboard`` rows with the same window functions the archive uses.
"""

from __future__ import annotations

from typing import Any

from leaderboard.boards import Board
from leaderboard.serve.pg_ranks import Queries
from leaderboard.settings import GLOBAL

ARCHIVED = "SELECT archived_through FROM boards WHERE id = $1 AND generation = $2"
COLUMNS = "user_id, name, region, score"
SEASON = "board = $1 AND season = $2"


def _ranked(sign: int) -> str:
    """A season's rows with their ranks, computed as ``archive.ARCHIVE_ENTRIES`` does."""
    order = f'score * {sign} DESC, reached, user_id COLLATE "C" DESC'
    return (f"(SELECT board, season, {COLUMNS}, "
            f"row_number() OVER (ORDER BY {order}) AS global_rank, "
            f"row_number() OVER (PARTITION BY region ORDER BY {order}) AS region_rank "
            f"FROM leaderboard WHERE board = $1 AND season = $2) AS ranked")


def _entry(row: Any, rank_column: str) -> dict[str, Any]:
    return {"rank": int(row[rank_column]), "user_id": row["user_id"], "name": row["name"],
            "region": row["region"], "score": int(row["score"])}


class SeasonReads:
    """top / rank / around of one ended season of one board, answered from Postgres."""

    def __init__(self, pg: Queries) -> None:
        self._pg = pg

    async def archived(self, board: Board, season: int) -> bool:
        done = await self._pg.fetchval(ARCHIVED, board.id, board.generation)
        return done is not None and int(done) >= season

    async def _source(self, board: Board, season: int) -> str:
        if await self.archived(board, season):
            return "archive_entries"
        return _ranked(1 if board.order == "desc" else -1)

    async def top(self, board: Board, season: int, region: str, limit: int) -> dict[str, Any]:
        source = await self._source(board, season)
        rank, where, args = _scope(region)
        rows = await self._pg.fetch(
            f"SELECT {COLUMNS}, {rank} FROM {source} WHERE {SEASON} {where} "
            f"AND {rank} <= ${len(args) + 3} ORDER BY {rank}",
            board.id, season, *args, limit)
        total = await self._pg.fetchval(
            f"SELECT count(*) FROM {source} WHERE {SEASON} {where}",
            board.id, season, *args)
        return {"region": region, "entries": [_entry(r, rank) for r in rows],
                "total": int(total), "season": season}

    async def _own(self, board: Board, season: int, region: str, user_id: str,
                   source: str) -> dict[str, Any] | None:
        rank, _, _ = _scope(region)
        row = await self._pg.fetchrow(
            f"SELECT {COLUMNS}, {rank} FROM {source} WHERE {SEASON} "
            f"AND user_id = $3", board.id, season, user_id)
        if row is None or (region != GLOBAL and row["region"] != region):
            return None
        return _entry(row, rank)

    async def rank(self, board: Board, season: int, region: str,
                   user_id: str) -> dict[str, Any] | None:
        found = await self._own(board, season, region, user_id,
                                await self._source(board, season))
        return None if found is None else {**found, "season": season}

    async def around(self, board: Board, season: int, region: str, user_id: str,
                     span: int) -> dict[str, Any] | None:
        source = await self._source(board, season)
        me = await self._own(board, season, region, user_id, source)
        if me is None:
            return None
        rank, where, args = _scope(region)
        n = len(args) + 3
        rows = await self._pg.fetch(
            f"SELECT {COLUMNS}, {rank} FROM {source} WHERE {SEASON} {where} "
            f"AND {rank} BETWEEN ${n} AND ${n + 1} ORDER BY {rank}",
            board.id, season, *args, me["rank"] - span, me["rank"] + span)
        ranked = [_entry(r, rank) for r in rows]
        return {"region": region, "self": me,
                "around": [e for e in ranked if e["rank"] != me["rank"]], "season": season}


def _scope(region: str) -> tuple[str, str, list[Any]]:
    """The rank column, extra condition and its argument for GLOBAL or one region."""
    if region == GLOBAL:
        return "global_rank", "", []
    return "region_rank", "AND region = $3", [region]

