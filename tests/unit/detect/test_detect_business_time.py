"""SLA deadlines and business time: README "SLA deadline" examples and the hard edges."""

from __future__ import annotations

import time
from datetime import date

import pytest
from detect_builders import WEEKDAYS_9_17, local_ms, make_client

from streams.detect.business_time import BusinessCalendar
from streams.errors import ConfigError

NY = "America/New_York"
MIN = 60_000


def cal(tz: str = "UTC", hours: dict[str, str] | None = WEEKDAYS_9_17, **extra: object) -> BusinessCalendar:
    return BusinessCalendar.from_client(make_client(tz=tz, hours=hours, **extra))


# 2024-03-08 is a Friday; US clocks spring forward on Sunday 2024-03-10 and fall back on
# Sunday 2024-11-03.


def test_friday_1630_plus_30_is_due_friday_1700() -> None:
    c = cal()
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 16, 30), 30) == local_ms("UTC", 2024, 3, 8, 17)


def test_friday_1645_plus_30_is_due_monday_0915() -> None:
    c = cal()
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 16, 45), 30) == local_ms("UTC", 2024, 3, 11, 9, 15)


def test_saturday_message_starts_counting_monday_0900() -> None:
    c = cal()
    saturday = local_ms("UTC", 2024, 3, 9, 11, 0)
    assert c.add_business(saturday, 60) == local_ms("UTC", 2024, 3, 11, 10, 0)
    assert c.add_business(saturday, 0) == local_ms("UTC", 2024, 3, 11, 9, 0)


def test_weekday_evening_message_counts_from_next_morning() -> None:
    c = cal()
    tuesday_evening = local_ms("UTC", 2024, 3, 5, 20, 0)
    assert c.add_business(tuesday_evening, 60) == local_ms("UTC", 2024, 3, 6, 10, 0)
    early = local_ms("UTC", 2024, 3, 6, 6, 0)
    assert c.add_business(early, 60) == local_ms("UTC", 2024, 3, 6, 10, 0)


def test_sla_longer_than_one_business_day() -> None:
    c = cal()
    monday_10 = local_ms("UTC", 2024, 3, 4, 10, 0)
    # three 8-hour business days later, same time Thursday
    assert c.add_business(monday_10, 3 * 8 * 60) == local_ms("UTC", 2024, 3, 7, 10, 0)
    # eight business days cross a weekend
    assert c.add_business(monday_10, 8 * 8 * 60) == local_ms("UTC", 2024, 3, 14, 10, 0)


def test_explicit_holiday_is_closed_all_day() -> None:
    c = cal(holidays=(date(2024, 3, 11),))
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 16, 45), 30) == local_ms("UTC", 2024, 3, 12, 9, 15)
    assert c.open_intervals(date(2024, 3, 11)) == ()


def test_country_holiday_calendar_closes_the_day() -> None:
    c = cal(tz=NY, holiday_country="US")
    # Independence Day 2024 is a Thursday.
    assert c.is_holiday(date(2024, 7, 4))
    wednesday = local_ms(NY, 2024, 7, 3, 16, 30)
    assert c.add_business(wednesday, 60) == local_ms(NY, 2024, 7, 5, 9, 30)


def test_holidays_close_an_always_open_calendar() -> None:
    c = cal(hours=None, holidays=(date(2024, 3, 9),))
    friday_2330 = local_ms("UTC", 2024, 3, 8, 23, 30)
    assert c.add_business(friday_2330, 60) == local_ms("UTC", 2024, 3, 10, 0, 30)


def test_no_hours_table_is_always_open() -> None:
    c = cal(hours=None)
    assert c.always_open
    start = local_ms("UTC", 2024, 3, 9, 3, 0)
    assert c.add_business(start, 90) == start + 90 * MIN
    assert c.business_seconds_between(start, start + 90 * MIN) == 5400


def test_spring_forward_new_york() -> None:
    c = cal(tz=NY)
    # Friday before the change (EST) to Monday after it (EDT): still 30 business minutes.
    due = c.add_business(local_ms(NY, 2024, 3, 8, 16, 45), 30)
    assert due == local_ms(NY, 2024, 3, 11, 9, 15)
    assert c.business_seconds_between(local_ms(NY, 2024, 3, 8, 16, 45), due) == 1800
    # opening hours are wall-clock: 09:00 EDT is 13:00 UTC after the change, 14:00 before
    assert c.open_intervals(date(2024, 3, 11))[0][0] == local_ms("UTC", 2024, 3, 11, 13, 0)
    assert c.open_intervals(date(2024, 3, 8))[0][0] == local_ms("UTC", 2024, 3, 8, 14, 0)


