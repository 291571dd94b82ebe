"""The targets section of RESTORE and FOLD_GLOBAL: each (board, season) once, default's keys as
they always were."""

from __future__ import annotations

from leaderboard.boards import DEFAULT, Board
from leaderboard.keys import Keys
from leaderboard.targets import Targets


def test_each_board_and_season_is_listed_once_in_order_of_first_use() -> None:
    keys = Keys("ns")
    asc = Board("runs", "Runs", "asc", "best", 60, 0, "g1")
    t = Targets(keys)
    assert [t.index(DEFAULT, 1), t.index(asc, 3), t.index(DEFAULT, 1), t.index(asc, 4),
            t.index(asc, 3)] == [1, 2, 1, 3, 2]
    assert len(t) == 3
    args = t.args()
    assert args[0] == 3 and len(args) == 1 + 3 * 8
    assert args[1:9] == ["lb:ns:", "lb:ns:board:GLOBAL", "", "", 1, "desc", "", ""]
    assert args[9:17] == ["lb:ns:b:runs:g1:3:", "lb:ns:b:runs:g1:3:board:GLOBAL", "runs", "g1", 3,
                          "asc", "lb:ns:b:runs:g1:seasons", "lb:ns:b:runs:g1:freed"]
    assert args[17] == "lb:ns:b:runs:g1:4:"


def test_a_board_created_again_is_another_target() -> None:
    t = Targets(Keys("ns"))
    old, new = Board("b", "B", generation="g1"), Board("b", "B", generation="g2")
    assert (t.index(old, 1), t.index(new, 1)) == (1, 2)
