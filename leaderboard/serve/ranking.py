"""Ranker: the autoscaled read path (top-N pages, rank, around-me, friends' ranks), straight
from Redis; ended seasons from Postgres.

This module holds the deployment and its dispatch of a group of reads (``read_many``), with
archived and ended seasons; the reads themselves are its bases: board default's in
``serve/seed_reads.py``, any board's season in ``serve/board_reads.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from pydantic_core import to_json

from leaderboard.board_cache import BoardCache
from leaderboard.boards import Board
from leaderboard.errors import LeaderboardError, NotFound
from leaderboard.heap import freeze_startup_heap
from leaderboard.keys import Keys
from leaderboard.redis_client import REDIS_DOWN, RedisClock, connect
from leaderboard.serve.board_reads import BoardReads, SeasonGone
from leaderboard.serve.pg import Postgres
from leaderboard.serve.pg_ranks import PostgresRanks
from leaderboard.serve.season_reads import SeasonReads
from leaderboard.serve.seed_reads import ReadScripts
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology

ARCHIVE_CACHE = 10_000  # archived answers kept per replica (they never change)


class ReadRequest(NamedTuple):
    """One read; equal requests in a group share one answer."""

    kind: str  # top | rank | around | ranks
    region: str
    arg: int  # top: limit; around: span
    user_id: str  # ranks: the ids, comma-separated
    board: str = ""  # '': the seed's paths (board default, answers without "season")
    season: int = 0  # 0: the live season
    start: str = ""  # top: '' (rank 1), 'rank:N' (0-based), 'after:SORTKEY:MEMBER' (a cursor)


Answer = bytes | None | LeaderboardError  # a refusal travels back as the answer of its read


def encode(answer: Any) -> bytes:
    """The compact JSON body of an answer."""
    return to_json(answer)


class Ranker(BoardReads):
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
        self._seasons = SeasonReads(Postgres(settings, max_size=4))
        self._archive_cache: dict[tuple[ReadRequest, str, str], Any] = {}
        self._boards = BoardCache(Postgres(settings, max_size=1), self._redis, self._keys)
        self._boards_task: asyncio.Task[None] | None = None
        self.clock = RedisClock()  # for choosing the live season's candidates
        freeze_startup_heap(settings)

    async def read_many(self, requests: list[ReadRequest]) -> list[Answer]:
        """Answer a group of reads as JSON bodies (None: the user is not on the board; a
        ``LeaderboardError``: this read's refusal, e.g. an unknown board or season).

        Identical requests in the group share one answer, encoded once, here on the ranking
        replica: the gateway sends the bytes as they are, and bytes cross the Ray hop far more
        cheaply than a hundred nested dicts. One read's refusal is its own, not the group's.
        """
        if self._boards_task is None:
            self._boards_task = asyncio.get_running_loop().create_task(self._boards.run())
        distinct = list(dict.fromkeys(requests))
        answers = await asyncio.gather(*(self._read(r) for r in distinct),
                                       return_exceptions=True)
        by_request: dict[ReadRequest, Answer] = {}
        for request, answer in zip(distinct, answers, strict=True):
            if isinstance(answer, BaseException) and not isinstance(answer, LeaderboardError):
                raise answer  # a bug: the whole group's callers see it as a 500
            by_request[request] = answer if isinstance(answer, LeaderboardError) or (
                answer is None) else encode(answer)
        return [by_request[r] for r in requests]

    async def _read(self, request: ReadRequest) -> Any:
        if request.board:
            return await self._board_read_of(request)
        kind, region, arg, user_id = request[:4]
        if kind == "top":
            return await self.top(region, arg, request.start)
        if kind == "ranks":
            return await self.ranks(region, user_id.split(","))
        if kind == "rank":
            return await self.rank(region, user_id)
        if kind == "around":
            return await self.around(region, user_id, arg)
        raise ValueError(f"unknown read kind {kind!r}")

    async def _board_read_of(self, request: ReadRequest) -> Any:
        kind, board_id, season = request.kind, request.board, request.season
        board = await self._boards.lookup(board_id)
        if board is None:
            raise NotFound(f"no board {board_id!r}")
        if season and season <= self._boards.archived(board.id):
            return await self._archived(request, board)
        try:
            answer = await self._board_redis_read(request, board)
        except SeasonGone:
            return await self._past(request, board)
        if season and _empty(kind, answer) and self._ended(board, season):
            return await self._past(request, board)  # Redis lost it: Postgres has it
        return answer

    async def _board_redis_read(self, request: ReadRequest, board: Board) -> Any:
        kind, region, arg, user_id, _, season, start = request
        k = season or None
        if kind == "top":
            return await self.board_top(board, region, arg, k, start)
        if kind == "ranks":
            return await self.board_ranks(board, region, user_id.split(","), k)
        if kind == "rank":
            return await self.board_rank(board, region, user_id, k)
        if kind == "around":
            return await self.board_around(board, region, user_id, arg, k)
        raise ValueError(f"unknown read kind {kind!r}")

    def _ended(self, board: Board, season: int) -> bool:
        end = board.schedule.bounds(season)[1]
        return end is not None and end <= self.clock.now_us()

    async def _archived(self, request: ReadRequest, board: Board) -> Any:
        """An archived season's answer: read once, then from memory (archives never change)."""
        try:  # names in archives change with renames: a rename starts a new cache key
            names = str(await self._redis.get(self._keys.profiles_rev) or "0")
        except REDIS_DOWN:
            return await self._past(request, board)  # unsure which names are current
        key = (request, board.generation, names)
        if key not in self._archive_cache:
            if len(self._archive_cache) >= ARCHIVE_CACHE:
                self._archive_cache.clear()
            self._archive_cache[key] = await self._past(request, board)
        return self._archive_cache[key]

    async def _past(self, request: ReadRequest, board: Board) -> Any:
        kind, region, arg, user_id, _, season, start = request
        if kind == "top":
            return await self._seasons.top(board, season, region, arg, start)
        if kind == "ranks":
            return await self._seasons.ranks(board, season, region, user_id.split(","))
        if kind == "rank":
            return await self._seasons.rank(board, season, region, user_id)
        if kind == "around":
            return await self._seasons.around(board, season, region, user_id, arg)
        raise ValueError(f"unknown read kind {kind!r}")


def _empty(kind: str, answer: Any) -> bool:
    return answer is None or (kind == "top" and answer["total"] == 0) or (
        kind == "ranks" and not answer["entries"])
