"""Season schedules: which season a moment belongs to, and when each season starts and ends.

A board's ``reset`` is ``None`` (one season forever), a fixed period in whole seconds, or a
5-field cron expression in UTC (``minute hour day-of-month month day-of-week``; ``*``, lists,
ranges, steps, month and day names; ``@hourly`` ``@daily`` ``@weekly`` ``@monthly`` ``@yearly``).
Season 1 starts at ``start``; season k+1 starts at the k-th boundary strictly after ``start``
(a period: ``start + k * period``; cron: the k-th matching minute). A ``start`` that is not on a
cron tick therefore gives a shorter first season, ending at the first tick after it. Seasons are
half-open, ``[started_at, ends_at)``: a moment equal to a boundary belongs to the new season.

Time is integer microseconds since the Unix epoch (the unit of Redis ``TIME`` and of versions),
so boundaries are exact and UTC-only (no DST). Cron counting is per day: a matching day has the
same ticks as every other, so counting ticks is counting matching days, cached per month.
"""

from __future__ import annotations

import bisect
import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

US = 1_000_000
DAY_US = 86_400 * US
MINUTE_US = 60 * US
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_PERIOD_S = 100 * 366 * 86_400  # a century: beyond that a board never resets in practice

MACROS = {
    "@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# (name, low, high, names) per field, in cron order
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day-of-month", 1, 31, {}),
          ("month", 1, 12, MONTHS), ("day-of-week", 0, 7, DAYS))


def to_us(t: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float)."""
    if t.tzinfo is None:
        raise ValueError("a time needs a UTC offset")
    d = t - EPOCH
    return (d.days * 86_400 + d.seconds) * US + d.microseconds


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _value(text: str, low: int, high: int, names: dict[str, int], name: str) -> int:
    v = names.get(text.lower()) if names else None
    if v is None:
        if not text.isdigit():
            raise ValueError(f"cron {name}: {text!r} is not a number" +
                             (" or a name" if names else ""))
        v = int(text)
    if not low <= v <= high:
        raise ValueError(f"cron {name}: {v} is outside {low}-{high}")
    return v


def _part(part: str, low: int, high: int, names: dict[str, int], name: str) -> set[int]:
    """One comma-separated item: ``*``, ``a``, ``a-b``, each optionally ``/step``."""
    base, _, step_text = part.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise ValueError(f"cron {name}: step {step_text!r} must be a whole number >= 1")
        step = int(step_text)
    if base == "*":
        first, last = low, high
    elif "-" in base:
        a, _, b = base.partition("-")
        first, last = (_value(a, low, high, names, name), _value(b, low, high, names, name))
        if first > last:
            raise ValueError(f"cron {name}: range {base!r} runs backwards")
    else:
        if step_text:
            raise ValueError(f"cron {name}: a step needs '*' or a range, not {part!r}")
        first = last = _value(base, low, high, names, name)
    return set(range(first, last + 1, step))


def _field(text: str, low: int, high: int, names: dict[str, int], name: str) -> frozenset[int]:
    if not text:
        raise ValueError(f"cron {name}: empty")
    values: set[int] = set()
    for part in text.split(","):
        values |= _part(part, low, high, names, name)
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed 5-field cron expression (UTC)."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    doms: frozenset[int]
    months: frozenset[int]
    dows: frozenset[int]  # 0 = Sunday (7 is folded into 0)
    dom_star: bool  # the field starts with '*': standard cron's day rule (see day_matches)
    dow_star: bool

    @classmethod
    def parse(cls, text: str) -> Cron:
        expr = MACROS.get(text.strip().lower(), text) if text.strip().startswith("@") else text
        if expr.strip().startswith("@"):
            raise ValueError(f"unknown schedule {text.strip()!r} (use one of {', '.join(MACROS)})")
        parts = expr.split()
        if len(parts) != 5:
            raise ValueError(f"a cron expression has 5 fields (minute hour day-of-month month "
                             f"day-of-week), {text!r} has {len(parts)}")
        sets = [_field(p, lo, hi, names, name) for p, (name, lo, hi, names)
                in zip(parts, FIELDS, strict=True)]
        cron = cls(text.strip(), tuple(sorted(sets[0])), tuple(sorted(sets[1])), sets[2], sets[3],
                   frozenset(d % 7 for d in sets[4]), parts[2].startswith("*"),
                   parts[4].startswith("*"))
        if not cron._ever_matches():
            raise ValueError(f"cron {text!r} never matches a day (e.g. the 30th of February)")
        return cron

    def day_matches(self, year: int, month: int, day: int) -> bool:
        """Standard cron: day-of-month OR day-of-week when both are restricted, else both."""
        if month not in self.months:
            return False
        dom = day in self.doms
        dow = (calendar.weekday(year, month, day) + 1) % 7 in self.dows
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def _ever_matches(self) -> bool:
        if not self.dow_star:
            return True  # a restricted day-of-week matches some day of every month (AND or OR)
        longest = {m: 29 if m == 2 else calendar.monthrange(2001, m)[1] for m in self.months}
        return any(d <= longest[m] for m in self.months for d in self.doms)

    @property
    def ticks_per_day(self) -> int:
        return len(self.minutes) * len(self.hours)

    def day_ticks_us(self) -> list[int]:
        """Offsets (µs from midnight) of the ticks of a matching day, ascending."""
        return sorted((h * 60 + m) * MINUTE_US for h in self.hours for m in self.minutes)


def _month_prefix(cron: Cron, year: int, month: int) -> tuple[int, ...]:
    """p[d] = matching days among days 1..d of the month (p[0] = 0)."""
    p = [0]
    for d in range(1, calendar.monthrange(year, month)[1] + 1):
        p.append(p[-1] + cron.day_matches(year, month, d))
    return tuple(p)


@dataclass
class _DayCounter:
    """Matching days of a cron, counted per month from an origin month (cached)."""

    cron: Cron
    origin: tuple[int, int]  # (year, month) of the first counted month
    # _cum[i] = matching days in the months before origin + i; grows as later months are asked
    _cum: list[int] = field(default_factory=lambda: [0])
    _prefixes: dict[tuple[int, int], tuple[int, ...]] = field(default_factory=dict)

    def prefix(self, y: int, m: int) -> tuple[int, ...]:
        """The month's prefix counts (``_month_prefix``), cached per schedule."""
        p = self._prefixes.get((y, m))
        if p is None:
            p = self._prefixes[(y, m)] = _month_prefix(self.cron, y, m)
        return p

    def _month(self, i: int) -> tuple[int, int]:
        y, m = divmod(self.origin[0] * 12 + self.origin[1] - 1 + i, 12)
        return y, m + 1

    def _days_in(self, i: int) -> int:
        return self.prefix(*self._month(i))[-1]

    def _extend_to(self, i: int) -> None:
        while len(self._cum) <= i + 1:
            self._cum.append(self._cum[-1] + self._days_in(len(self._cum) - 1))

    def before(self, y: int, m: int, d: int) -> int:
        """Matching days from the origin up to (not including) day ``d`` of month ``m``."""
        i = y * 12 + m - 1 - (self.origin[0] * 12 + self.origin[1] - 1)
        self._extend_to(i)
        return self._cum[i] + self.prefix(y, m)[d - 1]

    def nth_day(self, n: int) -> tuple[int, int, int]:
        """The n-th (0-based) matching day from the origin."""
        while self._cum[-1] <= n:
            if len(self._cum) > 12 * 8000:
                raise ValueError("no such cron tick before the year 9999")
            self._extend_to(len(self._cum) - 1)
        i = bisect.bisect_right(self._cum, n) - 1
        y, m = self._month(i)
        # the day whose prefix count first exceeds what is left in this month
        return y, m, bisect.bisect_right(self.prefix(y, m), n - self._cum[i])


