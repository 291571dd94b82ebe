"""Reads of an ended season from Postgres: its archive, or its rows before the archive exists.

An archived season is read from ``archive_entries``, whose ranks were materialised in the ZSET
order when the season ended: pages, rank, around and friends' ranks are index range reads, and
the answers never change (the ranker caches them). A season that ended but is not archived yet
and is not in Redis any more (Redis lost its data; the rebuild restores current seasons only)
is ranked on the fly from its ``leaderboard`` rows with the same window functions the archive
uses. The answers have the live reads' shapes (``serve/answers.py``).
"""

from __future__ import annotations

from typing import Any

from leaderboard import metadata
from leaderboard.boards import Board
from leaderboard.cursor import Cursor
from leaderboard.keys import member_for
from leaderboard.serve.answers import gap_to_next, percentile
from leaderboard.serve.pg_ranks import Queries
from leaderboard.settings import GLOBAL

ARCHIVED = "SELECT archived_through FROM boards WHERE id = $1 AND generation = $2"
COLUMNS = "user_id, name, region, score, reached, metadata"
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
            "region": row["region"], "score": int(row["score"]),
            "metadata": metadata.decode(row["metadata"])}


def _sign(board: Board) -> int:
    return 1 if board.order == "desc" else -1


class View:
    """One season's entries in one region (or GLOBAL), in a source table, as SQL pieces."""

    def __init__(self, board: Board, season: int, region: str, source: str) -> None:
        self.board, self.season, self.region, self.source = board, season, region, source
        self.rank = "global_rank" if region == GLOBAL else "region_rank"
        self.args: list[Any] = [board.id, season] + ([] if region == GLOBAL else [region])
        self.where = SEASON + ("" if region == GLOBAL else " AND region = $3")

    def select(self, condition: str) -> str:
        n = len(self.args)
        cond = condition.replace("$A", f"${n + 1}").replace("$B", f"${n + 2}") \
            .replace("$C", f"${n + 3}")
        return (f"SELECT {COLUMNS}, {self.rank} FROM {self.source} WHERE {self.where} "
                f"AND {cond} ORDER BY {self.rank}")


class SeasonReads:
    """top / rank / around / ranks of one ended season of one board, answered from Postgres."""

    def __init__(self, pg: Queries) -> None:
        self._pg = pg

    async def archived(self, board: Board, season: int) -> bool:
        done = await self._pg.fetchval(ARCHIVED, board.id, board.generation)
        return done is not None and int(done) >= season

    async def _view(self, board: Board, season: int, region: str) -> View:
        source = "archive_entries" if await self.archived(board, season) else \
            _ranked(_sign(board))
        return View(board, season, region, source)

    async def _total(self, v: View) -> int:
        """Entries in the view: an archive's ranks are 1..n, so its highest rank is n (one index
        probe); rows not archived yet are counted."""
        if v.source == "archive_entries":
            top = await self._pg.fetchval(  # ORDER BY: the rank index whatever the statistics
                f"SELECT {v.rank} FROM archive_entries WHERE {v.where} "
                f"ORDER BY {v.rank} DESC LIMIT 1", *v.args)
            return 0 if top is None else int(top)
        return int(await self._pg.fetchval(
            f"SELECT count(*) FROM {v.source} WHERE {v.where}", *v.args))

    async def top(self, board: Board, season: int, region: str, limit: int,
                  start: str = "") -> dict[str, Any]:
        v = await self._view(board, season, region)
        first = await self._first_rank(v, start)
        rows = await self._pg.fetch(v.select("$A <= " + v.rank + " AND " + v.rank + " < $B"),
                                    *v.args, first, first + limit)
        total = await self._total(v)
        cursor = None
        if len(rows) == limit and first + limit <= total:
            last = rows[-1]
            cursor = Cursor(board.id, season, region, int(last["score"]) * _sign(board),
                            member_for(last["user_id"], int(last["reached"]))).encode()
        return {"region": region, "entries": [_entry(r, v.rank) for r in rows], "total": total,
                "next": cursor, "season": season}

    async def _first_rank(self, v: View, start: str) -> int:
        """The 1-based rank a page starts at: 1, a given rank, or the first after a cursor."""
        if start.startswith("rank:"):
            return int(start[5:]) + 1
        if not start.startswith("after:"):
            return 1
        sort_key, _, member = start[6:].partition(":")
        cursor = Cursor("", 1, "", int(sort_key), member)
        after = (f"(score * {_sign(v.board)} < $A OR (score * {_sign(v.board)} = $A AND "
                 f"(reached > $B OR (reached = $B AND user_id COLLATE \"C\" < $C))))")
        row = await self._pg.fetchrow(v.select(after) + " LIMIT 1", *v.args, cursor.sort_key,
                                      cursor.reached, cursor.user_id)
        return int(row[v.rank]) if row is not None else 2**62

    async def _own(self, v: View, user_id: str) -> dict[str, Any] | None:
        row = await self._pg.fetchrow(v.select("user_id = $A"), *v.args, user_id)
        return None if row is None else _entry(row, v.rank)

    async def rank(self, board: Board, season: int, region: str,
                   user_id: str) -> dict[str, Any] | None:
        v = await self._view(board, season, region)
        me = await self._own(v, user_id)
        if me is None:
            return None
        total = await self._total(v)
        above = None
        if me["rank"] > 1:
            row = await self._pg.fetchrow(v.select(f"{v.rank} = $A"), *v.args, me["rank"] - 1)
            above = None if row is None else str(int(row["score"]) * _sign(board))
        return {**me, "total": total, "percentile": percentile(me["rank"], total),
                "gap_to_next": gap_to_next(me["score"], above, board.order), "season": season}

    async def around(self, board: Board, season: int, region: str, user_id: str,
                     span: int) -> dict[str, Any] | None:
        v = await self._view(board, season, region)
        me = await self._own(v, user_id)
        if me is None:
            return None
        rows = await self._pg.fetch(v.select(f"{v.rank} BETWEEN $A AND $B"), *v.args,
                                    me["rank"] - span, me["rank"] + span)
        ranked = [_entry(r, v.rank) for r in rows]
        return {"region": region, "self": me,
                "around": [e for e in ranked if e["rank"] != me["rank"]],
                "total": await self._total(v), "season": season}

    async def ranks(self, board: Board, season: int, region: str,
                    user_ids: list[str]) -> dict[str, Any]:
        v = await self._view(board, season, region)
        rows = await self._pg.fetch(v.select("user_id = ANY($A::text[])"), *v.args, user_ids)
        found = [_entry(r, v.rank) for r in rows]
        present = {e["user_id"] for e in found}
        return {"region": region, "entries": found,
                "missing": [u for u in user_ids if u not in present], "season": season}
