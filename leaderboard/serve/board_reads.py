"""Reads of any board's season (docs/boards.md, "Reads"): ``board_top``, ``board_rank``,
``board_around`` and ``board_ranks``.

A live read passes two candidate seasons from this replica's estimate of the instance's clock,
and the script picks by the instance's clock. Board default is answered by the seed's reads
(``serve/seed_reads.py``) with ``"season": 1``. ``BoardReads`` is the base of the ``Ranker``
deployment (``serve/ranking.py``), which sets the attributes declared here and sends a
``SeasonGone`` read to Postgres.
"""

from __future__ import annotations

from typing import Any

from leaderboard.boards import Board
from leaderboard.cursor import Cursor
from leaderboard.errors import BoardChanged, NoSuchSeason, Unavailable, Warming
from leaderboard.keys import DEFAULT_BOARD
from leaderboard.redis_client import RedisClock
from leaderboard.serve.answers import around_answer, rank_answer, ranks_answer, top_answer
from leaderboard.serve.seed_reads import WARMING, Entry, SeedReads, start_args

STALE_RERUNS = 2  # live board reads rerun when this replica's clock estimate was a season off


class BoardReads(SeedReads):
    """The seed's reads, and the same reads of any board's season (answering ``"season"``)."""

    clock: RedisClock  # this replica's estimate of Redis's clock, for the live season

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


class SeasonGone(Exception):
    """A past season's keys left Redis (archived): read it from Postgres."""


def _default_season(season: int | None) -> int:
    """Board default has one season, 1."""
    if season not in (None, 1):
        raise NoSuchSeason("board default has one season, 1")
    return 1
