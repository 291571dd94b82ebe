"""Stream events as the writers read them: one compact field, or the older one-field-per-value form.

The write scripts append each event as ONE field, ``e``, holding
``score version reached ts region user_id name`` separated by single spaces (the name comes last:
it is the only value that may contain a space). Reading it costs a split and four ``int`` calls
instead of a fourteen-string reply, a dict and a pydantic model per entry. Entries in the older
form (``user_id``, ``name``, ``region``, ``score``, ``version``, ``reached``, ``ts``), still on a
stream after an upgrade, are read as before.

An event of another board than ``default`` or another season than 1 also carries a second field,
``b``, holding ``board season`` (docs/boards.md). Its absence means board ``default`` season 1, so
the default board's events are exactly what they were, and events written before boards existed
read as theirs. An event whose write carried metadata also has ``m``, its compact JSON
(``leaderboard/metadata.py``); none means no metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from pydantic import ValidationError

from leaderboard.metadata import valid_stored
from leaderboard.models import ScoreEvent
from leaderboard.settings import MAX_SCORE

FIELD = "e"
BOARD_FIELD = "b"
META_FIELD = "m"
FIELDS = ("user_id", "name", "region", "score", "version", "reached", "ts", "board", "season",
          "metadata")
_BOARD = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SEASON = re.compile(r"[0-9]{1,18}")
_USER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


class StoredEvent(NamedTuple):
    """One write event, in the scripts' field order (its first seven fields: a fold row)."""

    user_id: str
    name: str
    region: str
    score: int
    version: int
    reached: int
    ts: int
    board: str = "default"
    season: int = 1
    metadata: str = ""  # compact JSON; '' = none

    @property
    def slot(self) -> tuple[str, int, str]:
        """What Postgres keys a row by: (board, season, user_id)."""
        return self.board, self.season, self.user_id


class BadEvent(ValueError):
    """A stream entry that is not a valid event; the message says why."""


def encode(e: StoredEvent) -> str:
    """The compact field's value (the write scripts build the same string in Lua)."""
    return f"{e.score} {e.version} {e.reached} {e.ts} {e.region} {e.user_id} {e.name}"


def encode_fields(e: StoredEvent) -> dict[str, str]:
    """The stream entry's fields: ``e``, plus ``b`` unless the event is board default season 1."""
    fields = {FIELD: encode(e)}
    if (e.board, e.season) != ("default", 1):
        fields[BOARD_FIELD] = f"{e.board} {e.season}"
    if e.metadata:
        fields[META_FIELD] = e.metadata
    return fields


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
    board, season = _board(fields.get(BOARD_FIELD))
    meta = fields.get(META_FIELD, "")
    if meta and not valid_stored(meta):
        raise BadEvent("metadata is not a JSON object of at most 512 bytes")
    return StoredEvent(user_id, name, region, score, version, reached, ts, board, season, meta)


def board_of(fields: Mapping[str, str]) -> tuple[str, int]:
    """The board and season a stream entry names (BadEvent if its ``b`` field is malformed)."""
    return _board(fields.get(BOARD_FIELD))


def _board(value: str | None) -> tuple[str, int]:
    """The ``b`` field's board and season (absent: default, 1)."""
    if value is None:
        return "default", 1
    parts = value.split(" ")
    if len(parts) != 2 or not _BOARD.fullmatch(parts[0]) or not _SEASON.fullmatch(parts[1]):
        raise BadEvent(f"malformed board and season: {value[:80]!r}")
    season = int(parts[1])
    if season < 1:
        raise BadEvent("season out of range")
    return parts[0], season


def _legacy(fields: Mapping[str, str]) -> StoredEvent:
    try:
        e = ScoreEvent.model_validate(fields)
    except ValidationError as exc:
        raise BadEvent(str(exc.errors(include_url=False))) from None
    return StoredEvent(e.user_id, e.name, e.region, e.score, e.version, e.reached, e.ts, e.board,
                       e.season, e.metadata)


def named(fields: Mapping[str, str]) -> dict[str, str]:
    """An entry's values by name whichever its form (the raw fields if it is not an event)."""
    try:
        e = decode(fields)
    except BadEvent:
        return dict(fields)
    out = {name: str(value) for name, value in zip(FIELDS, e, strict=True)}
    if e.slot[:2] == ("default", 1):
        del out["board"], out["season"]
    if not e.metadata:
        del out["metadata"]
    return out
