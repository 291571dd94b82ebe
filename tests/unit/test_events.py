"""Stream events: the compact form round-trips, the older form still reads, bad ones fail."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.pipeline.events import (
    BOARD_FIELD,
    FIELD,
    META_FIELD,
    BadEvent,
    StoredEvent,
    decode,
    encode,
    encode_fields,
    named,
)
from leaderboard.settings import MAX_SCORE

GOOD = StoredEvent("ann.1", "Ann  Lee ", "EU", -42, 1_700_000_000_000_001, 1_700_000_000_000_000,
                   1_700_000_000_000)

names = st.text(st.characters(codec="utf-8", blacklist_characters=[
    chr(c) for c in [*range(0x20), 0x7F]]), min_size=1, max_size=200)


@given(
    user=st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    name=names,
    score=st.integers(-MAX_SCORE, MAX_SCORE),
    version=st.integers(1, 2**63 - 1),
)
def test_compact_form_round_trips(user: str, name: str, score: int, version: int) -> None:
    e = StoredEvent(user, name, "NA", score, version, version, version // 1000)
    assert decode({FIELD: encode(e)}) == e


def test_name_with_spaces_is_kept_whole() -> None:
    assert decode({FIELD: encode(GOOD)}).name == "Ann  Lee "


def test_older_multi_field_form_still_reads() -> None:
    old = {"user_id": "ann.1", "name": "Ann  Lee ", "region": "EU", "score": "-42",
           "version": "1700000000000001", "reached": "1700000000000000", "ts": "1700000000000"}
    assert decode(old) == GOOD
    assert named(old) == old
    assert named({FIELD: encode(GOOD)}) == old


@pytest.mark.parametrize("value", [
    "", "1 2 3 4 EU ann", "1.5 2 3 4 EU ann Ann", "x 2 3 4 EU ann Ann", "1 0 3 4 EU ann Ann",
    "1 2 0 4 EU ann Ann", "1 2 3 -1 EU ann Ann", f"{MAX_SCORE + 1} 2 3 4 EU ann Ann",
    "1 2 3 4 EU bad/id Ann", "1 2 3 4 EU ann Bad\x00name", "1 2 3 4  ann Ann",
    f"1 2 3 4 EU ann {'x' * 201}", f"1 2 3 4 EU {'u' * 65} Ann",
])
def test_malformed_compact_events_are_refused(value: str) -> None:
    with pytest.raises(BadEvent):
        decode({FIELD: value})


def test_malformed_old_event_is_refused_and_kept_by_name() -> None:
    bad = {"user_id": "bad", "score": "1.5"}
    with pytest.raises(BadEvent):
        decode(bad)
    assert named(bad) == bad


def test_default_board_season_1_events_are_the_one_field_form() -> None:
    assert encode_fields(GOOD) == {FIELD: encode(GOOD)}
    assert decode({FIELD: encode(GOOD)}).slot == ("default", 1, "ann.1")


@given(board=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True),
       season=st.integers(1, 10**18 - 1))
def test_board_and_season_round_trip(board: str, season: int) -> None:
    e = GOOD._replace(board=board, season=season)
    fields = encode_fields(e)
    assert decode(fields) == e
    if (board, season) != ("default", 1):
        assert fields[BOARD_FIELD] == f"{board} {season}"
        assert named(fields)["board"] == board and named(fields)["season"] == str(season)
        assert decode(named(fields)) == e  # a dead letter's fields by name read back the same


@pytest.mark.parametrize("value", ["", "speed", "speed 0", "speed -1", "Speed 1", "speed 1 2",
                                   "speed x", "speed ²", "speed  1", f"{'b' * 65} 1"])
def test_malformed_board_fields_are_refused(value: str) -> None:
    with pytest.raises(BadEvent):
        decode({FIELD: encode(GOOD), BOARD_FIELD: value})


def test_metadata_travels_in_its_own_field_only_when_there_is_some() -> None:
    e = GOOD._replace(metadata='{"car":"red é"}')
    assert encode_fields(e) == {FIELD: encode(GOOD), META_FIELD: '{"car":"red é"}'}
    assert decode(encode_fields(e)) == e
    assert named(encode_fields(e))["metadata"] == '{"car":"red é"}'
    assert META_FIELD not in encode_fields(GOOD) and "metadata" not in named(encode_fields(GOOD))


@pytest.mark.parametrize("meta", ["[1]", '"s"', "{", "{" + '"k":"' + "x" * 600 + '"}'])
def test_metadata_that_is_not_an_object_within_the_limit_is_a_bad_event(meta: str) -> None:
    with pytest.raises(BadEvent):
        decode({FIELD: encode(GOOD), META_FIELD: meta})
