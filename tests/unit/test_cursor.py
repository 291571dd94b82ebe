"""Page cursors: what one encodes comes back, and nothing else is taken for one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.cursor import Cursor, CursorInvalid
from leaderboard.keys import member_for

IDS = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
CURSORS = st.builds(
    lambda b, s, r, k, u, reached: Cursor(b, s, r, k, member_for(u, reached)),
    st.one_of(st.just(""), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)),
    st.integers(1, 2**40), st.sampled_from(["GLOBAL", "EU", "NA"]),
    st.integers(-(2**53 - 1), 2**53 - 1), IDS, st.integers(1, 2**53 - 1))


@given(CURSORS)
def test_a_cursor_round_trips(cursor: Cursor) -> None:
    token = cursor.encode()
    assert Cursor.decode(token) == cursor
    assert token.replace("-", "").replace("_", "").isalnum()  # URL-safe as it is


@given(CURSORS, st.integers(1, 8))
def test_a_cursor_cut_short_is_refused(cursor: Cursor, cut: int) -> None:
    with pytest.raises(CursorInvalid):
        Cursor.decode(cursor.encode()[:-cut])


@pytest.mark.parametrize("token", ["", "x", "not a cursor", "YzE", "%%%", "Zm9v" * 30])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(CursorInvalid):
        Cursor.decode(token)


def test_a_cursor_belongs_to_one_view() -> None:
    cursor = Cursor("speed", 3, "EU", -40, member_for("ann", 17))
    cursor.check("speed", "EU", None)
    cursor.check("speed", "EU", 3)
    for board, region, season in (("other", "EU", None), ("speed", "NA", None),
                                  ("speed", "EU", 4), ("", "EU", None)):
        with pytest.raises(CursorInvalid):
            cursor.check(board, region, season)
    assert (cursor.user_id, cursor.reached) == ("ann", 17)
