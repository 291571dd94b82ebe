"""Request models are strict; ScoreEvent parses a stream entry's string fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from leaderboard.models import (
    Claims,
    LoginRequest,
    RegisterRequest,
    ScoreAdd,
    ScoreCreate,
    ScoreEvent,
    ScoreUpdate,
)

MAX = 2**53 - 1
REG = {"user_id": "alice", "name": "Alice", "region": "EU", "password": "12345678"}


def _json(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    """Validate as FastAPI does for a JSON body."""
    return model.model_validate_json(json.dumps(body))


# -- scores ---------------------------------------------------------------------------------


@pytest.mark.parametrize("v", [0, 1, -1, MAX, -MAX, 12345])
@pytest.mark.parametrize(("model", "field"), [(ScoreUpdate, "score"), (ScoreAdd, "delta"),
                                              (ScoreCreate, "initialScore")])
def test_scores_in_range_accepted(model: type[BaseModel], field: str, v: int) -> None:
    assert getattr(_json(model, {field: v}), field) == v
    assert getattr(model.model_validate({field: v}), field) == v


@pytest.mark.parametrize(
    "v", [MAX + 1, -MAX - 1, 2**63, -(2**63), 1.0, 1.5, 1e3, True, False, "1", "abc", None, [1], {}]
)
@pytest.mark.parametrize(("model", "field"), [(ScoreUpdate, "score"), (ScoreAdd, "delta"),
                                              (ScoreCreate, "initialScore")])
def test_bad_scores_rejected(model: type[BaseModel], field: str, v: Any) -> None:
    with pytest.raises(ValidationError):
        _json(model, {field: v})
    with pytest.raises(ValidationError):
        model.model_validate({field: v})


@pytest.mark.parametrize("model", [ScoreUpdate, ScoreAdd])
def test_score_field_required(model: type[BaseModel]) -> None:
    with pytest.raises(ValidationError):
        _json(model, {})


def test_score_create_defaults() -> None:
    body = _json(ScoreCreate, {})
    assert body.initialScore == 0 and body.region is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("region", ["", "x" * 51, 5, True])
def test_score_create_bad_region(region: Any) -> None:
    with pytest.raises(ValidationError):
        _json(ScoreCreate, {"region": region})


# -- register / login -----------------------------------------------------------------------


def test_register_minimal_and_with_initial_score() -> None:
    r = _json(RegisterRequest, REG)
    assert r.initialScore is None  # type: ignore[attr-defined]
    r = _json(RegisterRequest, {**REG, "initialScore": -MAX})
    assert r.initialScore == -MAX  # type: ignore[attr-defined]


@pytest.mark.parametrize("uid", ["a", "A" * 64, "a.b-c_d", "0", "..", "-"])
def test_user_id_accepted(uid: str) -> None:
    assert _json(RegisterRequest, {**REG, "user_id": uid}).user_id == uid  # type: ignore[attr-defined]
    assert _json(LoginRequest, {"user_id": uid, "password": "x"}).user_id == uid  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "uid", ["", "A" * 65, "a b", "a:b", "a/b", "é", "alice\n", "\nalice", "a*", 123, None]
)
def test_user_id_rejected(uid: Any) -> None:
    with pytest.raises(ValidationError):
        _json(RegisterRequest, {**REG, "user_id": uid})
    with pytest.raises(ValidationError):
        _json(LoginRequest, {"user_id": uid, "password": "whatever"})


@pytest.mark.parametrize("pw", ["", "1234567", 12345678, None])
def test_register_password_at_least_8(pw: Any) -> None:
    with pytest.raises(ValidationError):
        _json(RegisterRequest, {**REG, "password": pw})


def test_register_password_bounds() -> None:
    assert _json(RegisterRequest, {**REG, "password": "8" * 8})
    assert _json(RegisterRequest, {**REG, "password": "p" * 1024})
    with pytest.raises(ValidationError):
        _json(RegisterRequest, {**REG, "password": "p" * 1025})


def test_login_password_any_nonempty() -> None:
    assert _json(LoginRequest, {"user_id": "a", "password": "x"})
    for pw in ["", 1, None]:
        with pytest.raises(ValidationError):
            _json(LoginRequest, {"user_id": "a", "password": pw})


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("name", "n" * 201), ("name", 1), ("region", ""), ("region", "r" * 51),
     ("region", None), ("initialScore", 1.0), ("initialScore", MAX + 1), ("initialScore", "5")],
)
def test_register_rejects(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        _json(RegisterRequest, {**REG, field: value})


@pytest.mark.parametrize("missing", ["user_id", "name", "region", "password"])
def test_register_requires(missing: str) -> None:
    body = {k: v for k, v in REG.items() if k != missing}
    with pytest.raises(ValidationError):
        _json(RegisterRequest, body)


# -- claims ---------------------------------------------------------------------------------


def test_claims_ignore_extra_and_validate_sub() -> None:
    base = {"sub": "a", "name": "A", "region": "EU", "iat": 1, "exp": 2, "iss": "i", "aud": "a"}
    assert Claims.model_validate({**base, "jti": "x"}).sub == "a"
    with pytest.raises(ValidationError):
        Claims.model_validate({**base, "sub": "not valid"})


# -- stream events --------------------------------------------------------------------------

EVENT = {"user_id": "alice", "name": "Alice", "region": "EU", "score": "-42",
         "version": "1700000000000001", "reached": "1700000000000000", "ts": "1700000000000"}


def test_score_event_parses_stream_strings() -> None:
    ev = ScoreEvent.model_validate(EVENT)
    assert ev.score == -42 and isinstance(ev.score, int)
    assert ev.version == 1_700_000_000_000_001
    assert ev.reached == 1_700_000_000_000_000
    assert ev.ts == 1_700_000_000_000
    assert (ev.user_id, ev.name, ev.region) == ("alice", "Alice", "EU")


@pytest.mark.parametrize("score", [str(MAX), str(-MAX), "0"])
def test_score_event_score_bounds_ok(score: str) -> None:
    assert ScoreEvent.model_validate({**EVENT, "score": score}).score == int(score)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", str(MAX + 1)),
        ("score", str(-MAX - 1)),
        ("score", "abc"),
        ("score", "1.5"),
        ("score", ""),
        ("version", "0"),
        ("version", "-1"),
        ("reached", "0"),
        ("ts", "-1"),
        ("user_id", "bad id"),
        ("user_id", ""),
        ("name", ""),
        ("region", ""),
    ],
)
def test_score_event_bad_fields_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError):
        ScoreEvent.model_validate({**EVENT, field: value})


@pytest.mark.parametrize("missing", list(EVENT))
def test_score_event_requires_every_field(missing: str) -> None:
    with pytest.raises(ValidationError):
        ScoreEvent.model_validate({k: v for k, v in EVENT.items() if k != missing})
