"""Ranker: the autoscaled read path (top-N, rank, around-me), straight from Redis."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from pydantic_core import to_json
from redis.commands.core import AsyncScript

from leaderboard.errors import Unavailable
from leaderboard.keys import AROUND, RANK, TOP, Keys
from leaderboard.redis_client import REDIS_DOWN, connect
from leaderboard.serve.pg import Postgres
from leaderboard.serve.pg_ranks import PostgresRanks
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology

Entry = dict[str, Any]
WARMING = "warming"


class ReadRequest(NamedTuple):
    """One read; equal requests in a group share one answer."""

    kind: str  # top | rank | around
    region: str
    arg: int  # top: limit; around: span
    user_id: str


def encode(answer: Any) -> bytes:
    """The compact JSON body of an answer."""
    return to_json(answer)


def entries_from(flat: list[Any], first_rank: int) -> list[Entry]:
    """Entries from the scripts' flat ``uid, name, region, score`` runs, ranked from first_rank."""
    return [
        {
            "rank": first_rank + i // 4,
            "user_id": flat[i],
            "name": flat[i + 1],
            "region": flat[i + 2],
            "score": int(flat[i + 3]),
        }
        for i in range(0, len(flat), 4)
    ]


@dataclass(frozen=True)
class ReadScripts:
    """The read scripts registered on one Redis instance."""

    top: AsyncScript
    rank: AsyncScript
    around: AsyncScript

    @classmethod
    def on(cls, redis: aioredis.Redis) -> ReadScripts:
        return cls(redis.register_script(TOP), redis.register_script(RANK),
                   redis.register_script(AROUND))


class Ranker:
    """Answers reads with one Lua script call each; ranks are 1-based and exact.

    A region board is read on the region's Redis instance, GLOBAL on GLOBAL's (REDIS_URL).
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keys = Keys(settings.board)
        topology = Topology.of(settings)
        clients = {url: connect(url) for url in topology.urls()}
        self._redis = clients[topology.global_url]
        by_url = {url: ReadScripts.on(client) for url, client in clients.items()}
        self._scripts = {GLOBAL: by_url[topology.global_url]}
        self._scripts.update({r: by_url[topology.instance[r]] for r in topology.regions
                              if r != GLOBAL})
        self._pg = PostgresRanks(Postgres(settings))

    async def top(self, region: str, limit: int) -> dict[str, Any]:
        k = self._keys
        reply = await self._call(
            self._scripts[region].top, [k.board(region), k.epoch, k.warming], [limit, k.user("")])
        if reply == WARMING:
            return await self._pg.top(region, limit)
        return {"region": region, "entries": entries_from(reply[1:], 1), "total": int(reply[0])}

    async def rank(self, region: str, user_id: str) -> Entry | None:
        k = self._keys
        reply = await self._call(
            self._scripts[region].rank, [k.board(region), k.user(user_id), k.epoch, k.warming], [])
        if reply == WARMING:
            return await self._pg.rank(region, user_id)
        if not reply:
            return None
        return entries_from([user_id, *reply[1:]], int(reply[0]) + 1)[0]

    async def around(self, region: str, user_id: str, span: int) -> dict[str, Any] | None:
        k = self._keys
        keys = [k.board(region), k.user(user_id), k.epoch, k.warming]
        reply = await self._call(self._scripts[region].around, keys, [span, k.user("")])
        if reply == WARMING:
            return await self._pg.around(region, user_id, span)
        if not reply:
            return None
        me, first = int(reply[0]) + 1, int(reply[1]) + 1
        ranked = entries_from(reply[2:], first)
        return {
            "region": region,
            "self": next(e for e in ranked if e["rank"] == me),
            "around": [e for e in ranked if e["rank"] != me],
        }

    async def read_many(self, requests: list[ReadRequest]) -> list[bytes | None]:
        """Answer a group of reads as JSON bodies (None: the user is not on the board).

        Identical requests in the group share one answer, encoded once, here on the ranking
        replica: the gateway sends the bytes as they are, and bytes cross the Ray hop far more
        cheaply than a hundred nested dicts.
        """
        distinct = list(dict.fromkeys(requests))
        answers = await asyncio.gather(*(self._read(r) for r in distinct))
        by_request = {r: None if a is None else encode(a)
                      for r, a in zip(distinct, answers, strict=True)}
        return [by_request[r] for r in requests]

    async def _read(self, request: ReadRequest) -> Any:
        kind, region, arg, user_id = request
        if kind == "top":
            return await self.top(region, arg)
        if kind == "rank":
            return await self.rank(region, user_id)
        if kind == "around":
            return await self.around(region, user_id, arg)
        raise ValueError(f"unknown read kind {kind!r}")

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except REDIS_DOWN as exc:
            raise Unavailable("Redis is unreachable") from exc
