"""Response deadlines of a ticket on its site's working-time calendar (docs/architecture.md).

Grades whose policy clock is "24x7" count every minute; "business" grades count only the open
hours of the site's calendar (its timezone, weekly hours and holidays; a calendar may also be
explicitly 24x7). A site without a calendar works Mon-Fri 08:30-17:30 in its own timezone.

Deadlines are computed by adding WORKING time: each open interval of a local day is turned into
UTC instants through zoneinfo, so a DST change inside or between intervals is counted as the
minutes that really pass. Time spent "pending customer" is added on top (the clock pauses), so
a deadline = opened_at + (target + paused working time) on the ticket's clock.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Protocol
from zoneinfo import ZoneInfo

from hq_server.core.errors import InvalidInput
from protocol.grades import DEFAULT_POLICIES, Grade, GradePolicy

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS: dict[str, list[tuple[str, str]]] = {
    day: [("08:30", "17:30")] for day in WEEKDAYS[:5]
}
# A calendar must open at least once in this many days, or deadlines would never come.
_HORIZON_DAYS = 800
# Local dates whose open intervals a calendar keeps (about three years).
_DAYS_CACHED = 1100
ZERO = timedelta(0)


class ResponseClock(Protocol):
    """Counts response time forward from an instant (24x7, or only during open hours)."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant `duration` of counted time after `start`."""
        ...

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The counted time in [start, end)."""
        ...


class AroundTheClock:
    """A 24x7 clock: every minute counts."""

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` plus `duration` of wall-clock time."""
        return start + duration

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The wall-clock time from start to end (zero if end is earlier)."""
        return max(end - start, ZERO)


AROUND_THE_CLOCK = AroundTheClock()


def parse_hhmm(text: str) -> int:
    """Minutes after midnight of "HH:MM" (00:00..24:00); InvalidInput otherwise."""
    try:
        hours, minutes = text.split(":")
        value = int(hours) * 60 + int(minutes)
        valid = len(minutes) == 2 and 0 <= int(minutes) < 60 and 0 <= value <= 24 * 60
    except ValueError:
        valid = False
    if not valid:
        raise InvalidInput(f"bad time {text!r}: use HH:MM from 00:00 to 24:00")
    return value


@dataclass(frozen=True)
class BusinessCalendar:
    """Open hours per weekday in a timezone, closed on holidays."""

    tz: ZoneInfo
    # weekday (0 = Monday) -> sorted, non-overlapping (open, close) minutes after local midnight
    hours: Mapping[int, Sequence[tuple[int, int]]]
    holidays: frozenset[date]
    # Open intervals per local date, computed once: a batch of tickets asks for the same days.
    _days: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def build(
        cls,
        timezone: str,
        hours: Mapping[str, Iterable[Sequence[str]]],
        holidays: Iterable[str | date] = (),
    ) -> BusinessCalendar:
        """A calendar from its stored form; InvalidInput names what is wrong."""
        try:
            tz = ZoneInfo(timezone)
        except (KeyError, ValueError):
            raise InvalidInput(f"unknown timezone {timezone!r}: use an IANA name") from None
        parsed: dict[int, list[tuple[int, int]]] = {}
        for day, intervals in hours.items():
            if day not in WEEKDAYS:
                raise InvalidInput(f"unknown weekday {day!r}: use one of {', '.join(WEEKDAYS)}")
            spans = []
            for interval in intervals:
                if len(interval) != 2:
                    raise InvalidInput(f"{day}: an interval is [open, close]")
                start, end = parse_hhmm(interval[0]), parse_hhmm(interval[1])
                if end <= start:
                    raise InvalidInput(f"{day}: {interval[0]}-{interval[1]} closes before it opens")
                spans.append((start, end))
            spans.sort()
            for (_, end), (start, _) in pairwise(spans):
                if start < end:
                    raise InvalidInput(f"{day}: intervals overlap")
            if spans:
                parsed[WEEKDAYS.index(day)] = spans
        if not parsed:
            raise InvalidInput("a business-hours calendar needs open hours on some weekday")
        days = frozenset(d if isinstance(d, date) else _parse_date(d) for d in holidays)
        return cls(tz=tz, hours=parsed, holidays=days)

    def _intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of a local date, as UTC instants."""
        known = self._days.get(day)
        if known is not None:
            return known
        intervals = []
        if day not in self.holidays:
            midnight = datetime.combine(day, time())
            for start, end in self.hours.get(day.weekday(), ()):
                intervals.append(
                    (
                        self._utc(midnight + timedelta(minutes=start)),
                        self._utc(midnight + timedelta(minutes=end)),
                    )
                )
        if len(self._days) > _DAYS_CACHED:
            self._days.clear()
        self._days[day] = intervals
        return intervals

    def _utc(self, local: datetime) -> datetime:
        # Wall times in a spring-forward gap resolve with the pre-transition offset (fold=0).
        return local.replace(tzinfo=self.tz).astimezone(UTC)

    def _days_from(self, instant: datetime) -> Iterator[date]:
        # From the day before: an interval of the previous local day may still be open.
        day = instant.astimezone(self.tz).date() - timedelta(days=1)
        for offset in range(_HORIZON_DAYS):
            yield day + timedelta(days=offset)
        raise InvalidInput(f"the calendar has no open hours within {_HORIZON_DAYS} days")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant after `duration` of open time from `start`."""
        remaining = duration
        for day in self._days_from(start):
            for open_at, close_at in self._intervals(day):
                begin = max(open_at, start)
                if begin >= close_at:
                    continue
                available = close_at - begin
                if remaining <= available:
                    # Zero remaining still moves to the next open instant (a deadline
                    # "now" outside hours is the next opening).
                    return begin + remaining
                remaining -= available
        raise AssertionError("unreachable")  # _days_from raises past the horizon

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The open time within [start, end)."""
        total = ZERO
        if end <= start:
            return total
        for day in self._days_from(start):
            for open_at, close_at in self._intervals(day):
                if open_at >= end:
                    return total
                overlap = min(close_at, end) - max(open_at, start)
                if overlap > ZERO:
                    total += overlap
            if datetime.combine(day, time(), self.tz) > end:
                return total
        return total


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"bad holiday {text!r}: use YYYY-MM-DD") from None