class Schedule:
    """The seasons of one board: ``season_at(t)`` and ``bounds(k)``, times in µs (UTC)."""

    def __init__(self, reset: Cron | int | None, start_us: int) -> None:
        self.reset = reset
        self.start_us = start_us
        self._counter: _DayCounter | None = None
        if isinstance(reset, Cron):
            s = from_us(start_us)
            self._counter = _DayCounter(reset, (s.year, s.month))
            self._ticks = reset.day_ticks_us()
            self._start_index = self._ticks_through(start_us)

    def season_at(self, t_us: int) -> int | None:
        """The 1-based season containing ``t_us``; None before the first season starts."""
        if t_us < self.start_us:
            return None
        if self.reset is None:
            return 1
        if isinstance(self.reset, int):
            return (t_us - self.start_us) // (self.reset * US) + 1
        return self._ticks_through(t_us) - self._start_index + 1

    def bounds(self, k: int) -> tuple[int, int | None]:
        """Season k's ``[started_at, ends_at)`` in µs; ``ends_at`` None when it never ends."""
        if k < 1:
            raise ValueError("seasons are numbered from 1")
        if self.reset is None:
            if k != 1:
                raise ValueError("a board without reset has season 1 only")
            return self.start_us, None
        return self._boundary(k - 1), self._boundary(k)

    def _boundary(self, j: int) -> int:
        """The start of season j + 1: ``start`` for j = 0, else the j-th boundary after it."""
        if j == 0:
            return self.start_us
        if isinstance(self.reset, int):
            return self.start_us + j * self.reset * US
        return self._tick(self._start_index + j - 1)

    def _ticks_through(self, t_us: int) -> int:
        """Cron ticks in [midnight of start's month's first day, t] (inclusive)."""
        assert self._counter is not None
        day = from_us(t_us)
        days = self._counter.before(day.year, day.month, day.day)
        month = self._counter.prefix(day.year, day.month)
        today = 0
        if month[day.day] > month[day.day - 1]:  # the day itself matches
            today = bisect.bisect_right(self._ticks, t_us % DAY_US)
        return days * len(self._ticks) + today

    def _tick(self, n: int) -> int:
        """The n-th (0-based) cron tick counted from the counter's origin, in µs."""
        assert self._counter is not None
        per_day = len(self._ticks)
        y, m, d = self._counter.nth_day(n // per_day)
        return to_us(datetime(y, m, d, tzinfo=UTC)) + self._ticks[n % per_day]


def parse_reset(value: object) -> Cron | int | None:
    """A board's ``reset`` field: None, whole seconds >= 1, or a cron expression / macro."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_PERIOD_S:
            raise ValueError(f"a reset period is whole seconds from 1 to {MAX_PERIOD_S}")
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            raise ValueError("a reset period is a JSON number of seconds (3600), not a string")
        return Cron.parse(value)
    raise ValueError("reset must be null, a cron expression or whole seconds >= 1")
