"""SLA clock arithmetic (hypothesis): deadlines and business durations agree everywhere.

Random weekly hours (split ranges, ``24:00`` ends, closed days), holidays and zones with
daylight-saving changes (New York, Berlin, Lord Howe's half-hour shift); random starts
over 2024 including the change weekends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.detect.business_time import BusinessCalendar

ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe")
YEAR_START = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)
YEAR_MS = 366 * 24 * 3_600_000
DST_STARTS = (  # a few instants near changes, to be drawn often
    int(datetime(2024, 3, 10, 6, 0, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2024, 11, 3, 5, 0, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2024, 3, 31, 0, 0, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2024, 10, 27, 0, 0, tzinfo=UTC).timestamp() * 1000),
    int(datetime(2024, 4, 6, 14, 0, tzinfo=UTC).timestamp() * 1000),
)


@st.composite
def day_ranges(draw: st.DrawFn, earliest: int = 0) -> tuple[tuple[int, int], ...]:
    """Ascending, non-overlapping ranges in minutes, at quarter hours; end 1440 is 24:00."""
    points = sorted(set(draw(st.lists(st.integers(earliest // 15, 96), max_size=4))))
    cuts = [p * 15 for p in points]
    return tuple((a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if b > a)


@st.composite
def calendars(draw: st.DrawFn, earliest: int = 0) -> BusinessCalendar:
    zone = draw(st.sampled_from(ZONES))
    if draw(st.integers(0, 5)) == 0:
        weekly = None
    else:
        weekly = tuple(draw(day_ranges(earliest)) for _ in range(7))
        if not any(weekly):
            monday = (((earliest // 15 + 1) * 15, 1440),)
            weekly = (monday, *weekly[1:])
    holidays = frozenset(date(2024, 1, 1) + timedelta(days=d) for d in draw(st.lists(st.integers(0, 365), max_size=5)))
    country = draw(st.sampled_from([None, "US", "DE"]))
    return BusinessCalendar(zone, weekly, holidays, country)


starts = st.one_of(
    st.integers(YEAR_START, YEAR_START + YEAR_MS),
    st.sampled_from(DST_STARTS).flatmap(lambda t: st.integers(t - 2 * 86_400_000, t + 2 * 86_400_000)),
)


@settings(max_examples=300, deadline=None)
@given(cal=calendars(), start=starts, minutes=st.integers(0, 6000))
def test_the_deadline_is_exactly_the_sla_in_business_time(cal: BusinessCalendar, start: int, minutes: int) -> None:
    due = cal.add_business(start, minutes)
    assert due >= start
    assert cal.business_ms_between(start, due) == minutes * 60_000
    if minutes:  # the last business minute before the deadline is open
        assert cal.is_open(due - 1)


@settings(max_examples=200, deadline=None)
@given(
    cal=calendars(), start=starts, a=st.integers(0, 3000), b=st.integers(0, 3000), later=st.integers(0, 3 * 86_400_000)
)
def test_deadlines_are_monotone(cal: BusinessCalendar, start: int, a: int, b: int, later: int) -> None:
    lo, hi = sorted((a, b))
    assert cal.add_business(start, lo) <= cal.add_business(start, hi)
    assert cal.add_business(start, lo) <= cal.add_business(start + later, lo)


@settings(max_examples=200, deadline=None)
@given(cal=calendars(), a=starts, span=st.integers(0, 5 * 86_400_000), cut=st.floats(0, 1))
def test_business_time_adds_up_over_consecutive_spans(cal: BusinessCalendar, a: int, span: int, cut: float) -> None:
    m = a + int(span * cut)
    b = a + span
    total = cal.business_ms_between(a, b)
    assert total == cal.business_ms_between(a, m) + cal.business_ms_between(m, b)
    assert 0 <= total <= span


@settings(max_examples=60, deadline=None)
@given(cal=calendars(earliest=4 * 60), start=starts)
def test_open_instants_match_the_wall_clock_definition(cal: BusinessCalendar, start: int) -> None:
    """Away from the 02:00-03:00 change hours, open means: wall time in a range, no holiday."""
    zone = ZoneInfo(cal.timezone)
    step = 7 * 60_000  # 7 minutes walks across quarter-hour boundaries at varying offsets
    for t in range(start, start + 3 * 86_400_000, step):
        local = datetime.fromtimestamp(t / 1000, zone)
        minute = local.hour * 60 + local.minute
        if cal.is_holiday(local.date()):
            expected = False
        elif cal.weekly is None:
            expected = True
        else:
            expected = any(a <= minute < b for a, b in cal.weekly[local.weekday()])
        assert cal.is_open(t) == expected, (local, cal)


# --- overnight ranges, against a minute-by-minute walk of the wall clock ------------------
# Every opening and closing time lies outside 01:00-04:00, the hours the clocks change in
# (New York, Berlin, Lord Howe), where "the wall clock shows HH:MM" is not one instant.
_TIMES = [m for m in range(0, 24 * 60 + 1, 15) if not 60 <= m < 240]


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def night_specs(draw: st.DrawFn) -> dict[int, list[tuple[int, int]]]:
    """Per weekday, ranges as written (start, end): any order, overlapping, ends at or
    before their start (past midnight), start = end (24 hours), ``24:00`` ends."""
    out: dict[int, list[tuple[int, int]]] = {}
    for wd in range(7):
        ranges = draw(st.lists(st.tuples(st.sampled_from(_TIMES[:-1]), st.sampled_from(_TIMES)), max_size=3))
        if ranges:
            out[wd] = ranges
    if not out:
        out[draw(st.integers(0, 6))] = [(22 * 60, 6 * 60)]
    return out


def _walk_open(spec: dict[int, list[tuple[int, int]]], holidays: frozenset[date], zone: ZoneInfo, t: int) -> bool:
    """shared/README.md, read literally: open when the wall time lies in a range of its own
    day (up to midnight when the range runs past it) or in the part of the previous day's
    range past midnight, and the local date is no holiday."""
    local = datetime.fromtimestamp(t / 1000, zone)
    if local.date() in holidays:
        return False
    minute = local.hour * 60 + local.minute
    for start, end in spec.get(local.weekday(), ()):
        if start <= minute and (minute < end or end <= start):
            return True
    return any(end <= start and minute < end for start, end in spec.get((local.weekday() - 1) % 7, ()))


def _calendar(zone: str, spec: dict[int, list[tuple[int, int]]], holidays: frozenset[date]) -> BusinessCalendar:
    """Built from the spec written as the clients file writes it, through its parser."""
    from streams.clients import parse_ranges

    weekly = tuple(parse_ranges(",".join(f"{_hhmm(a)}-{_hhmm(b)}" for a, b in spec[wd])) if wd in spec else ()
                   for wd in range(7))
    return BusinessCalendar(zone, weekly, holidays)


minute_starts = starts.map(lambda t: t // 60_000 * 60_000)
near_holidays = st.lists(st.integers(-1, 6), max_size=4)
"""Holidays as day offsets from the start's date (UTC), so they fall where the walk goes."""


