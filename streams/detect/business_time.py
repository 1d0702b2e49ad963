"""Business-time arithmetic: SLA deadlines and response times in a client's open hours.

Business hours are wall-clock ranges in the client's time zone, but what is counted is
*elapsed* time while the business is open. Each local day is turned into UTC intervals
once (and cached), and all arithmetic runs on those intervals in epoch milliseconds, so
daylight-saving changes are handled where they belong: in the wall-to-UTC conversion of
an opening or closing time, never in the counting. Consequences worth knowing:

- a day open ``00:00-24:00`` on the spring-forward date is 23 hours long, on the
  fall-back date 25 hours;
- an opening or closing time that falls into a skipped hour (spring forward) takes effect
  at the instant the clocks jump; one that falls into a repeated hour (fall back) takes
  effect at its first occurrence. In both cases: "the first instant the wall clock shows
  that time or later".

Overnight ranges (shared/README.md): a range whose end is at or before its start runs
past midnight and belongs to the day it starts (``fri = "22:00-06:00"`` is open Friday
22:00 to Saturday 06:00), start = end is 24 hours, overlapping ranges merge. A local date's
open intervals are its own ranges up to midnight plus the part of the previous day's ranges
that runs past midnight; a holiday closes every instant of its local date, so a Friday
holiday closes Friday 22:00-24:00 of that shift and leaves its Saturday part open.

Work is done day by day (a whole day is skipped in one step), so a deadline ten business
days away costs about fourteen cached look-ups, never a loop over minutes.

A calendar with no open time at all (an hours table with no day in it) is refused with
:class:`~streams.errors.ConfigError` when it is built: such a client can never meet an SLA,
and failing at start is clearer than a deadline that silently never comes. Holidays can
not empty a calendar in practice (they are finite); should they close more than
``MAX_CLOSED_DAYS`` days in a row, :meth:`BusinessCalendar.add_business` raises the same
error rather than search forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from streams.clients import Client, merge_ranges
from streams.errors import ConfigError

DAY_MINUTES = 24 * 60
MINUTE_MS = 60_000
MAX_CLOSED_DAYS = 2 * 366
_CACHE_LIMIT = 20_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_DAY = timedelta(days=1)

Ranges = tuple[tuple[int, int], ...]
"""Open ranges that start on one weekday, ``(start_minute, end_minute)`` after its midnight:
end 1440 is ``24:00``, an end past 1440 runs into the next day (``22:00-06:00`` is
``(1320, 1800)``), so a range covers part of its own day and at most part of the next."""


@lru_cache(maxsize=256)
def country_holidays(country: str, year: int) -> frozenset[date]:
    """Public holidays of ``country`` in ``year`` (``holidays`` package, observed days included)."""
    import holidays

    return frozenset(holidays.country_holidays(country, years=year).keys())


def _ms_to_local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """When a client is open: weekly wall-clock ranges in a zone, minus holidays.

    ``weekly`` holds seven entries (Monday first); ``None`` means open around the clock
    (holidays still close whole days). Build one with :meth:`from_client`.
    """

    timezone: str = "UTC"
    weekly: tuple[Ranges, ...] | None = None
    holidays: frozenset[date] = frozenset()
    holiday_country: str | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False, hash=False)
    _days: dict[date, tuple[tuple[int, int], ...]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", ZoneInfo(self.timezone))
        if self.weekly is not None:
            if len(self.weekly) != 7:
                raise ConfigError(f"business hours need 7 weekdays, got {len(self.weekly)}")
            if not any(self.weekly):
                raise ConfigError("business hours have no open time on any weekday: an SLA could never be met")

    @classmethod
    def from_client(cls, client: Client) -> BusinessCalendar:
        """The calendar of a validated :class:`~streams.clients.Client`."""
        hours = client.weekly_hours()
        weekly: tuple[Ranges, ...] | None = None
        if hours is not None:
            weekly = tuple(hours.get(wd, ()) for wd in range(7))
            if not any(weekly):
                raise ConfigError(f"client {client.id!r}: business hours have no open time on any weekday")
        return cls(
            timezone=client.timezone,
            weekly=weekly,
            holidays=frozenset(client.holidays),
            holiday_country=client.holiday_country,
        )

    # -- the days ---------------------------------------------------------------------

    @property
    def always_open(self) -> bool:
        """True when every instant counts (no hours table and no holidays)."""
        return self.weekly is None and not self.holidays and self.holiday_country is None

    def is_holiday(self, day: date) -> bool:
        if day in self.holidays:
            return True
        return self.holiday_country is not None and day in country_holidays(self.holiday_country, day.year)

    def local_date(self, ms: int) -> date:
        """The client's calendar date at instant ``ms``."""
        return _ms_to_local(ms, self._zone).date()

    def wall_to_ms(self, day: date, minute: int) -> int:
        """First instant (epoch ms) at which the wall clock shows ``day`` + ``minute`` or later.

        ``minute`` may be 1440 (``24:00``, the next midnight). Ordinary times map one to
        one; a repeated time maps to its first occurrence; a skipped time maps to the jump.
        """
        naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
        zone = self._zone
        first = (naive.replace(tzinfo=zone) - _EPOCH) // _ONE_MS
        if _ms_to_local(first, zone).replace(tzinfo=None) == naive:
            return first
        # A skipped wall time: the jump lies between the two readings of the naive time.
        other = (naive.replace(tzinfo=zone, fold=1) - _EPOCH) // _ONE_MS
        lo, hi = min(first, other), max(first, other)
        while hi - lo > 1:  # invariant: wall(lo) < naive <= wall(hi)
            mid = (lo + hi) // 2
            if _ms_to_local(mid, zone).replace(tzinfo=None) >= naive:
                hi = mid
            else:
                lo = mid
        return hi

    def open_intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """The UTC intervals ``[start_ms, end_ms)`` during which ``day`` is open."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if self.is_holiday(day):
            out: tuple[tuple[int, int], ...] = ()
        elif self.weekly is None:
            out = ((self.wall_to_ms(day, 0), self.wall_to_ms(day, DAY_MINUTES)),)
        else:
            # The ranges that start today, up to midnight, and the part of yesterday's ranges
            # that runs past midnight: every instant of this local date, and no other.
            pieces = [(start, min(end, DAY_MINUTES)) for start, end in self.weekly[day.weekday()]]
            pieces += [(0, end - DAY_MINUTES) for _, end in self.weekly[(day.weekday() - 1) % 7]
                       if end > DAY_MINUTES]
            spans: list[tuple[int, int]] = []
            for start, end in merge_ranges(pieces):
                a, b = self.wall_to_ms(day, start), self.wall_to_ms(day, end)
                if b > a:
                    spans.append((a, b))
            out = tuple(spans)
        if len(self._days) >= _CACHE_LIMIT:
            self._days.clear()
        self._days[day] = out
        return out

    def is_open(self, ms: int) -> bool:
        return any(a <= ms < b for a, b in self.open_intervals(self.local_date(ms)))

    # -- arithmetic -------------------------------------------------------------------

    def add_business(self, start_ms: int, minutes: int | float) -> int:
        """The instant when ``minutes`` of business time have passed since ``start_ms``.

        This is the SLA deadline of a message received at ``start_ms``. Outside hours the
        count starts at the next opening; a deadline that lands exactly on a closing time
        is that closing time (Friday 16:30 + 30 min is Friday 17:00, not Monday 09:00).
        """
        remaining = round(minutes * MINUTE_MS)
        if remaining < 0:
            raise ValueError("business minutes must not be negative")
        if self.always_open:
            return start_ms + remaining
        day = self.local_date(start_ms)
        closed_run = 0
        while True:
            spans = self.open_intervals(day)
            closed_run = closed_run + 1 if not spans else 0
            if closed_run > MAX_CLOSED_DAYS:
                raise ConfigError(f"no business hours in {MAX_CLOSED_DAYS} days after {day}: check holidays")
            for a, b in spans:
                if b <= start_ms:
                    continue
                begin = max(a, start_ms)
                if b - begin >= remaining:
                    return begin + remaining
                remaining -= b - begin
            day += _ONE_DAY

    def business_ms_between(self, a_ms: int, b_ms: int) -> int:
        """Open milliseconds in ``[a_ms, b_ms)``; negative when ``b_ms`` precedes ``a_ms``."""
        if b_ms < a_ms:
            return -self.business_ms_between(b_ms, a_ms)
        if self.always_open or a_ms == b_ms:
            return b_ms - a_ms
        total = 0
        day, last = self.local_date(a_ms), self.local_date(b_ms)
        while day <= last:
            for start, end in self.open_intervals(day):
                lo, hi = max(start, a_ms), min(end, b_ms)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return total

    def business_seconds_between(self, a_ms: int, b_ms: int) -> float:
        """Business time from ``a_ms`` to ``b_ms`` in seconds (a response time in business time)."""
        return self.business_ms_between(a_ms, b_ms) / 1000
