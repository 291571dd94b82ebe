"""latest_per_user: one event per user (highest version), sorted by user_id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leaderboard.models import ScoreEvent
from leaderboard.pipeline.writer import latest_per_user


def ev(user: str, version: int, score: int = 0, name: str | None = None) -> ScoreEvent:
    return ScoreEvent(user_id=user, name=name or user.upper(), region="EU", score=score,
                      version=version, reached=version, ts=version // 1000)


def test_empty() -> None:
    assert latest_per_user([]) == []


def test_keeps_highest_version_regardless_of_arrival_order() -> None:
    events = [ev("bob", 5, 50), ev("alice", 3, 30), ev("bob", 9, 90), ev("bob", 7, 70),
              ev("alice", 1, 10)]
    out = latest_per_user(events)
    assert [(e.user_id, e.version, e.score) for e in out] == [("alice", 3, 30), ("bob", 9, 90)]


def test_sorted_by_user_id() -> None:
    out = latest_per_user([ev(u, 1) for u in ["zed", "Alice", "bob", "_x", "0", "alice"]])
    assert [e.user_id for e in out] == ["0", "Alice", "_x", "alice", "bob", "zed"]


def test_redelivered_duplicate_collapses() -> None:
    a = ev("alice", 4, 40)
    out = latest_per_user([a, a, ev("alice", 4, 40)])
    assert len(out) == 1 and out[0] == a


def test_whole_event_of_the_winner_is_kept() -> None:
    # name/region/score come from the same event as the winning version, never mixed
    out = latest_per_user([ev("alice", 2, 20, "New"), ev("alice", 1, 10, "Old")])
    assert (out[0].name, out[0].score, out[0].version) == ("New", 20, 2)


def test_does_not_mutate_input() -> None:
    events = [ev("b", 2), ev("a", 1), ev("b", 1)]
    copy = list(events)
    latest_per_user(events)
    assert events == copy


def _reference(events: list[ScoreEvent]) -> list[tuple[str, int, int]]:
    users = sorted({e.user_id for e in events})
    out = []
    for u in users:
        mine = [e for e in events if e.user_id == u]
        top = max(e.version for e in mine)
        out.append((u, top, next(e.score for e in mine if e.version == top)))
    return out


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "B", "c.1", "c-1", "z_"]),
            st.integers(1, 2**53 - 1),
            st.integers(-(2**53 - 1), 2**53 - 1),
        ),
        max_size=40,
        unique_by=lambda t: (t[0], t[1]),  # a (user, version) pair always carries one value
    )
)
def test_matches_reference(rows: list[tuple[str, int, int]]) -> None:
    events = [ev(u, v, s) for u, v, s in rows]
    out = latest_per_user(events)
    assert [(e.user_id, e.version, e.score) for e in out] == _reference(events)
    assert len({e.user_id for e in out}) == len(out)


def test_one_event_per_board_and_season_of_a_user() -> None:
    a1 = ScoreEvent(user_id="ann", name="A", region="EU", score=1, version=5, reached=5, ts=0)
    a2 = a1.model_copy(update={"board": "speed", "season": 2, "version": 3})
    a3 = a1.model_copy(update={"board": "speed", "season": 3, "version": 2})
    old = a1.model_copy(update={"board": "speed", "season": 2, "version": 1})
    out = latest_per_user([a3, old, a1, a2])
    assert [(e.board, e.season, e.version) for e in out] == [
        ("default", 1, 5), ("speed", 2, 3), ("speed", 3, 2)]
