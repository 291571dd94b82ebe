"""The boards model itself: seasons, operators, and the rank order of both sort orders."""

from __future__ import annotations

import pytest

from leaderboard.boards import Board
from leaderboard.seasons import US
from tests.boards_model import BoardModel

START = 1_800_000_000 * US
DAILY_SET = Board("d", "d", "desc", "set", 10, START)  # 10-second seasons
ASC_BEST = Board("a", "a", "asc", "best", 10, START)
INCR = Board("i", "i", "desc", "incr", None, START)


def test_writes_go_to_the_season_of_their_instant() -> None:
    m = BoardModel(DAILY_SET)
    assert m.write(START, "u", "U", "EU", "score", 5).season == 1
    assert m.write(START + 10 * US - 1, "u", "U", "EU", "score", 6).season == 1
    assert m.write(START + 10 * US, "u", "U", "EU", "score", 1).season == 2
    assert [e.score for e in m.standings(1)] == [6] and [e.score for e in m.standings(2)] == [1]
    with pytest.raises(ValueError, match="season_not_started"):
        m.write(START - 1, "u", "U", "EU", "score", 1)


def test_each_season_starts_empty_for_incr() -> None:
    m = BoardModel(Board("i2", "i2", "desc", "incr", 10, START))
    m.write(START, "u", "U", "EU", "delta", 5)
    assert m.write(START + 10 * US, "u", "U", "EU", "delta", 2).entry.score == 2


def test_ties_first_to_reach_ranks_higher_in_both_orders() -> None:
    for board in (DAILY_SET, ASC_BEST):
        m = BoardModel(board)
        m.write(START + 1, "late", "L", "EU", "score", 7)
        m.write(START, "early", "E", "NA", "score", 7)
        assert [e.user_id for e in m.standings(1)] == ["early", "late"]


def test_asc_boards_rank_the_lowest_first() -> None:
    m = BoardModel(ASC_BEST)
    for i, (user, score) in enumerate([("a", 30), ("b", 10), ("c", 20), ("b", 15)]):
        m.write(START + i, user, user, "EU", "score", score)
    assert [(e.user_id, e.score) for e in m.standings(1)] == [("b", 10), ("c", 20), ("a", 30)]


def test_best_that_does_not_improve_keeps_the_entry_and_its_place() -> None:
    m = BoardModel(ASC_BEST)
    first = m.write(START, "u", "U", "EU", "score", 10).entry
    out = m.write(START + 5, "u", "U2", "EU", "score", 12)
    assert not out.applied.stored and out.entry == first


def test_same_score_keeps_the_place_and_coming_back_reaches_anew() -> None:
    m = BoardModel(DAILY_SET)
    m.write(START, "a", "A", "EU", "score", 5)
    m.write(START + 1, "b", "B", "EU", "score", 5)
    m.write(START + 2, "a", "A", "EU", "score", 5)  # same score: a keeps reaching first
    assert [e.user_id for e in m.standings(1)] == ["a", "b"]
    m.write(START + 3, "a", "A", "EU", "score", 4)
    m.write(START + 4, "a", "A", "EU", "score", 5)  # back at 5, after b
    assert [e.user_id for e in m.standings(1)] == ["b", "a"]


def test_region_boards_and_ranks() -> None:
    m = BoardModel(INCR)
    m.write(START, "e", "E", "EU", "delta", 3)
    m.write(START + 1, "n", "N", "NA", "delta", 9)
    m.write(START + 2, "g", "G", "GLOBAL", "delta", 5)
    assert [e.user_id for e in m.standings(1)] == ["n", "g", "e"]
    assert [e.user_id for e in m.standings(1, "EU")] == ["e"]
    assert m.rank(1, "e") == 3 and m.rank(1, "e", "EU") == 1 and m.rank(1, "e", "NA") is None


def test_equal_reached_falls_back_to_user_id_bytes_descending() -> None:
    m = BoardModel(DAILY_SET)  # two instances can hand out the same version
    m.write(START, "a", "A", "EU", "score", 1)
    m.write(START, "b", "B", "NA", "score", 1)
    assert [e.user_id for e in m.standings(1)] == ["b", "a"]
