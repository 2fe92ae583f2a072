"""The pure alarm rules of ingest.decide (no database)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hq_server.alarms.rules import AlarmView, Decision, decide
from hq_server.tickets.policy import TransitionKind
from protocol.wire import EventKind, FaultEvent

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
AGENT = 1


def _event(kind: EventKind, grade: int = 2, seq: int = 10, at: datetime = T0) -> FaultEvent:
    return FaultEvent(
        event_id=uuid.uuid4(),
        seq=seq,
        kind=kind,
        device_id="tx1",
        device_class="transmitter",
        code="vswr",
        grade=grade,
        title="VSWR high",
        observed_at=at,
    )


def _alarm(active: bool, grade: int = 2, seq: int = 5, agent: int = AGENT) -> AlarmView:
    return AlarmView(
        active=active,
        grade=grade,
        last_agent_id=agent,
        last_event_seq=seq,
        last_change_at=T0 - timedelta(minutes=1),
    )


RAISED = Decision(stale=False, transition=TransitionKind.RAISED)
GRADE = Decision(stale=False, transition=TransitionKind.GRADE_CHANGED)
CLEARED = Decision(stale=False, transition=TransitionKind.CLEARED)
NOTHING = Decision(stale=False, transition=None)
STALE = Decision(stale=True, transition=None)


@pytest.mark.parametrize(
    ("alarm", "event", "expected"),
    [
        (None, _event(EventKind.RAISE), RAISED),
        (None, _event(EventKind.UPDATE), RAISED),
        (None, _event(EventKind.CLEAR), NOTHING),
        (_alarm(active=False), _event(EventKind.RAISE), RAISED),
        (_alarm(active=False), _event(EventKind.UPDATE, grade=1), RAISED),
        (_alarm(active=False), _event(EventKind.CLEAR), NOTHING),
        (_alarm(active=True), _event(EventKind.RAISE), NOTHING),
        (_alarm(active=True), _event(EventKind.RAISE, grade=1), GRADE),
        (_alarm(active=True), _event(EventKind.UPDATE, grade=3), GRADE),
        (_alarm(active=True), _event(EventKind.UPDATE, grade=2), NOTHING),
        (_alarm(active=True), _event(EventKind.CLEAR), CLEARED),
        # Same agent: a seq not above the last applied one is stale.
        (_alarm(active=True, seq=10), _event(EventKind.CLEAR, seq=10), STALE),
        (_alarm(active=True, seq=10), _event(EventKind.CLEAR, seq=9), STALE),
        # Another agent of the site (re-enrolled box): compared by observed time instead.
        (_alarm(active=True, seq=99, agent=2), _event(EventKind.CLEAR, seq=1), CLEARED),
        (
            _alarm(active=True, seq=1, agent=2),
            _event(EventKind.CLEAR, seq=50, at=T0 - timedelta(hours=1)),
            STALE,
        ),
    ],
)
def test_decide(alarm: AlarmView | None, event: FaultEvent, expected: Decision) -> None:
    assert decide(alarm, event, AGENT) == expected


def test_naive_observed_at_is_taken_as_utc() -> None:
    naive = _event(EventKind.CLEAR, seq=1, at=(T0 - timedelta(hours=1)).replace(tzinfo=None))
    assert decide(_alarm(active=True, agent=2), naive, AGENT) == STALE
