"""Board definitions: the POST /boards body (``BoardCreate``), the internal ``Board``, operators.

A board has an id, a title, an order (``desc``: highest first; ``asc``: lowest first), an
operator (``set``: the last submission stands, ``delta`` adds; ``best``: the better of old and
new by the order; ``incr``: adds ``delta`` from 0), a ``reset`` schedule and a ``start``
(see ``leaderboard.seasons``). ``DEFAULT`` is the seed's board: desc, set (with add), no reset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StrictStr, field_validator

from leaderboard.seasons import Schedule, from_us, parse_reset, to_us
from leaderboard.settings import MAX_SCORE

Order = Literal["desc", "asc"]
Operator = Literal["set", "best", "incr"]
Kind = Literal["score", "delta"]

BOARD_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
BoardId = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=BOARD_ID)]
Title = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")
FIRST_START = datetime(1970, 1, 1, tzinfo=UTC)
LAST_START = datetime(9000, 1, 1, tzinfo=UTC)


def parse_rfc3339(text: str) -> int:
    """An RFC 3339 time (offset required, fractions beyond µs truncated) in µs since the epoch."""
    m = RFC3339.match(text)
    if m is None:
        raise ValueError("start must be an RFC 3339 time with an offset, "
                         "e.g. 2026-12-01T00:00:00Z")
    date, clock, frac, offset = m.groups()
    frac = (frac or "0")[:6].ljust(6, "0")
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        t = datetime.fromisoformat(f"{date}T{clock}.{frac}{offset}")
    except ValueError as exc:
        raise ValueError(f"start: {exc}") from None
    if not FIRST_START <= t < LAST_START:
        raise ValueError("start must lie between 1970 and 9000")
    return to_us(t)


def format_rfc3339(us: int) -> str:
    """µs since the epoch as RFC 3339 in UTC with a Z (µs shown only when not zero)."""
    t = from_us(us)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


class BoardCreate(BaseModel):
    """The body of POST /boards. Unknown fields are ignored, as everywhere in the API."""

    id: BoardId
    title: Title | None = None
    order: Order = "desc"
    operator: Operator = "set"
    reset: int | str | None = None
    start: StrictStr | None = None

    @field_validator("reset", mode="before")
    @classmethod
    def _reset(cls, v: object) -> object:
        parse_reset(v)  # refuses floats and booleans too, with one clear message
        return v.strip() if isinstance(v, str) else v

    @field_validator("start")
    @classmethod
    def _start(cls, v: str | None) -> str | None:
        if v is not None:
            parse_rfc3339(v)
        return v

    def board(self, now_us: int) -> Board:
        """The board this body defines; ``now_us`` (creation time) is the default start."""
        start = now_us if self.start is None else parse_rfc3339(self.start)
        return Board(self.id, self.title or self.id, self.order, self.operator, self.reset, start,
                     generation_of(now_us))


def generation_of(created_us: int) -> str:
    """Base36 of the creation time in µs: in every Redis key of the board (docs/boards.md)."""
    digits, n = "", created_us
    while n:
        n, d = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + digits
    return digits or "0"


@dataclass(frozen=True)
class Board:
    """A board as the service uses it (cached in every gateway and shard)."""

    id: str
    title: str
    order: Order = "desc"
    operator: Operator = "set"
    reset: int | str | None = None  # as given: seconds, or the cron text / macro
    start_us: int = 0
    generation: str = ""  # '' only for DEFAULT, whose keys are the legacy ones
    schedule: Schedule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", Schedule(parse_reset(self.reset), self.start_us))

    @property
    def resets(self) -> bool:
        return self.reset is not None

    def accepts(self, kind: Kind) -> bool:
        """Whether a write of this kind fits the operator (else 422 ``operator_mismatch``)."""
        if self.operator == "best":
            return kind == "score"
        if self.operator == "incr":
            return kind == "delta"
        return True

    def sort_key(self, score: int) -> int:
        """The ZSET score: ``score`` on desc boards, ``-score`` on asc ones (reads use ZREV*)."""
        return score if self.order == "desc" else -score

    def row(self) -> dict[str, object]:
        """The columns of the ``boards`` table (migrations/0002_boards.sql) this board fills."""
        return {"id": self.id, "title": self.title, "sort_order": self.order,
                "operator": self.operator,
                "reset_seconds": self.reset if isinstance(self.reset, int) else None,
                "reset_cron": self.reset if isinstance(self.reset, str) else None,
                "start_at": from_us(self.start_us), "generation": self.generation}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Board:
        """A board from its ``boards`` row (an asyncpg Record or a dict)."""
        reset = row["reset_seconds"] if row["reset_seconds"] is not None else row["reset_cron"]
        return cls(row["id"], row["title"], row["sort_order"], row["operator"], reset,
                   to_us(row["start_at"]), row["generation"])

    def as_dict(self) -> dict[str, object]:
        """The board as the API shows it."""
        return {"id": self.id, "title": self.title, "order": self.order,
                "operator": self.operator, "reset": self.reset,
                "start": format_rfc3339(self.start_us)}


@dataclass(frozen=True)
class Applied:
    """What an operator makes of a submission.

    ``stored``: a new version is written and queued for Postgres (False only for a ``best``
    submission that does not improve: ``"improved": false``). ``reached``: the score is reached
    anew, so the entry's tie position moves to this write's version.
    """

    score: int
    stored: bool
    reached: bool


def apply_operator(board: Board, old: int | None, kind: Kind, value: int) -> Applied:
    """The operator as the write script runs it (``old`` None: no entry this season).

    Raises ValueError for a kind the operator refuses or a result beyond ±(2^53 - 1).
    """
    if not board.accepts(kind):
        raise ValueError(f"operator_mismatch: a {board.operator} board takes no {kind}")
    if abs(value) > MAX_SCORE:
        raise ValueError("score_out_of_range")
    if kind == "delta":
        new = (old or 0) + value
        if abs(new) > MAX_SCORE:
            raise ValueError("score_out_of_range")
        return Applied(new, True, old is None or new != old)
    if board.operator == "best" and old is not None:
        better = value > old if board.order == "desc" else value < old
        return Applied(value, True, True) if better else Applied(old, False, False)
    return Applied(value, True, old is None or value != old)


DEFAULT = Board("default", "default", "desc", "set", None, 0, "")
