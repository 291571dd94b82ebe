"""Board definitions: every field rule of POST /boards, defaults, and the operators' model."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from leaderboard.boards import (
    DEFAULT,
    Applied,
    Board,
    BoardCreate,
    apply_operator,
    format_rfc3339,
    generation_of,
    parse_rfc3339,
)
from leaderboard.seasons import Cron, to_us
from leaderboard.settings import MAX_SCORE

NOW = to_us(datetime(2026, 11, 30, 14, 0, tzinfo=UTC))


def create(**fields: object) -> BoardCreate:
    """Validate as the HTTP layer will: from JSON text."""
    return BoardCreate.model_validate_json(json.dumps(fields))


def refused(field: str, **fields: object) -> str:
    with pytest.raises(ValidationError) as info:
        create(**fields)
    errors = info.value.errors()
    assert [e["loc"][0] for e in errors] == [field]
    return str(errors[0]["msg"])


def test_defaults() -> None:
    b = create(id="speedrun-1").board(NOW)
    assert (b.id, b.title, b.order, b.operator, b.reset, b.start_us) == (
        "speedrun-1", "speedrun-1", "desc", "set", None, NOW)
    assert b.schedule.season_at(NOW) == 1 and b.schedule.bounds(1) == (NOW, None)


def test_every_field_given() -> None:
    b = create(id="w", title="Weekly sprint", order="asc", operator="best", reset="@weekly",
               start="2026-12-01T00:00:00Z").board(NOW)
    assert (b.title, b.order, b.operator, b.reset) == ("Weekly sprint", "asc", "best", "@weekly")
    assert b.start_us == to_us(datetime(2026, 12, 1, tzinfo=UTC))
    assert isinstance(b.schedule.reset, Cron)
    assert b.as_dict() == {"id": "w", "title": "Weekly sprint", "order": "asc",
                           "operator": "best", "reset": "@weekly", "start": "2026-12-01T00:00:00Z"}


@pytest.mark.parametrize("board_id", ["a", "0", "level-1", "mode_2", "9lives", "x" * 64])
def test_good_ids(board_id: str) -> None:
    assert create(id=board_id).id == board_id


@pytest.mark.parametrize("board_id", [
    "", "x" * 65, "-a", "_a", "Level", "a b", "a.b", "a:b", "é", "a/b", 7, None, ["a"],
])
def test_bad_ids(board_id: object) -> None:
    refused("id", id=board_id)


def test_id_is_required() -> None:
    with pytest.raises(ValidationError) as info:
        BoardCreate.model_validate_json("{}")
    assert info.value.errors()[0]["loc"] == ("id",)


@pytest.mark.parametrize("title", ["", "x" * 201, "tab\there", 5])
def test_bad_titles(title: object) -> None:
    refused("title", id="a", title=title)


def test_a_title_of_200_characters_is_fine() -> None:
    assert create(id="a", title="é" * 200).title == "é" * 200


@pytest.mark.parametrize(("field", "value"), [
    ("order", "descending"), ("order", "DESC"), ("order", 1), ("order", None),
    ("operator", "decr"), ("operator", "sum"), ("operator", "Best"), ("operator", None),
])
def test_bad_order_and_operator(field: str, value: object) -> None:
    refused(field, id="a", **{field: value})


@pytest.mark.parametrize(("reset", "message"), [
    (0, "whole seconds from 1"), (-1, "whole seconds from 1"), (1.5, "whole seconds >= 1"),
    (60.0, "whole seconds >= 1"), (True, "whole seconds >= 1"), ("3600", "JSON number"),
    ("* * *", "5 fields"), ("61 * * * *", "outside 0-59"), ("@fortnightly", "unknown schedule"),
    ("0 0 30 2 *", "never matches"), ([], "whole seconds >= 1"),
])
def test_bad_resets_have_clear_messages(reset: object, message: str) -> None:
    assert message in refused("reset", id="a", reset=reset)


@pytest.mark.parametrize("reset", [1, 3600, "@hourly", "@daily", "@weekly", "@monthly",
                                   "*/5 * * * *", "0 0 * * 1-5", None])
def test_good_resets(reset: object) -> None:
    assert create(id="a", reset=reset).reset == reset


@pytest.mark.parametrize("start", [
    "2026-12-01", "2026-12-01T00:00:00", "2026-12-01 00:00", "yesterday", "1969-12-31T23:59:59Z",
    "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-12-01T24:00:00Z", 1764547200,
    "2026-12-01T00:00:60Z",
])
def test_bad_starts(start: object) -> None:
    refused("start", id="a", start=start)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-12-01T00:00:00Z", datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-12-01t01:00:00+01:00", datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-11-30 19:00:00-05:00", datetime(2026, 12, 1, tzinfo=UTC)),
    ("2026-12-01T00:00:00.123456789z", datetime(2026, 12, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("2026-12-01T00:00:00.5Z", datetime(2026, 12, 1, 0, 0, 0, 500000, tzinfo=UTC)),
])
def test_rfc3339_starts(text: str, expected: datetime) -> None:
    assert parse_rfc3339(text) == to_us(expected)


def test_start_round_trips_through_the_api_form() -> None:
    us = parse_rfc3339("2026-12-01T00:00:00.25Z")
    assert format_rfc3339(us) == "2026-12-01T00:00:00.250000Z"
    assert parse_rfc3339(format_rfc3339(us)) == us


def test_unknown_fields_are_ignored() -> None:
    assert create(id="a", colour="red").id == "a"


def test_default_board() -> None:
    assert (DEFAULT.id, DEFAULT.order, DEFAULT.operator, DEFAULT.reset) == (
        "default", "desc", "set", None)
    assert DEFAULT.schedule.season_at(NOW) == 1 and DEFAULT.schedule.bounds(1)[1] is None
    assert DEFAULT.accepts("score") and DEFAULT.accepts("delta")


def test_boards_are_frozen_values() -> None:
    b = Board("a", "a", reset=60, start_us=NOW)
    assert b == Board("a", "a", reset=60, start_us=NOW)
    with pytest.raises(AttributeError):
        b.title = "b"  # type: ignore[misc]


# --- operators ---------------------------------------------------------------------------------

SET, BEST_DESC = Board("s", "s"), Board("b", "b", operator="best")
BEST_ASC, INCR = Board("t", "t", order="asc", operator="best"), Board("i", "i", operator="incr")


def test_operator_mismatch() -> None:
    assert not BEST_DESC.accepts("delta") and not INCR.accepts("score")
    for board, kind in ((BEST_DESC, "delta"), (INCR, "score")):
        with pytest.raises(ValueError, match="operator_mismatch"):
            apply_operator(board, 1, kind, 1)  # type: ignore[arg-type]


def test_set_and_add() -> None:
    assert apply_operator(SET, None, "score", 5) == Applied(5, True, True)
    assert apply_operator(SET, 5, "score", 5) == Applied(5, True, False)  # keeps its place
    assert apply_operator(SET, 5, "score", 3) == Applied(3, True, True)
    assert apply_operator(SET, None, "delta", 4) == Applied(4, True, True)
    assert apply_operator(SET, 5, "delta", 0) == Applied(5, True, False)


def test_best_keeps_the_better_by_order() -> None:
    assert apply_operator(BEST_DESC, 10, "score", 12) == Applied(12, True, True)
    assert apply_operator(BEST_DESC, 10, "score", 8) == Applied(10, False, False)
    assert apply_operator(BEST_DESC, 10, "score", 10) == Applied(10, False, False)
    assert apply_operator(BEST_ASC, 10, "score", 8) == Applied(8, True, True)
    assert apply_operator(BEST_ASC, 10, "score", 12) == Applied(10, False, False)
    assert apply_operator(BEST_ASC, None, "score", 12) == Applied(12, True, True)


def test_incr_starts_at_zero() -> None:
    assert apply_operator(INCR, None, "delta", -3) == Applied(-3, True, True)
    assert apply_operator(INCR, -3, "delta", 5) == Applied(2, True, True)


@pytest.mark.parametrize(("board", "old", "kind", "value"), [
    (SET, None, "score", MAX_SCORE + 1), (SET, MAX_SCORE, "delta", 1),
    (INCR, -MAX_SCORE, "delta", -1), (BEST_ASC, 0, "score", -MAX_SCORE - 1),
])
def test_out_of_range_results_are_refused(board: Board, old: int | None, kind: str,
                                          value: int) -> None:
    with pytest.raises(ValueError, match="score_out_of_range"):
        apply_operator(board, old, kind, value)  # type: ignore[arg-type]


def test_sort_key_makes_asc_boards_readable_with_zrev() -> None:
    assert SET.sort_key(7) == 7 and BEST_ASC.sort_key(7) == -7
    assert BEST_ASC.sort_key(-MAX_SCORE) == MAX_SCORE  # the range is symmetric: still exact


@given(st.lists(st.integers(-MAX_SCORE, MAX_SCORE), min_size=1, max_size=30))
def test_best_is_the_extreme_of_the_submissions(scores: list[int]) -> None:
    for board, pick in ((BEST_DESC, max), (BEST_ASC, min)):
        cur: int | None = None
        for s in scores:
            cur = apply_operator(board, cur, "score", s).score
        assert cur == pick(scores)


# --- storage ---------------------------------------------------------------------------------

def test_generation_is_base36_of_the_creation_time() -> None:
    assert [generation_of(n) for n in (0, 35, 36)] == ["0", "z", "10"]
    assert int(generation_of(NOW), 36) == NOW
    assert create(id="a").board(NOW).generation == generation_of(NOW)


@pytest.mark.parametrize("reset", [None, 60, "@daily", "*/5 * * * 1-5"])
def test_rows_round_trip(reset: object) -> None:
    b = create(id="lvl", order="asc", operator="best", reset=reset,
               start="2026-12-01T00:00:00.5Z").board(NOW)
    row = b.row()
    assert (row["reset_seconds"], row["reset_cron"]) == (
        (reset, None) if isinstance(reset, int) else (None, reset))
    back = Board.from_row(row)
    assert back == b and back.schedule.bounds(1) == b.schedule.bounds(1)


def test_default_row_is_the_migrations_default() -> None:
    assert DEFAULT.row() == {
        "id": "default", "title": "default", "sort_order": "desc", "operator": "set",
        "reset_seconds": None, "reset_cron": None,
        "start_at": datetime(1970, 1, 1, tzinfo=UTC), "generation": ""}
