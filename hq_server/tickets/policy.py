"""What the ticket policy is given and configured with: alarm transitions (from ingest, the dead
man's switch and the scheduler) and the policy's settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from hq_server.core.settings import Settings
from hq_server.store.models import Alarm
from hq_server.tickets.paging import DEFAULT_LIMITS, PagingLimits


class TransitionKind(StrEnum):
    """How an alarm changed: became active (new or again), changed grade, or cleared."""

    RAISED = "raised"
    GRADE_CHANGED = "grade_changed"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlarmTransition:
    """One change of an alarm's state, as applied by ingest; `who` caused it (e.g. agent:3)."""

    kind: TransitionKind
    alarm: Alarm
    old_grade: int | None
    who: str


@dataclass(frozen=True, slots=True)
class TicketPolicy:
    """Settings of the alarm and ticket policy (from hq_server.core.settings.Settings)."""

    reopen_window: timedelta = timedelta(minutes=30)
    outage_min_devices: int = 3
    on_duty: str = ""
    flap_window: int = 11
    flap_high: float = 50.0
    flap_low: float = 25.0
    paging: PagingLimits = DEFAULT_LIMITS

    @classmethod
    def of(cls, settings: Settings) -> TicketPolicy:
        """The policy configured in HQ's settings."""
        return cls(
            reopen_window=settings.reopen_window,
            outage_min_devices=settings.outage_min_devices,
            on_duty=settings.on_duty_engineer,
            flap_window=settings.flap_window,
            flap_high=settings.flap_high,
            flap_low=settings.flap_low,
            paging=PagingLimits.of(settings),
        )


DEFAULT_POLICY = TicketPolicy()
