"""Who is on duty when: rotations, holidays and overrides computed over time (no I/O).

A rotation hands duty from one member to the next at a local time of the team's time zone,
every day or every week on a given weekday. Shift 0 starts at the first handover on or after
`starts_on`; shift i goes to member i modulo the number of members. Handovers are wall-clock
times of the zone: across a change to or from daylight saving time a shift is an hour shorter
or longer, and a handover inside the hour skipped in spring happens when the clocks say so
(zoneinfo's reading of the time, fold 0). On a holiday (a local date) the rotation gives way
to its holiday cover from 00:00 to 24:00 local, or to nobody when it has none. An override
("I cover Tuesday night") puts one person on duty from one instant to another, over the
rotation and its holidays; the latest override wins where two overlap.

A time with nobody on duty is a gap: `gaps` lists them over an interval so a rota is checked
when it is saved and the overview can show it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from itertools import pairwise
from zoneinfo import ZoneInfo

DAY = timedelta(days=1)


class Period(StrEnum):
    """How often duty is handed over."""

    DAILY = "daily"
    WEEKLY = "weekly"


class Role(StrEnum):
    """Which duty of a team: the engineer paged first, or the backup paged with them."""

    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass(frozen=True, slots=True)
class Rotation:
    """Members taking turns, handing over at `handover` local time (see the module doc)."""

    members: tuple[str, ...]
    zone: str
    handover: time = time(9, 0)
    period: Period = Period.WEEKLY
    weekday: int = 0  # weekly: the handover day, 0 = Monday
    starts_on: date = date(2026, 1, 1)
    holidays: frozenset[date] = frozenset()
    holiday_cover: str = ""

    @property
    def tz(self) -> ZoneInfo:
        """The team's time zone."""
        return ZoneInfo(self.zone)

    def _first_day(self) -> date:
        if self.period is Period.DAILY:
            return self.starts_on
        return self.starts_on + timedelta(days=(self.weekday - self.starts_on.weekday()) % 7)

    def _step(self) -> int:
        return 1 if self.period is Period.DAILY else 7

    def handover_at(self, day: date) -> datetime:
        """The instant (UTC) of the handover time on a local `day`."""
        return datetime.combine(day, self.handover, tzinfo=self.tz).astimezone(UTC)

    def shift_index(self, at: datetime) -> int | None:
        """The number of the shift running at `at` (None before the first handover)."""
        first, step = self._first_day(), self._step()
        day = at.astimezone(self.tz).date()
        # The shift day: the last handover day at or before `at`.
        shift_day = day - timedelta(days=(day - first).days % step)
        if self.handover_at(shift_day) > at:
            shift_day -= timedelta(days=step)
        offset = (shift_day - first).days
        return None if offset < 0 else offset // step

    def rotation_member(self, at: datetime) -> str:
        """Who the turns give duty to at `at`, holidays aside ('' before the first shift)."""
        index = self.shift_index(at)
        if index is None or not self.members:
            return ""
        return self.members[index % len(self.members)]

    def member(self, at: datetime) -> str:
        """Who is on duty at `at` by this rotation and its holidays ('' for nobody)."""
        if at.astimezone(self.tz).date() in self.holidays:
            return self.holiday_cover
        return self.rotation_member(at)

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants in (start, end) where duty may change: handovers, holidays' edges."""
        tz = self.tz
        day = start.astimezone(tz).date() - DAY
        last = end.astimezone(tz).date() + DAY
        first = self._first_day()
        found: set[datetime] = set()
        while day <= last:
            if (day - first).days >= 0 and (day - first).days % self._step() == 0:
                found.add(self.handover_at(day))
            if day in self.holidays or day - DAY in self.holidays:
                found.add(datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC))
            day += DAY
        return sorted(t for t in found if start < t < end)


@dataclass(frozen=True, slots=True)
class Override:
    """`who` is on duty from `starts_at` to `ends_at` (UTC, end excluded) in place of the rota."""

    who: str
    starts_at: datetime
    ends_at: datetime
    role: Role = Role.PRIMARY

    def covers(self, at: datetime) -> bool:
        """Whether `at` falls inside the override."""
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True, slots=True)
class Duty:
    """The rotation and the overrides of one role of a team."""

    rotation: Rotation | None
    overrides: tuple[Override, ...] = field(default=())

    def who(self, at: datetime) -> str:
        """Who is on duty at `at` ('' for nobody); the override made last wins."""
        for override in reversed(self.overrides):
            if override.covers(at):
                return override.who
        return self.rotation.member(at) if self.rotation is not None else ""

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants in (start, end) where duty may change."""
        found = set(self.rotation.changes(start, end) if self.rotation else [])
        for o in self.overrides:
            found.update(t for t in (o.starts_at, o.ends_at) if start < t < end)
        return sorted(found)

    def spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        """(from, to, who) over [start, end), neighbours with the same person merged."""
        edges = [start, *self.changes(start, end), end]
        spans: list[tuple[datetime, datetime, str]] = []
        for a, b in pairwise(edges):
            who = self.who(a)
            if spans and spans[-1][2] == who:
                spans[-1] = (spans[-1][0], b, who)
            else:
                spans.append((a, b, who))
        return spans

    def next_change(
        self, at: datetime, horizon: timedelta = timedelta(days=60)
    ) -> tuple[datetime, str] | None:
        """When duty next passes to someone else after `at`, and to whom (within `horizon`)."""
        spans = self.spans(at, at + horizon)
        if len(spans) < 2:
            return None
        start, _, who = spans[1]
        return start, who

    def gaps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The intervals of [start, end) with nobody on duty."""
        return [(a, b) for a, b, who in self.spans(start, end) if not who]


def overrides_for(role: Role, overrides: Iterable[Override]) -> tuple[Override, ...]:
    """The overrides of one role, in the order they were made."""
    return tuple(o for o in overrides if o.role is role)


def merge(intervals: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Intervals sorted, touching and overlapping ones joined."""
    merged: list[tuple[datetime, datetime]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged
