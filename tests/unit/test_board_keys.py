"""Keys per board and season: default season 1 is exactly today's names; others never collide."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.keys import Keys

BOARD = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
GENERATION = st.from_regex(r"[0-9a-z]{1,13}", fullmatch=True)


@pytest.mark.parametrize("namespace", ["default", "test-ns"])
def test_default_season_1_is_todays_names(namespace: str) -> None:
    k = Keys(namespace)
    p = k.season("default", "", 1)
    assert p.prefix == k.prefix == f"lb:{namespace}:"
    assert p.board("GLOBAL") == k.board("GLOBAL") == f"lb:{namespace}:board:GLOBAL"
    assert p.board("EU") == k.board("EU") == f"lb:{namespace}:board:EU"
    assert p.user("ann") == k.user("ann") == f"lb:{namespace}:user:ann"
    assert k.idempotency("ann", "k1") == k.idempotency("ann", "k1", "default", "") \
        == f"lb:{namespace}:idem:ann:k1"


def test_default_has_no_other_season_and_other_boards_need_a_generation() -> None:
    with pytest.raises(ValueError):
        Keys().season("default", "", 2)
    with pytest.raises(ValueError):
        Keys().season("speed", "", 1)


def test_a_board_season_layout() -> None:
    k = Keys("ns")
    p = k.season("speed", "abc123", 7)
    assert p.board("EU") == "lb:ns:b:speed:abc123:7:board:EU"
    assert p.user("ann") == "lb:ns:b:speed:abc123:7:user:ann"
    assert k.idempotency("ann", "x", "speed", "abc123") == "lb:ns:b:speed:abc123:idem:ann:x"
    assert k.seasons("speed", "abc123") == "lb:ns:b:speed:abc123:seasons"
    assert k.freed("speed", "abc123") == "lb:ns:b:speed:abc123:freed"


@given(b1=BOARD, g1=GENERATION, s1=st.integers(1, 10**12),
       b2=BOARD, g2=GENERATION, s2=st.integers(1, 10**12))
def test_distinct_seasons_never_share_a_key(b1: str, g1: str, s1: int, b2: str, g2: str,
                                            s2: int) -> None:
    k = Keys()
    if b1 == "default" or b2 == "default" or (b1, g1, s1) == (b2, g2, s2):
        return
    one, two = k.season(b1, g1, s1), k.season(b2, g2, s2)
    assert one.user("u") != two.user("u") and one.board("EU") != two.board("EU")
    # nor any instance-wide key or a key of the default board
    for name in (one.user("u"), one.board("GLOBAL")):
        assert not name.startswith(("lb:default:user:", "lb:default:board:"))
