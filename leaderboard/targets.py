"""The targets section of RESTORE and FOLD_GLOBAL: each (board, season) of a batch, listed once.

Events of many boards and seasons travel in one script call; each names its target by index,
and the target carries the keys and the order its events need (``leaderboard.apply_scripts``).
"""

from __future__ import annotations

from leaderboard.boards import Board
from leaderboard.keys import DEFAULT_BOARD, Keys
from leaderboard.settings import GLOBAL

Arg = str | int


class Targets:
    """The targets of one script call, numbered from 1 in the order they were first asked for."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._index: dict[tuple[str, str, int], int] = {}
        self._fields: list[Arg] = []

    def __len__(self) -> int:
        return len(self._index)

    def index(self, board: Board, season: int) -> int:
        """The 1-based index of ``(board, season)``, added on first use."""
        slot = (board.id, board.generation, season)
        found = self._index.get(slot)
        if found is None:
            found = self._index[slot] = len(self._index) + 1
            self._fields += self._target(board, season)
        return found

    def _target(self, board: Board, season: int) -> list[Arg]:
        k = self._keys
        s = k.season(board.id, board.generation, season)
        if board.id == DEFAULT_BOARD:  # no registry, freed mark or seasons set: today's keys
            return [s.prefix, s.board(GLOBAL), "", "", season, board.order, "", ""]
        return [s.prefix, s.board(GLOBAL), board.id, board.generation, season, board.order,
                k.seasons(board.id, board.generation), k.freed(board.id, board.generation)]

    def args(self) -> list[Arg]:
        """The section: the number of targets, then 8 fields per target."""
        return [len(self._index), *self._fields]
