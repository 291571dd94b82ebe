"""Stream events as the writers read them: one compact field, or the older one-field-per-value form.

The write scripts append each event as ONE field, ``e``, holding
``score version reached ts region user_id name`` separated by single spaces (the name comes last:
it is the only value that may contain a space). Reading it costs a split and four ``int`` calls
instead of a fourteen-string reply, a dict and a pydantic model per entry. Entries in the older
form (``user_id``, ``name``, ``region``, ``score``, ``version``, ``reached``, ``ts``), still on a
stream after an upgrade, are read as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import ValidationError

from leaderboard.models import ScoreEvent
from leaderboard.settings import MAX_SCORE

FIELD = "e"
FIELDS = ("user_id", "name", "region", "score", "version", "reached", "ts")
_USER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


class StoredEvent(NamedTuple):
    """One write event, in the scripts' field order (also a fold row)."""

    user_id: str
    name: str
    region: str
    score: int
    version: int
    reached: int
    ts: int


class BadEvent(ValueError):
    """A stream entry that is not a valid event; the message says why."""


def encode(e: StoredEvent) -> str:
    """The compact field's value (the write scripts build the same string in Lua)."""
    return f"{e.score} {e.version} {e.reached} {e.ts} {e.region} {e.user_id} {e.name}"


def decode(fields: Mapping[str, str]) -> StoredEvent:
    """The event in a stream entry of either form; BadEvent if it is not a valid one."""
    value = fields.get(FIELD)
    if value is None:
        return _legacy(fields)
    parts = value.split(" ", 6)
    if len(parts) != 7:
        raise BadEvent(f"expected 7 space-separated values, got {len(parts)}")
    try:
        score, version, reached, ts = int(parts[0]), int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError as exc:
        raise BadEvent(f"not an integer: {exc}") from None
    region, user_id, name = parts[4], parts[5], parts[6]
    if not -MAX_SCORE <= score <= MAX_SCORE or version < 1 or reached < 1 or ts < 0:
        raise BadEvent("score, version, reached or ts out of range")
    if not _USER_ID.fullmatch(user_id) or not _NAME.fullmatch(name) or not 0 < len(region) <= 50:
        raise BadEvent("malformed user_id, name or region")
    return StoredEvent(user_id, name, region, score, version, reached, ts)


def _legacy(fields: Mapping[str, str]) -> StoredEvent:
    try:
        e = ScoreEvent.model_validate(fields)
    except ValidationError as exc:
        raise BadEvent(str(exc.errors(include_url=False))) from None
    return StoredEvent(e.user_id, e.name, e.region, e.score, e.version, e.reached, e.ts)


def named(fields: Mapping[str, str]) -> dict[str, str]:
    """An entry's values by name whichever its form (the raw fields if it is not an event)."""
    try:
        e = decode(fields)
    except BadEvent:
        return dict(fields)
    return {name: str(value) for name, value in zip(FIELDS, e, strict=True)}
