"""Reads answered from Postgres while a board is warming (Redis lost its data, rebuild running).

Same order as the Redis boards: score descending, then whoever reached the score first (the
``reached`` version), then user_id descending (on ``asc`` boards the score ascending); ranks are
exact for what Postgres holds. Any board's season (docs/boards.md, "Reads"); the
``(board, season, score)`` and ``(board, season, region, score)`` indexes serve top-N and the
rank counts.
"""

from __future__ import annotations

from typing import Any, Protocol

import asyncpg

from leaderboard import metadata
from leaderboard.cursor import Cursor
from leaderboard.keys import member_for
from leaderboard.serve.answers import gap_to_next, percentile
from leaderboard.settings import GLOBAL


class Queries(Protocol):
    """An asyncpg pool, or ``serve.pg.Postgres`` (which answers 503 when Postgres is down)."""

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]: ...

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None: ...

    async def fetchval(self, sql: str, *args: Any) -> Any: ...

# $1 board, $2 season: every query reads one board's season (board default: season 1)
LIVE = "board = $1 AND season = $2"
# user ids compare as bytes (COLLATE "C"), as Redis compares members
ORDERS = {"desc": 'ORDER BY score DESC, reached ASC, user_id COLLATE "C" DESC',
          "asc": 'ORDER BY score ASC, reached ASC, user_id COLLATE "C" DESC'}
# the same order walked backwards: from the entry just above a user upwards
BACKWARDS = {"desc": 'ORDER BY score ASC, reached DESC, user_id COLLATE "C" ASC',
             "asc": 'ORDER BY score DESC, reached DESC, user_id COLLATE "C" ASC'}
# users ranked above ($4 score, $5 reached, $6 user_id) in either order
AHEAD = {o: f'(score {c} $4 OR (score = $4 AND (reached < $5 OR (reached = $5 AND '
            f'user_id COLLATE "C" > $6))))'
         for o, c in (("desc", ">"), ("asc", "<"))}


def _where(region: str, n: int) -> str:
    """Rows of a board: all of them for GLOBAL, one region otherwise (as parameter $n)."""
    return LIVE if region == GLOBAL else f"{LIVE} AND region = ${n}"


def _entry(row: asyncpg.Record, rank: int) -> dict[str, Any]:
    return {"rank": rank, "user_id": row["user_id"], "name": row["name"],
            "region": row["region"], "score": row["score"],
            "metadata": metadata.decode(row["metadata"])}


class PostgresRanks:
    """top / rank / around over the durable record, each marked ``"warming": true``.

    ``board``, ``season`` and ``order`` say which board's season (the seed's reads: default, 1).
    """

    def __init__(self, pool: Queries) -> None:
        self._pg = pool

    async def top(self, region: str, limit: int, board: str = "default", season: int = 1,
                  order: str = "desc") -> dict[str, Any]:
        of: list[Any] = [board, season]
        params: list[Any] = [*of, limit] if region == GLOBAL else [*of, limit, region]
        rows = await self._pg.fetch(
            f"SELECT user_id, name, region, score, reached, metadata FROM leaderboard "
            f"WHERE {_where(region, 4)} {ORDERS[order]} LIMIT $3", *params)
        total = await self._total(region, board, season)
        cursor = None
        if len(rows) == limit < total:  # the seed's paths name board '' in their cursors
            last = rows[-1]
            cursor = Cursor("" if board == "default" else board, season, region,
                            last["score"] if order == "desc" else -last["score"],
                            member_for(last["user_id"], last["reached"])).encode()
        return {"region": region, "entries": [_entry(r, i + 1) for i, r in enumerate(rows)],
                "total": total, "next": cursor, "warming": True}

    async def _total(self, region: str, board: str, season: int) -> int:
        return int(await self._pg.fetchval(
            f"SELECT count(*) FROM leaderboard WHERE {_where(region, 3)}",
            board, season, *([] if region == GLOBAL else [region])))

    async def _me(self, region: str, user_id: str, board: str, season: int,
                  order: str) -> tuple[asyncpg.Record, int] | None:
        me = await self._pg.fetchrow(
            f"SELECT user_id, name, region, score, reached, metadata FROM leaderboard WHERE {LIVE} "
            "AND user_id = $3", board, season, user_id)
        if me is None or (region != GLOBAL and me["region"] != region):
            return None
        params: list[Any] = [board, season, region, me["score"], me["reached"], user_id]
        where = LIVE if region == GLOBAL else f"{LIVE} AND region = $3"
        ahead = await self._pg.fetchval(
            f"SELECT count(*) FROM leaderboard WHERE ($3::text IS NOT NULL) AND {where} AND "
            f"{AHEAD[order]}", *params)
        return me, int(ahead) + 1

    async def rank(self, region: str, user_id: str, board: str = "default", season: int = 1,
                   order: str = "desc") -> dict[str, Any] | None:
        found = await self._me(region, user_id, board, season, order)
        if found is None:
            return None
        me, rank = found
        total = await self._total(region, board, season)
        where = LIVE if region == GLOBAL else f"{LIVE} AND region = $3"
        above = await self._pg.fetchval(
            f"SELECT score FROM leaderboard WHERE ($3::text IS NOT NULL) AND {where} AND "
            f"{AHEAD[order]} {BACKWARDS[order]} LIMIT 1",
            board, season, region, me["score"], me["reached"], user_id)
        sort_key = None if above is None else str(above if order == "desc" else -above)
        return {**_entry(me, rank), "total": total, "percentile": percentile(rank, total),
                "gap_to_next": gap_to_next(me["score"], sort_key, order), "warming": True}

    async def around(self, region: str, user_id: str, span: int, board: str = "default",
                     season: int = 1, order: str = "desc") -> dict[str, Any] | None:
        found = await self._me(region, user_id, board, season, order)
        if found is None:
            return None
        me, rank = found
        first = max(1, rank - span)
        params: list[Any] = [board, season, first - 1, rank + span - first + 1]
        if region != GLOBAL:
            params.append(region)
        rows = await self._pg.fetch(
            f"SELECT user_id, name, region, score, metadata FROM leaderboard "
            f"WHERE {_where(region, 5)} {ORDERS[order]} OFFSET $3 LIMIT $4", *params)
        ranked = [_entry(r, first + i) for i, r in enumerate(rows)]
        return {"region": region, "self": _entry(me, rank),
                "around": [e for e in ranked if e["user_id"] != user_id],
                "total": await self._total(region, board, season), "warming": True}
