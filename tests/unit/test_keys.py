"""ZSET members: equal scores must rank whoever reached the score first higher."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from leaderboard.keys import MAX_VERSION, MEMBER_PREFIX_LEN, WRITE_SCORE, Keys, member_for, user_of

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
USER_ID = st.text(alphabet=ALPHABET, min_size=1, max_size=64)  # models.UserId
MAX = 2**53 - 1
# versions anywhere in range, plus both ends, where a width or padding slip would show
VERSION = st.one_of(
    st.integers(min_value=1, max_value=MAX),
    st.integers(min_value=MAX - 10**6, max_value=MAX),
    st.integers(min_value=1, max_value=10**6),
)


def test_max_version_matches_score_bound() -> None:
    assert MAX_VERSION == 2**53 - 1
    assert len(str(MAX_VERSION)) == MEMBER_PREFIX_LEN == 16


def test_member_layout() -> None:
    assert member_for("alice", 1) == f"{2**53 - 2:016d}alice"
    assert member_for("alice", MAX_VERSION) == "0" * 16 + "alice"
    assert member_for("bob", 1_700_000_000_000_000) == "7307199254740991bob"


def test_lua_uses_the_same_member_layout() -> None:
    # WRITE_SCORE builds members itself; it must agree with member_for/user_of.
    assert "string.format('%016d', 9007199254740991 - version) .. ARGV[1]" in WRITE_SCORE
    assert str(MAX_VERSION) == "9007199254740991"


@given(USER_ID, VERSION)
def test_member_prefix_is_fixed_width_digits(user_id: str, reached: int) -> None:
    m = member_for(user_id, reached)
    assert re.fullmatch(r"[0-9]{16}", m[:MEMBER_PREFIX_LEN])
    assert int(m[:MEMBER_PREFIX_LEN]) == MAX_VERSION - reached
    assert m.isascii()


@given(USER_ID, VERSION)
def test_user_of_inverts_member_for(user_id: str, reached: int) -> None:
    m = member_for(user_id, reached)
    assert user_of(m) == user_id
    assert user_of(m.encode()) == user_id


@example("a", "a", MAX - 10, MAX - 9)  # prefixes "10" vs "9" without padding
@example("0", "zzz", 1, 2)
@given(USER_ID, USER_ID, VERSION, VERSION)
def test_earlier_reached_sorts_after_bytewise(u: str, v: str, a: int, b: int) -> None:
    """ZREVRANGE walks equal scores in descending byte order: earlier must be bytewise larger."""
    if a == b:
        return
    earlier, later = (a, b) if a < b else (b, a)
    m_early, m_late = member_for(u, earlier).encode(), member_for(v, later).encode()
    assert m_early > m_late


@given(USER_ID, st.integers(min_value=1, max_value=2**53 - 2))
def test_adjacent_versions_keep_order_for_any_user_ids(u: str, a: int) -> None:
    # the tightest case: consecutive versions, and the later user id "largest" possible
    assert member_for(u, a).encode() > member_for("z" * 64, a + 1).encode()
    assert member_for("0", a).encode() > member_for(u, a + 1).encode()


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.integers(-3, 3), USER_ID),  # few scores -> many ties
        min_size=1,
        max_size=30,
        unique_by=lambda t: t[1],
    ),
    st.randoms(use_true_random=False),
)
def test_zrevrange_order_is_score_desc_then_first_reached(entries, rnd) -> None:  # type: ignore[no-untyped-def]
    """Model Redis: sort by (score, member bytes) descending; expect (score desc, reached asc)."""
    versions = rnd.sample(range(1, 2**53 - 1), len(entries))  # unique, like the clock
    rows = [(score, uid, ver) for (score, uid), ver in zip(entries, versions, strict=True)]
    redis_order = sorted(rows, key=lambda r: (r[0], member_for(r[1], r[2]).encode()), reverse=True)
    expected = sorted(rows, key=lambda r: (-r[0], r[2]))
    assert [r[1] for r in redis_order] == [r[1] for r in expected]
    assert [user_of(member_for(r[1], r[2])) for r in redis_order] == [r[1] for r in expected]


@pytest.mark.parametrize("uid", ["a", "A" * 64, "x.y-z_0", "9"])
def test_user_of_on_bytes_and_str(uid: str) -> None:
    m = member_for(uid, 123456789)
    assert user_of(m) == user_of(m.encode()) == uid


def test_key_names() -> None:
    k = Keys()
    assert k.board_name == "default"
    assert k.board("EU") == "lb:default:board:EU"
    assert k.user("alice") == "lb:default:user:alice"
    assert k.stream("NA") == "lb:default:stream:NA"
    assert k.dead("NA") == "lb:default:dead:NA"
    assert k.clock == "lb:default:clock"
    # the Lua scripts rebuild the user hash key from this prefix + user_id
    assert k.user("") + "alice" == k.user("alice")


def test_boards_are_namespaced() -> None:
    a, b = Keys("s1"), Keys("s2")
    assert a.board("EU") != b.board("EU")
    assert a.stream("EU").startswith("lb:s1:") and b.clock.startswith("lb:s2:")