def test_fall_back_new_york() -> None:
    c = cal(tz=NY)
    due = c.add_business(local_ms(NY, 2024, 11, 1, 16, 45), 30)
    assert due == local_ms(NY, 2024, 11, 4, 9, 15)
    assert due == local_ms("UTC", 2024, 11, 4, 14, 15)


def test_a_whole_day_open_counts_real_time_across_dst() -> None:
    c = cal(tz=NY, hours={"sun": "00:00-24:00"})
    spring = c.open_intervals(date(2024, 3, 10))
    fall = c.open_intervals(date(2024, 11, 3))
    assert [(b - a) / 3_600_000 for a, b in spring] == [23.0]
    assert [(b - a) / 3_600_000 for a, b in fall] == [25.0]


def test_opening_inside_the_skipped_hour_takes_effect_at_the_jump() -> None:
    c = cal(tz=NY, hours={"sun": "02:30-03:30"})
    ((start, end),) = c.open_intervals(date(2024, 3, 10))
    assert start == local_ms(NY, 2024, 3, 10, 3, 0)  # clocks jump from 02:00 to 03:00
    assert end == local_ms(NY, 2024, 3, 10, 3, 30)


def test_closing_inside_the_repeated_hour_uses_its_first_occurrence() -> None:
    c = cal(tz=NY, hours={"sun": "00:00-01:30"})
    ((start, end),) = c.open_intervals(date(2024, 11, 3))
    assert end - start == 90 * MIN  # 01:30 EDT, before the clocks fall back


def test_24_00_end_runs_to_midnight_and_continues_next_day() -> None:
    c = cal(hours={"fri": "20:00-24:00", "sat": "00:00-02:00"})
    friday_2330 = local_ms("UTC", 2024, 3, 8, 23, 30)
    assert c.add_business(friday_2330, 30) == local_ms("UTC", 2024, 3, 9, 0, 0)
    assert c.add_business(friday_2330, 60) == local_ms("UTC", 2024, 3, 9, 0, 30)
    assert c.business_seconds_between(friday_2330, local_ms("UTC", 2024, 3, 9, 1, 0)) == 5400


def test_split_ranges_skip_the_lunch_break() -> None:
    c = cal(hours={"mon": "09:00-12:00,13:00-17:00"})
    monday_1145 = local_ms("UTC", 2024, 3, 4, 11, 45)
    assert c.add_business(monday_1145, 30) == local_ms("UTC", 2024, 3, 4, 13, 15)
    assert c.add_business(monday_1145, 15) == local_ms("UTC", 2024, 3, 4, 12, 0)
    assert c.business_seconds_between(monday_1145, local_ms("UTC", 2024, 3, 4, 13, 15)) == 1800
    # the next open Monday is a week later
    assert c.add_business(local_ms("UTC", 2024, 3, 4, 16, 30), 60) == local_ms("UTC", 2024, 3, 11, 9, 30)


def test_business_seconds_between_examples() -> None:
    c = cal()
    a = local_ms("UTC", 2024, 3, 8, 16, 45)
    b = local_ms("UTC", 2024, 3, 11, 9, 15)
    assert c.business_seconds_between(a, b) == 1800
    assert c.business_seconds_between(b, a) == -1800
    assert c.business_seconds_between(a, a) == 0
    saturday, sunday = local_ms("UTC", 2024, 3, 9, 10), local_ms("UTC", 2024, 3, 10, 10)
    assert c.business_seconds_between(saturday, sunday) == 0


def test_calendar_without_open_time_is_refused() -> None:
    with pytest.raises(ConfigError, match="no open time"):
        cal(hours={})


def test_long_slas_are_cheap() -> None:
    c = cal(tz=NY, holiday_country="US")
    start = local_ms(NY, 2024, 1, 2, 10, 0)
    began = time.perf_counter()
    for i in range(2000):
        c.add_business(start + i * 3_600_000, 10 * 8 * 60)  # ten business days
    assert time.perf_counter() - began < 2.0


# --- overnight ranges (shared/README.md "SLA deadline") ---------------------------------
# 2024-03-08 is a Friday, 2024-03-09 a Saturday.


