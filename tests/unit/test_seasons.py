"""Season schedules: cron parsing, periods, season_at and bounds against brute force."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.seasons import MINUTE_US, US, Cron, Schedule, from_us, parse_reset, to_us


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return to_us(datetime(year, month, day, hour, minute, tzinfo=UTC))


def iso(us: int | None) -> str | None:
    return None if us is None else from_us(us).isoformat()


def brute_ticks(cron: Cron, start: int, count: int) -> list[int]:
    """The first ``count`` matching minutes strictly after ``start``, one minute at a time."""
    out: list[int] = []
    t = start - start % MINUTE_US + MINUTE_US
    while len(out) < count:
        d = from_us(t)
        if not cron.day_matches(d.year, d.month, d.day):  # skip to the next midnight
            t = to_us(datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=1))
            continue
        if d.minute in cron.minutes and d.hour in cron.hours:
            out.append(t)
        t += MINUTE_US
    return out


def brute_matches(expr: str, d: datetime) -> bool:
    """Standard cron semantics written out directly (names aside)."""
    m, h, dom, mon, dow = expr.split()

    def has(field: str, v: int, lo: int, hi: int) -> bool:
        for part in field.split(","):
            base, _, step = part.partition("/")
            a, b = (lo, hi) if base == "*" else (
                (int(base.split("-")[0]), int(base.split("-")[1])) if "-" in base
                else (int(base), int(base)))
            if v in range(a, b + 1, int(step or 1)):
                return True
        return False

    weekday = (d.weekday() + 1) % 7
    dow_hit = has(dow, weekday, 0, 7) or (weekday == 0 and has(dow, 7, 0, 7))
    dom_hit = has(dom, d.day, 1, 31)
    day = (dom_hit and dow_hit) if dom.startswith("*") or dow.startswith("*") else (
        dom_hit or dow_hit)
    return has(m, d.minute, 0, 59) and has(h, d.hour, 0, 23) and has(mon, d.month, 1, 12) and day


# --- parsing ---------------------------------------------------------------------------------

def test_fields_lists_ranges_steps_and_names() -> None:
    c = Cron.parse("*/15 9-17/4 1,15 jan-MAR,12 mon-fri")
    assert c.minutes == (0, 15, 30, 45) and c.hours == (9, 13, 17)
    assert c.doms == {1, 15} and c.months == {1, 2, 3, 12} and c.dows == {1, 2, 3, 4, 5}


def test_sunday_is_0_and_7() -> None:
    assert Cron.parse("0 0 * * 7").dows == {0} == Cron.parse("0 0 * * SUN").dows


@pytest.mark.parametrize(("macro", "expr"), [
    ("@hourly", "0 * * * *"), ("@daily", "0 0 * * *"), ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"), ("@yearly", "0 0 1 1 *"), ("@DAILY", "0 0 * * *"),
])
def test_macros(macro: str, expr: str) -> None:
    a, b = Cron.parse(macro), Cron.parse(expr)
    assert (a.minutes, a.hours, a.doms, a.months, a.dows) == (
        b.minutes, b.hours, b.doms, b.months, b.dows)


@pytest.mark.parametrize(("value", "message"), [
    ("* * * *", "5 fields"), ("* * * * * *", "5 fields"), ("", "5 fields"),
    ("60 * * * *", "minute: 60 is outside 0-59"), ("* 24 * * *", "hour: 24 is outside"),
    ("* * 0 * *", "day-of-month: 0 is outside 1-31"), ("* * * 13 *", "month: 13"),
    ("* * * * 8", "day-of-week: 8"), ("*/0 * * * *", "step '0'"), ("*/x * * * *", "step 'x'"),
    ("5-1 * * * *", "runs backwards"), ("5/2 * * * *", "needs '\\*' or a range"),
    ("a * * * *", "'a' is not a number"), ("* * * foo *", "is not a number or a name"),
    ("1,,2 * * * *", "empty|not a number"), ("0 0 30 2 *", "never matches"),
    ("0 0 31 4,6,9,11 *", "never matches"), ("@sometimes", "unknown schedule"),
    ("-1 * * * *", "not a number"),
])
def test_bad_cron_is_refused_with_a_clear_message(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_reset(value)


@pytest.mark.parametrize("value", [0, -5, True, False, 1.5, 100 * 366 * 86_400 + 1, [1], {}])
def test_bad_periods_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        parse_reset(value)


def test_reset_kinds() -> None:
    assert parse_reset(None) is None
    assert parse_reset(1) == 1
    assert isinstance(parse_reset("@weekly"), Cron)


def test_the_29th_of_february_is_a_valid_yearly_schedule() -> None:
    s = Schedule(Cron.parse("0 0 29 2 *"), at(2025, 1, 1))
    assert iso(s.bounds(1)[1]) == "2028-02-29T00:00:00+00:00"
    assert iso(s.bounds(2)[1]) == "2032-02-29T00:00:00+00:00"


# --- schedules ---------------------------------------------------------------------------------

def test_no_reset_is_one_season_from_start() -> None:
    s = Schedule(None, at(2026, 1, 1))
    assert s.season_at(at(2025, 12, 31)) is None
    assert s.season_at(at(2026, 1, 1)) == 1 and s.season_at(at(2999, 1, 1)) == 1
    assert s.bounds(1) == (at(2026, 1, 1), None)
    with pytest.raises(ValueError):
        s.bounds(2)


def test_period_seasons_are_half_open() -> None:
    start = at(2026, 1, 1)
    s = Schedule(3, start)
    assert s.season_at(start - 1) is None
    assert s.season_at(start) == 1
    assert s.season_at(start + 3 * US - 1) == 1 and s.season_at(start + 3 * US) == 2
    assert s.bounds(2) == (start + 3 * US, start + 6 * US)


def test_a_start_in_the_future_has_no_season_yet() -> None:
    s = Schedule(Cron.parse("@daily"), at(2030, 6, 1, 12))
    assert s.season_at(at(2026, 1, 1)) is None
    assert s.season_at(at(2030, 6, 1, 12)) == 1


def test_a_start_off_the_cron_grid_gives_a_short_first_season() -> None:
    s = Schedule(Cron.parse("@daily"), at(2026, 3, 10, 15, 30))
    assert s.bounds(1) == (at(2026, 3, 10, 15, 30), at(2026, 3, 11))
    assert s.bounds(2) == (at(2026, 3, 11), at(2026, 3, 12))
    assert s.season_at(at(2026, 3, 11) - 1) == 1 and s.season_at(at(2026, 3, 11)) == 2


def test_a_start_on_a_tick_gives_a_full_first_season() -> None:
    s = Schedule(Cron.parse("@hourly"), at(2026, 3, 10, 15))
    assert s.bounds(1) == (at(2026, 3, 10, 15), at(2026, 3, 10, 16))


def test_monthly_across_month_ends_and_a_leap_year() -> None:
    s = Schedule(Cron.parse("@monthly"), at(2028, 1, 31, 23, 59))
    ends = [iso(s.bounds(k)[1]) for k in range(1, 5)]
    assert ends == ["2028-02-01T00:00:00+00:00", "2028-03-01T00:00:00+00:00",
                    "2028-04-01T00:00:00+00:00", "2028-05-01T00:00:00+00:00"]
    assert s.season_at(at(2028, 2, 29, 23, 59)) == 2 and s.season_at(at(2028, 3, 1)) == 3


def test_the_31st_skips_short_months() -> None:
    s = Schedule(Cron.parse("0 0 31 * *"), at(2026, 1, 1))
    assert [iso(s.bounds(k)[1])[:10] for k in range(1, 4)] == [  # type: ignore[index]
        "2026-01-31", "2026-03-31", "2026-05-31"]


def test_day_of_month_or_day_of_week() -> None:
    s = Schedule(Cron.parse("0 0 13 * 5"), at(2026, 2, 1))  # the 13th, or any Friday
    starts = [iso(s.bounds(k)[1])[:10] for k in range(1, 5)]  # type: ignore[index]
    assert starts == ["2026-02-06", "2026-02-13", "2026-02-20", "2026-02-27"]
    s = Schedule(Cron.parse("0 0 */2 * 5"), at(2026, 2, 1))  # '*'-led field: both must hold
    assert iso(s.bounds(1)[1])[:10] == "2026-02-13"  # type: ignore[index]


def test_weekly_is_sunday_midnight_utc() -> None:
    s = Schedule(Cron.parse("@weekly"), at(2026, 11, 30, 14))  # a Monday
    assert s.bounds(1)[1] == at(2026, 12, 6) and calendar.weekday(2026, 12, 6) == 6


def test_far_seasons_are_found_without_walking_every_tick() -> None:
    s = Schedule(Cron.parse("* * * * *"), at(2026, 1, 1))
    k = s.season_at(at(2036, 1, 1))
    assert k is not None and s.bounds(k)[0] == at(2036, 1, 1)
    assert k == (at(2036, 1, 1) - at(2026, 1, 1)) // MINUTE_US + 1


CRONS = st.sampled_from([
    "*/7 * * * *", "0 */5 * * *", "30 2 * * 1-5", "0 0 1,15 * *", "0 12 13 * 5",
    "15,45 3-20/6 */3 * *", "0 0 * 2 *", "5 4 29 2 *", "0 6 * * 0,6", "1 1 1 1 *",
    "10-20/5 0 31 1-12/2 2",
])
STARTS = st.integers(min_value=at(2000, 1, 1), max_value=at(2040, 1, 1))


@settings(max_examples=40, deadline=None)
@given(expr=CRONS, start=STARTS)
def test_cron_bounds_are_the_brute_force_ticks(expr: str, start: int) -> None:
    cron = Cron.parse(expr)
    s = Schedule(cron, start)
    ticks = brute_ticks(cron, start, 4)
    for k, tick in enumerate(ticks, start=1):
        assert s.bounds(k) == (start if k == 1 else ticks[k - 2], tick)
        assert s.season_at(tick - 1) == k and s.season_at(tick) == k + 1


@settings(max_examples=60, deadline=None)
@given(expr=CRONS, start=STARTS, offset=st.integers(0, 3 * 366 * 86_400 * US))
def test_season_at_lies_within_its_bounds(expr: str, start: int, offset: int) -> None:
    s = Schedule(Cron.parse(expr), start)
    k = s.season_at(start + offset)
    assert k is not None
    began, ends = s.bounds(k)
    assert ends is not None and began <= start + offset < ends


@settings(max_examples=200, deadline=None)
@given(expr=CRONS, minute=st.integers(0, 60 * 24 * 366 * 30))
def test_matching_agrees_with_plain_cron_semantics(expr: str, minute: int) -> None:
    d = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    cron = Cron.parse(expr)
    got = d.minute in cron.minutes and d.hour in cron.hours and cron.day_matches(
        d.year, d.month, d.day)
    assert got == brute_matches(expr, d)


@settings(max_examples=100, deadline=None)
@given(period=st.integers(1, 10**7), start=STARTS, offset=st.integers(-10**13, 10**15))
def test_period_season_at_and_bounds_agree(period: int, start: int, offset: int) -> None:
    s = Schedule(period, start)
    k = s.season_at(start + offset)
    if offset < 0:
        assert k is None
        return
    assert k is not None
    began, ends = s.bounds(k)
    assert began <= start + offset < ends  # type: ignore[operator]
    assert ends - began == period * US  # type: ignore[operator]


def test_to_us_needs_an_offset_and_is_exact() -> None:
    with pytest.raises(ValueError):
        to_us(datetime(2026, 1, 1))
    t = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert to_us(t) == at(2026, 1, 1) + 1 and from_us(to_us(t)) == t