def _days(start: int, offsets: list[int]) -> frozenset[date]:
    day = datetime.fromtimestamp(start / 1000, UTC).date()
    return frozenset(day + timedelta(days=d) for d in offsets)


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), spec=night_specs(), start=minute_starts, offsets=near_holidays)
def test_overnight_hours_open_exactly_when_the_wall_clock_says(
    zone: str, spec: dict[int, list[tuple[int, int]]], start: int, offsets: list[int],
) -> None:
    holidays = _days(start, offsets)
    cal = _calendar(zone, spec, holidays)
    tz = ZoneInfo(zone)
    for t in range(start, start + 3 * 86_400_000, 60_000):
        assert cal.is_open(t) == _walk_open(spec, holidays, tz, t), (datetime.fromtimestamp(t / 1000, tz), spec)


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), spec=night_specs(), start=minute_starts, offsets=near_holidays,
       minutes=st.integers(1, 600))
def test_overnight_deadlines_are_those_of_a_minute_by_minute_walk(
    zone: str, spec: dict[int, list[tuple[int, int]]], start: int, offsets: list[int], minutes: int,
) -> None:
    holidays = _days(start, offsets)
    cal = _calendar(zone, spec, holidays)
    tz = ZoneInfo(zone)
    t, remaining, horizon = start, minutes, start + 15 * 86_400_000
    while remaining and t < horizon:
        remaining -= _walk_open(spec, holidays, tz, t)
        t += 60_000
    if remaining:
        return  # so few open minutes near holidays that the walk gives up; nothing to compare
    assert cal.add_business(start, minutes) == t
    assert cal.business_ms_between(start, t) == minutes * 60_000
