from datetime import UTC, datetime

from streams.board.demo import demo_start_ms


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def test_demo_day_is_a_past_weekday_afternoon() -> None:
    thursday_night = datetime(2026, 11, 26, 4, 0, tzinfo=UTC).timestamp()
    start = _utc(demo_start_ms(thursday_night))
    assert start == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # Wednesday


def test_weekend_goes_back_to_friday() -> None:
    sunday = datetime(2026, 11, 29, 20, 0, tzinfo=UTC).timestamp()
    assert _utc(demo_start_ms(sunday)) == datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def test_late_afternoon_uses_the_same_day_once_three_hours_passed() -> None:
    tuesday_evening = datetime(2026, 11, 24, 18, 0, tzinfo=UTC).timestamp()
    assert _utc(demo_start_ms(tuesday_evening)) == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
