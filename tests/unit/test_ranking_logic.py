"""entries_from: the Lua scripts' flat replies -> ranked entries."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from leaderboard.errors import Unavailable
from leaderboard.models import RankEntry
from leaderboard.serve.answers import entries_from
from leaderboard.serve.ranking import Ranker


def test_empty() -> None:
    assert entries_from([], 1) == []


def test_flat_runs_become_entries_ranked_from_first() -> None:
    flat = ["alice", "Alice", "EU", "100", '{"car":"red","n":[1,2]}', "bob", "Bob", "NA", "-5", ""]
    assert entries_from(flat, 1) == [
        {"rank": 1, "user_id": "alice", "name": "Alice", "region": "EU", "score": 100,
         "metadata": {"car": "red", "n": [1, 2]}},
        {"rank": 2, "user_id": "bob", "name": "Bob", "region": "NA", "score": -5, "metadata": {}},
    ]


def test_first_rank_offsets_every_entry() -> None:
    flat = ["a", "A", "EU", "3", "", "b", "B", "EU", "2", "", "c", "C", "EU", "1", ""]
    assert [e["rank"] for e in entries_from(flat, 41)] == [41, 42, 43]


def test_scores_are_exact_ints_at_the_bound() -> None:
    big = 2**53 - 1
    out = entries_from(["a", "A", "EU", str(big), "", "b", "B", "EU", str(-big), ""], 1)
    assert [e["score"] for e in out] == [big, -big]
    assert all(type(e["score"]) is int for e in out)


def test_integer_scores_from_redis_also_accepted() -> None:
    assert entries_from(["a", "A", "EU", 7, ""], 1)[0]["score"] == 7


def test_missing_hash_fields_defaults_from_lua() -> None:
    # the Lua helper substitutes '' / '' / '0' / '' when a user hash vanished mid-read
    assert entries_from(["ghost", "", "", "0", ""], 5) == [
        {"rank": 5, "user_id": "ghost", "name": "", "region": "", "score": 0, "metadata": {}}
    ]


def test_entries_fit_the_response_model() -> None:
    for e in entries_from(["a", "A", "EU", "1", '{"x":1}'], 1):
        assert RankEntry.model_validate(e).model_dump(exclude_none=True) == e


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=5), st.text(max_size=5), st.text(max_size=5),
                  st.integers(-(2**53 - 1), 2**53 - 1)),
        max_size=20,
    ),
    st.integers(1, 10**6),
)
def test_roundtrip(rows: list[tuple[str, str, str, int]], first: int) -> None:
    flat = [x for u, n, r, s in rows for x in (u, n, r, str(s), "")]
    out = entries_from(flat, first)
    assert [(e["user_id"], e["name"], e["region"], e["score"]) for e in out] == rows
    assert [e["rank"] for e in out] == list(range(first, first + len(rows)))


# -- Ranker around the scripts (scripts replaced by fakes; no Redis is contacted) -----------


class FakeScript:
    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.calls: list[tuple[list[str], list[object]]] = []

    async def __call__(self, keys: list[str], args: list[object]) -> object:
        self.calls.append((keys, args))
        if isinstance(self.reply, BaseException):
            raise self.reply
        return self.reply


@pytest.fixture
def ranker(make_settings) -> Ranker:  # type: ignore[no-untyped-def]
    return Ranker(make_settings(BOARD="b1", REDIS_URL="redis://127.0.0.1:1/15"))


def use(ranker: Ranker, kind: str, fake: FakeScript) -> FakeScript:
    """Replace one read script on every instance the ranker reads."""
    for region, scripts in ranker._scripts.items():
        ranker._scripts[region] = replace(scripts, default={**scripts.default, kind: fake})
    return fake


async def test_top(ranker: Ranker) -> None:
    top = use(ranker, "top", FakeScript([2, 0, "", "", "a", "A", "EU", "9", "", "b", "B", "NA",
                                         "8", '{"k":"v"}']))
    out = await ranker.top("GLOBAL", 2)
    assert out == {
        "region": "GLOBAL",
        "total": 2,
        "entries": [
            {"rank": 1, "user_id": "a", "name": "A", "region": "EU", "score": 9, "metadata": {}},
            {"rank": 2, "user_id": "b", "name": "B", "region": "NA", "score": 8,
             "metadata": {"k": "v"}},
        ],
        "next": None,
    }
    assert top.calls == [(["lb:b1:board:GLOBAL", "lb:b1:epoch", "lb:b1:warming"],
                          [2, "lb:b1:user:", "", "", ""])]


async def test_top_of_empty_board(ranker: Ranker) -> None:
    use(ranker, "top", FakeScript([0, 0, "", ""]))
    assert await ranker.top("EU", 10) == {"region": "EU", "entries": [], "total": 0,
                                          "next": None}


async def test_rank_is_one_based(ranker: Ranker) -> None:
    rank = use(ranker, "rank", FakeScript([0, "Alice", "EU", "100", 4, "", '{"c":1}']))
    assert await ranker.rank("EU", "alice") == {
        "rank": 1, "user_id": "alice", "name": "Alice", "region": "EU", "score": 100,
        "metadata": {"c": 1}, "total": 4, "percentile": 75.0, "gap_to_next": None}
    assert rank.calls[0][0] == ["lb:b1:board:EU", "lb:b1:user:alice", "lb:b1:epoch",
                                "lb:b1:warming"]


async def test_rank_absent_user(ranker: Ranker) -> None:
    use(ranker, "rank", FakeScript(None))
    assert await ranker.rank("EU", "nobody") is None


async def test_around_splits_self_from_neighbours(ranker: Ranker) -> None:
    # self at rank0 3 (rank 4), slice starts at rank0 2
    flat = ["b", "B", "EU", "30", "", "me", "Me", "EU", "20", "", "d", "D", "EU", "10", ""]
    around = use(ranker, "around", FakeScript([3, 2, 9, *flat]))
    out = await ranker.around("EU", "me", 1)
    assert out is not None
    assert out["self"] == {"rank": 4, "user_id": "me", "name": "Me", "region": "EU", "score": 20,
                           "metadata": {}}
    assert [(e["rank"], e["user_id"]) for e in out["around"]] == [(3, "b"), (5, "d")]
    assert around.calls[0][1] == [1, "lb:b1:user:"]


async def test_around_at_top_of_board(ranker: Ranker) -> None:
    use(ranker, "around", FakeScript([0, 0, 2, "me", "Me", "EU", "99", "", "x", "X", "EU", "1",
                                      ""]))
    out = await ranker.around("EU", "me", 5)
    assert out is not None and out["self"]["rank"] == 1
    assert [e["user_id"] for e in out["around"]] == ["x"]


async def test_around_absent_user(ranker: Ranker) -> None:
    use(ranker, "around", FakeScript(False))
    assert await ranker.around("EU", "nobody", 3) is None


@pytest.mark.parametrize("exc", [RedisConnectionError("down"), OSError("reset"), RedisTimeoutError()])
async def test_redis_down_becomes_unavailable(ranker: Ranker, exc: BaseException) -> None:
    use(ranker, "rank", FakeScript(exc))
    with pytest.raises(Unavailable) as info:
        await ranker.rank("EU", "a")
    assert info.value.status_code == 503
