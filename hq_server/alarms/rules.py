"""The alarm rules: what one event does to the alarm of its fingerprint (pure, no database).

Per event of a fingerprint (site, device, code, component):
- stale (seq not above the last one applied from the same agent, or observed before the alarm's
  last change when another agent of the site sent it): stored, not applied;
- RAISE or UPDATE on an absent or cleared alarm: the alarm becomes active (RAISED);
- RAISE or UPDATE with another grade on an active alarm: GRADE_CHANGED;
- CLEAR on an active alarm: CLEARED; on an absent or cleared one: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hq_server.tickets.policy import TransitionKind
from protocol.wire import EventKind, FaultEvent


@dataclass(frozen=True, slots=True)
class AlarmView:
    """What `decide` needs to know about an existing alarm."""

    active: bool
    grade: int
    last_agent_id: int
    last_event_seq: int
    last_change_at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """What one event does to its alarm: `transition` is None when the state does not change."""

    stale: bool
    transition: TransitionKind | None


def decide(alarm: AlarmView | None, event: FaultEvent, agent_id: int) -> Decision:
    """The effect of `event` (sent by `agent_id`) on the alarm of its fingerprint."""
    if alarm is not None:
        if alarm.last_agent_id == agent_id:
            stale = event.seq <= alarm.last_event_seq
        else:
            stale = aware(event.observed_at) < alarm.last_change_at
        if stale:
            return Decision(stale=True, transition=None)
    if event.kind is EventKind.CLEAR:
        active = alarm is not None and alarm.active
        return Decision(stale=False, transition=TransitionKind.CLEARED if active else None)
    if alarm is None or not alarm.active:
        return Decision(stale=False, transition=TransitionKind.RAISED)
    if event.grade != alarm.grade:
        return Decision(stale=False, transition=TransitionKind.GRADE_CHANGED)
    return Decision(stale=False, transition=None)


def aware(value: datetime) -> datetime:
    """Agents send aware timestamps; a naive one is taken as UTC."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
