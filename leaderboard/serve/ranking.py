"""Ranker: the autoscaled read path (top-N pages, rank, around-me, friends' ranks), straight
from Redis; ended seasons from Postgres."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from pydantic_core import to_json
from redis.commands.core import AsyncScript

from leaderboard.board_cache import BoardCache
from leaderboard.boards import Board
from leaderboard.cursor import Cursor
from leaderboard.errors import (
    BoardChanged,
    LeaderboardError,
    NoSuchSeason,
    NotFound,
    Unavailable,
    Warming,
)
from leaderboard.keys import DEFAULT_BOARD, Keys
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
from leaderboard.redis_client import REDIS_DOWN, RedisClock, connect
from leaderboard.serve.answers import around_answer, rank_answer, ranks_answer, top_answer
from leaderboard.serve.pg import Postgres
from leaderboard.serve.pg_ranks import PostgresRanks
from leaderboard.serve.season_reads import SeasonReads
from leaderboard.settings import GLOBAL, Settings
from leaderboard.shards import Topology

Entry = dict[str, Any]
WARMING = "warming"
ARCHIVE_CACHE = 10_000  # archived answers kept per replica (they never change)
STALE_RERUNS = 2  # live board reads rerun when this replica's clock estimate was a season off


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
        self._seasons = SeasonReads(Postgres(settings, max_size=4))
        self._archive_cache: dict[tuple[ReadRequest, str, str], Any] = {}
        self._boards = BoardCache(Postgres(settings, max_size=1), self._redis, self._keys)
        self._boards_task: asyncio.Task[None] | None = None
        self.clock = RedisClock()  # for choosing the live season's candidates

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

    # -- boards and seasons (docs/boards.md, "Reads") -----------------------------------------

    async def board_top(self, board: Board, region: str, limit: int,
                        season: int | None = None, start: str = "") -> dict[str, Any]:
        """A page of a board's live season (``season`` None) or of season ``season``."""
        if board.id == DEFAULT_BOARD:
            k = _default_season(season)
            return {**self._rebrand(await self.top(region, limit, start), board.id), "season": k}
        reply, k = await self._board_read("top", board, region, season, limit, "",
                                          start_args(start))
        if reply is None:
            if start:
                raise Warming("the board is being rebuilt; pages resume in a second")
            cold = await self._pg.top(region, limit, board.id, k, board.order)
            return {**cold, "season": k}
        return {**top_answer(reply[1:], region, board.id, k), "season": k}

    async def board_rank(self, board: Board, region: str, user_id: str,
                         season: int | None = None) -> Entry | None:
        """A user's entry in a board's season; None when not on it."""
        if board.id == DEFAULT_BOARD:
            k = _default_season(season)
            found = await self.rank(region, user_id)
            return None if found is None else {**found, "season": k}
        reply, k = await self._board_read("rank", board, region, season, 0, user_id)
        if reply is None:
            cold = await self._pg.rank(region, user_id, board.id, k, board.order)
            return None if cold is None else {**cold, "season": k}
        found = rank_answer(reply[1:], user_id, board.order)
        return None if found is None else {**found, "season": k}

    async def board_around(self, board: Board, region: str, user_id: str, span: int,
                           season: int | None = None) -> dict[str, Any] | None:
        """Up to ``span`` entries above and below a user in a board's season; None: not on it."""
        if board.id == DEFAULT_BOARD:
            k = _default_season(season)
            found = await self.around(region, user_id, span)
            return None if found is None else {**found, "season": k}
        reply, k = await self._board_read("around", board, region, season, span, user_id)
        if reply is None:
            cold = await self._pg.around(region, user_id, span, board.id, k, board.order)
            return None if cold is None else {**cold, "season": k}
        found = around_answer(reply[1:], region)
        return None if found is None else {**found, "season": k}

    async def board_ranks(self, board: Board, region: str, user_ids: list[str],
                          season: int | None = None) -> dict[str, Any]:
        """The listed users' entries in a board's season, in rank order, and who is missing."""
        if board.id == DEFAULT_BOARD:
            return {**await self.ranks(region, user_ids), "season": _default_season(season)}
        reply, k = await self._board_read("ranks", board, region, season, 0, "", user_ids)
        if reply is None:
            raise Warming("the board is being rebuilt; retry in a second")
        return {**ranks_answer(reply[1:], region, user_ids), "season": k}

    @staticmethod
    def _rebrand(page: dict[str, Any], board: str) -> dict[str, Any]:
        """A page of board default read through /boards/default: its cursor names that path."""
        if page.get("next"):
            cursor = Cursor.decode(page["next"])
            page["next"] = Cursor(board, 1, cursor.region, cursor.sort_key,
                                  cursor.member).encode()
        return page

    async def _board_read(self, kind: str, board: Board, region: str, season: int | None,
                          arg: int, user_id: str, extra: list[Any] | None = None,
                          ) -> tuple[list[Any] | None, int]:
        """Run a board read script; its reply and the season it read (reply None: the instance
        is warming, read that season from Postgres; the live one by this replica's estimate).

        Live reads pass two candidate seasons from this replica's estimate of the instance's
        clock; the script picks by the instance's clock, or answers how far off the estimate
        was, and the read runs again with candidates from that clock (``STALE_RERUNS`` times).
        """
        fixed = season is not None
        # before the start by the estimate: ask anyway, the instance's clock decides
        k = season if fixed else board.schedule.season_at(self.clock.now_us()) or 1
        for _ in range(STALE_RERUNS + 1):
            if k is None or k < 1:
                raise NoSuchSeason("this season of the board has not started")
            keys, args = self._board_call(board, region, k, arg, user_id, fixed)
            reply = await self._call(self._scripts[region].board[kind], keys,
                                     [*args, *(extra or [])])
            if reply == WARMING:
                if not fixed and board.schedule.season_at(self.clock.now_us()) is None:
                    raise NoSuchSeason("this season of the board has not started")
                return None, k
            if reply == "board_changed":
                raise BoardChanged("the board was deleted or created again just now")
            if reply == "freed":
                raise SeasonGone()
            if reply[0] in ("early", "stale"):
                self.clock.observe(int(reply[1]))
                if fixed:
                    raise NoSuchSeason("this season of the board has not started")
                k = board.schedule.season_at(int(reply[1]))
                continue
            return reply, k + int(reply[0]) - 1
        raise Unavailable("the board's live season could not be settled; retry")

    def _board_call(self, board: Board, region: str, k: int, arg: int, user_id: str,
                    fixed: bool) -> tuple[list[str], list[Any]]:
        key, cur, nxt = self._keys, self._keys.season(board.id, board.generation, k), \
            self._keys.season(board.id, board.generation, k + 1)
        start, end = board.schedule.bounds(k)
        end_next = None if end is None else board.schedule.bounds(k + 1)[1]
        keys = [key.boards, key.clock, key.epoch, key.warming, cur.board(region), nxt.board(region),
                cur.user(user_id), nxt.user(user_id), key.freed(board.id, board.generation)]
        args = [board.id, board.generation, start, "" if end is None else end,
                "" if end_next is None else end_next, cur.user(""), nxt.user(""), arg,
                "1" if fixed else "0", k]
        return keys, args

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

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except REDIS_DOWN as exc:
            raise Unavailable("Redis is unreachable") from exc


class SeasonGone(Exception):
    """A past season's keys left Redis (archived): read it from Postgres."""


def _empty(kind: str, answer: Any) -> bool:
    return answer is None or (kind == "top" and answer["total"] == 0) or (
        kind == "ranks" and not answer["entries"])


def start_args(start: str) -> list[str]:
    """The top scripts' ARGV for where a page starts: first rank0, cursor sort key and member."""
    if start.startswith("rank:"):
        return [start[5:], "", ""]
    if start.startswith("after:"):
        sort_key, _, member = start[6:].partition(":")
        return ["", sort_key, member]
    return ["", "", ""]


def _default_season(season: int | None) -> int:
    """Board default has one season, 1."""
    if season not in (None, 1):
        raise NoSuchSeason("board default has one season, 1")
    return 1