def test_a_range_ending_before_its_start_runs_past_midnight() -> None:
    c = cal(hours={"fri": "22:00-06:00"})
    assert c.is_open(local_ms("UTC", 2024, 3, 8, 22, 0))
    assert c.is_open(local_ms("UTC", 2024, 3, 9, 5, 59))
    assert not c.is_open(local_ms("UTC", 2024, 3, 9, 6, 0))
    assert not c.is_open(local_ms("UTC", 2024, 3, 8, 21, 59))
    assert not c.is_open(local_ms("UTC", 2024, 3, 8, 3, 0))  # Thursday has no shift to run into Friday
    # the SLA runs through the night shift: Friday 23:30 + 120 min is Saturday 01:30
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 23, 30), 120) == local_ms("UTC", 2024, 3, 9, 1, 30)
    # Saturday 05:30 + 60 min: 30 min tonight, the other 30 from next Friday 22:00
    assert c.add_business(local_ms("UTC", 2024, 3, 9, 5, 30), 60) == local_ms("UTC", 2024, 3, 15, 22, 30)
    assert c.business_seconds_between(local_ms("UTC", 2024, 3, 8, 20), local_ms("UTC", 2024, 3, 9, 12)) == 8 * 3600


def test_friday_night_shift_with_a_saturday_holiday() -> None:
    """A holiday closes every instant of its local date: the Saturday part of Friday's shift."""
    c = cal(hours={"fri": "22:00-06:00"}, holidays=(date(2024, 3, 9),))
    assert c.is_open(local_ms("UTC", 2024, 3, 8, 23, 0))
    assert not c.is_open(local_ms("UTC", 2024, 3, 9, 1, 0))
    assert c.open_intervals(date(2024, 3, 9)) == ()
    # Friday 23:30 + 60 min: 30 min until midnight, the rest next Friday night
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 23, 30), 60) == local_ms("UTC", 2024, 3, 15, 22, 30)


def test_a_friday_holiday_closes_its_part_of_the_shift_only() -> None:
    c = cal(hours={"fri": "22:00-06:00"}, holidays=(date(2024, 3, 8),))
    assert not c.is_open(local_ms("UTC", 2024, 3, 8, 23, 0))
    assert c.is_open(local_ms("UTC", 2024, 3, 9, 1, 0))
    assert c.add_business(local_ms("UTC", 2024, 3, 8, 20, 0), 60) == local_ms("UTC", 2024, 3, 9, 1, 0)


def test_start_equal_to_end_is_24_hours() -> None:
    c = cal(hours={"mon": "08:00-08:00"})
    monday_8 = local_ms("UTC", 2024, 3, 4, 8, 0)
    assert c.add_business(monday_8, 24 * 60) == local_ms("UTC", 2024, 3, 5, 8, 0)
    assert c.is_open(local_ms("UTC", 2024, 3, 5, 7, 59)) and not c.is_open(local_ms("UTC", 2024, 3, 5, 8, 0))
    assert not c.is_open(local_ms("UTC", 2024, 3, 4, 7, 59))


def test_overlapping_ranges_merge_also_across_midnight() -> None:
    c = cal(hours={"fri": "22:00-06:00,23:00-01:00", "sat": "00:00-08:00"})
    assert [(b - a) // MIN for a, b in c.open_intervals(date(2024, 3, 9))] == [8 * 60]
    assert c.business_seconds_between(local_ms("UTC", 2024, 3, 8, 22), local_ms("UTC", 2024, 3, 9, 9)) == 10 * 3600


def test_a_night_shift_across_the_dst_change() -> None:
    """Saturday 22:00 to Sunday 06:00 in New York is 7 real hours on the spring-forward night,
    9 on the fall-back night (business time is elapsed time while open)."""
    c = cal(tz=NY, hours={"sat": "22:00-06:00"})
    for saturday, hours in ((date(2024, 3, 9), 7), (date(2024, 11, 2), 9)):
        start = local_ms(NY, saturday.year, saturday.month, saturday.day, 22, 0)
        sunday = saturday.toordinal() + 1
        end_day = date.fromordinal(sunday)
        end = local_ms(NY, end_day.year, end_day.month, end_day.day, 6, 0)
        assert end - start == hours * 3_600_000
        assert c.business_seconds_between(start - 3_600_000, end + 3_600_000) == hours * 3600
        assert c.add_business(start, hours * 60) == end