@dataclass(frozen=True, slots=True)
class CalendarSpec:
    """A site's calendar as stored (None fields: the default Mon-Fri 08:30-17:30)."""

    timezone: str
    always_open: bool = False
    hours: Mapping[str, Iterable[Sequence[str]]] | None = None
    holidays: tuple[str, ...] = ()


def business_clock(spec: CalendarSpec) -> ResponseClock:
    """The clock of a calendar: 24x7 if it says so, else its open hours."""
    if spec.always_open:
        return AROUND_THE_CLOCK
    # Every ticket's deadlines ask for their site's clock: the last few specs seen are looked up
    # by equality (a C-level comparison) before their hours are frozen into a cache key.
    recent = _recent_clocks
    for seen, clock in recent:
        if seen == spec:
            return clock
    hours = spec.hours if spec.hours is not None else DEFAULT_HOURS
    frozen = tuple((day, tuple(tuple(i) for i in spans)) for day, spans in hours.items())
    clock = _calendar(spec.timezone, frozen, spec.holidays)
    # A copy: the spec's hours may be a calendar row's dict, which must not change the cache.
    _remember((replace(spec, hours=copy.deepcopy(spec.hours)), clock))
    return clock


_recent_clocks: tuple[tuple[CalendarSpec, ResponseClock], ...] = ()


def _remember(entry: tuple[CalendarSpec, ResponseClock]) -> None:
    global _recent_clocks
    # Replaced whole, never changed in place: threads reading it see one version or the other.
    _recent_clocks = (entry, *_recent_clocks[:7])


@lru_cache(maxsize=256)
def _calendar(
    timezone: str,
    hours: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...],
    holidays: tuple[str, ...],
) -> BusinessCalendar:
    # Cached: building one parses every interval, and each ticket's deadlines need one.
    return BusinessCalendar.build(timezone, dict(hours), holidays)


def response_clock(policy: GradePolicy, spec: CalendarSpec) -> ResponseClock:
    """The clock a grade's deadlines run on at a site with this calendar."""
    if policy.clock == "24x7":
        return AROUND_THE_CLOCK
    return business_clock(spec)


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a ticket must be acknowledged and restored; None where the grade has no target."""

    ack_due_at: datetime | None
    restore_due_at: datetime | None


def paused_time(clock: ResponseClock, intervals: Iterable[tuple[datetime, datetime]]) -> timedelta:
    """The counted time of the closed pause intervals on this clock."""
    return sum((clock.between(a, b) for a, b in intervals), ZERO)


def deadlines_for(
    grade: int,
    opened_at: datetime,
    spec: CalendarSpec,
    pauses: Iterable[tuple[datetime, datetime]] = (),
    policies: Mapping[Grade, GradePolicy] = DEFAULT_POLICIES,
) -> Deadlines:
    """Acknowledge and restore deadlines of a ticket of `grade` opened at `opened_at`."""
    policy = policies[Grade(grade)]
    clock = response_clock(policy, spec)
    shift = paused_time(clock, pauses)

    def due(minutes: int | None) -> datetime | None:
        if minutes is None:
            return None
        return clock.add(opened_at, timedelta(minutes=minutes) + shift)

    return Deadlines(ack_due_at=due(policy.ack_minutes), restore_due_at=due(policy.restore_minutes))
