"""Reads of board default, the seed's paths: top pages, rank, around-me and friends' ranks.

Each is one Lua script call on the region's Redis instance (GLOBAL on GLOBAL's); while the
instance is warming, top/rank/around come from Postgres. ``SeedReads`` is the base of the
``Ranker`` deployment (``serve/ranking.py``), which sets the attributes declared here;
``ReadScripts`` holds both the seed's and the boards' scripts of one instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from leaderboard.errors import Unavailable, Warming
from leaderboard.keys import Keys
from leaderboard.read_scripts import (
    AROUND,
    BOARD_AROUND,
    BOARD_RANK,
    BOARD_RANKS,
    BOARD_TOP,
    RANK,
    RANKS,
    TOP,
)
from leaderboard.redis_client import REDIS_DOWN
from leaderboard.serve.answers import around_answer, rank_answer, ranks_answer, top_answer
from leaderboard.serve.pg_ranks import PostgresRanks

Entry = dict[str, Any]
WARMING = "warming"


@dataclass(frozen=True)
class ReadScripts:
    """The read scripts registered on one Redis instance."""

    default: dict[str, AsyncScript]  # board default's, by read kind
    board: dict[str, AsyncScript]  # a board's season's, by read kind

    @classmethod
    def on(cls, redis: aioredis.Redis) -> ReadScripts:
        return cls({k: redis.register_script(s) for k, s in DEFAULT_SCRIPTS.items()},
                   {k: redis.register_script(s) for k, s in BOARD_SCRIPTS.items()})


DEFAULT_SCRIPTS = {"top": TOP, "rank": RANK, "around": AROUND, "ranks": RANKS}
BOARD_SCRIPTS = {"top": BOARD_TOP, "rank": BOARD_RANK, "around": BOARD_AROUND,
                 "ranks": BOARD_RANKS}


class SeedReads:
    """Board default's reads; ranks are 1-based and exact."""

    _keys: Keys
    _scripts: dict[str, ReadScripts]  # by region: the scripts of the region's instance
    _pg: PostgresRanks

    async def top(self, region: str, limit: int, start: str = "") -> dict[str, Any]:
        """A page of board default: from rank 1, from a rank, or after a cursor's position."""
        k = self._keys
        reply = await self._call(self._scripts[region].default["top"],
                                 [k.board(region), k.epoch, k.warming],
                                 [limit, k.user(""), *start_args(start)])
        if reply == WARMING:
            if start:
                raise Warming("the board is being rebuilt; pages resume in a second")
            return await self._pg.top(region, limit)
        return top_answer(reply, region, "", 1)

    async def rank(self, region: str, user_id: str) -> Entry | None:
        k = self._keys
        reply = await self._call(self._scripts[region].default["rank"],
                                 [k.board(region), k.user(user_id), k.epoch, k.warming], [])
        if reply == WARMING:
            return await self._pg.rank(region, user_id)
        return rank_answer(reply, user_id)

    async def around(self, region: str, user_id: str, span: int) -> dict[str, Any] | None:
        k = self._keys
        keys = [k.board(region), k.user(user_id), k.epoch, k.warming]
        reply = await self._call(self._scripts[region].default["around"], keys,
                                 [span, k.user("")])
        if reply == WARMING:
            return await self._pg.around(region, user_id, span)
        return around_answer(reply, region)

    async def ranks(self, region: str, user_ids: list[str]) -> dict[str, Any]:
        """The entries of the listed users (friends) in rank order, and who is missing."""
        k = self._keys
        reply = await self._call(self._scripts[region].default["ranks"],
                                 [k.board(region), k.epoch, k.warming], [k.user(""), *user_ids])
        if reply == WARMING:
            raise Warming("the board is being rebuilt; retry in a second")
        return ranks_answer(reply, region, user_ids)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except REDIS_DOWN as exc:
            raise Unavailable("Redis is unreachable") from exc


def start_args(start: str) -> list[str]:
    """The top scripts' ARGV for where a page starts: first rank0, cursor sort key and member."""
    if start.startswith("rank:"):
        return [start[5:], "", ""]
    if start.startswith("after:"):
        sort_key, _, member = start[6:].partition(":")
        return ["", sort_key, member]
    return ["", "", ""]
