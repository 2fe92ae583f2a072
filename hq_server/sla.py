"""Response deadlines of a ticket from its grade's policy (DESIGN.md section 3).

Every grade runs on a 24x7 clock for now. The seam for business-hours calendars (per site, with
timezone, holidays and paused clocks) is `response_clock`: it will return the site's calendar
for policies whose clock is "business", and `ResponseClock.add` will skip closed hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from checks.grading import DEFAULT_POLICIES, Grade, GradePolicy
from hq_server.models import Site


class ResponseClock(Protocol):
    """Counts response time forward from an instant (24x7, or only during business hours)."""

    def add(self, start: datetime, minutes: int) -> datetime:
        """The instant `minutes` of counted time after `start`."""
        ...


class AroundTheClock:
    """A 24x7 clock: every minute counts."""

    def add(self, start: datetime, minutes: int) -> datetime:
        """`start` plus `minutes` wall-clock minutes."""
        return start + timedelta(minutes=minutes)


AROUND_THE_CLOCK = AroundTheClock()


@dataclass(frozen=True, slots=True)
class Deadlines:
    """When a ticket must be acknowledged and restored; None where the grade has no target."""

    ack_due_at: datetime | None
    restore_due_at: datetime | None


def response_clock(policy: GradePolicy, site: Site) -> ResponseClock:
    """The clock a grade's deadlines run on at a site: 24x7 until site calendars exist."""
    # Later: if policy.clock == "business", return the calendar of `site` (site.timezone).
    del policy, site
    return AROUND_THE_CLOCK


def deadlines_for(
    grade: int,
    opened_at: datetime,
    site: Site,
    policies: dict[Grade, GradePolicy] = DEFAULT_POLICIES,
) -> Deadlines:
    """Acknowledge and restore deadlines of a ticket of `grade` opened at `opened_at`."""
    policy = policies[Grade(grade)]
    clock = response_clock(policy, site)
    ack = clock.add(opened_at, policy.ack_minutes) if policy.ack_minutes is not None else None
    restore = (
        clock.add(opened_at, policy.restore_minutes) if policy.restore_minutes is not None else None
    )
    return Deadlines(ack_due_at=ack, restore_due_at=restore)
