"""Escalation chains as data, copied onto a ticket when it opens, and its timer rows.

A chain has levels (on-duty engineer, department manager, customer-service centre manager,
service director by default); each has contacts and a delay. The ack escalation of a ticket
runs from its ack deadline, the restore escalation from its restore deadline: level i is due
at deadline + delay(0) + ... + delay(i), each delay counted on the ticket's working clock or on
the wall clock. A timer is one row (ticket, kind, level) claimed once by the scheduler.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hq_server import rows
from hq_server.domain import DONE_STATUSES
from hq_server.models import Ticket
from hq_server.models_ops import EscalationChain, EscalationTimer
from hq_server.sla import AROUND_THE_CLOCK, ResponseClock

DEFAULT_LEVEL_NAMES = (
    "on-duty engineer",
    "department manager",
    "customer-service centre manager",
    "service director",
)
# Used when no chain is configured at all: escalations are still recorded on the ticket.
BUILTIN_CHAIN: dict[str, Any] = {
    "chain_id": None,
    "name": "built-in",
    "levels": [
        {"name": name, "delay_minutes": delay, "delay_clock": "working", "contacts": []}
        for name, delay in zip(DEFAULT_LEVEL_NAMES, (0, 30, 60, 120), strict=True)
    ],
}


class TimerKind(StrEnum):
    """Which deadline a timer escalates."""

    ACK = "ack"
    RESTORE = "restore"


class TimerOutcome(StrEnum):
    """What became of a timer."""

    PENDING = "pending"
    ESCALATED = "escalated"
    CANCELLED = "cancelled"


def chain_for(session: Session, customer: str, grade: int) -> dict[str, Any]:
    """The chain snapshot for a ticket: customer+grade, customer, grade, default, built-in."""
    candidates = [(customer, grade), (customer, 0), ("", grade), ("", 0)]
    # Cached for the transaction: a batch opening many tickets reads the chains once.
    cache: dict[str, dict[tuple[str, int], EscalationChain]] = session.info.setdefault(
        "escalation_chains", {}
    )
    by_key = cache.get(customer)
    if by_key is None:
        rows = session.scalars(
            select(EscalationChain).where(EscalationChain.customer.in_({customer, ""}))
        ).all()
        by_key = cache[customer] = {(r.customer, r.grade): r for r in rows}
    for key in candidates:
        row = by_key.get(key)
        if row is not None:
            return {"chain_id": row.id, "name": row.name, "levels": row.levels["levels"]}
    return BUILTIN_CHAIN


@dataclass(frozen=True, slots=True)
class Due:
    """When one level of one escalation is due."""

    kind: TimerKind
    level: int
    due_at: datetime


def due_times(ticket: Ticket, clock: ResponseClock) -> list[Due]:
    """The due time of every level of both escalations of a ticket, from its deadlines."""
    levels: list[dict[str, Any]] = (ticket.escalation or BUILTIN_CHAIN)["levels"]
    result = []
    for kind, deadline in (
        (TimerKind.ACK, ticket.ack_due_at),
        (TimerKind.RESTORE, ticket.restore_due_at),
    ):
        if deadline is None:
            continue
        at = deadline
        for index, level in enumerate(levels):
            delay = timedelta(minutes=int(level.get("delay_minutes", 0)))
            level_clock = AROUND_THE_CLOCK if level.get("delay_clock") == "wall" else clock
            at = level_clock.add(at, delay)
            result.append(Due(kind, index, at))
    return result


@dataclass(slots=True)
class TimerState:
    """A stored timer as planning sees it (plain values: tickets move hundreds at a time)."""

    id: int
    ticket_id: int
    kind: str
    level: int
    due_at: datetime
    done_at: datetime | None
    outcome: str
    changed: bool = False


def plan(
    ticket: Ticket, clock: ResponseClock, timers: dict[tuple[str, int], TimerState]
) -> list[Due]:
    """Move a ticket's pending `timers` to match its deadlines, cancel those no longer wanted
    (marking them changed), and return the steps that have no timer yet."""
    wanted = {(d.kind.value, d.level): d for d in due_times(ticket, clock)}
    missing = []
    for key, due in wanted.items():
        timer = timers.get(key)
        if timer is None:
            missing.append(due)
        elif timer.outcome == TimerOutcome.PENDING and timer.due_at != due.due_at:
            timer.due_at = due.due_at
            timer.changed = True
        elif timer.outcome == TimerOutcome.CANCELLED and _runs(ticket, due.kind):
            # Cancelled while an earlier grade had no such deadline; this grade has one again.
            timer.due_at, timer.done_at = due.due_at, None
            timer.outcome = TimerOutcome.PENDING.value
            timer.changed = True
    for key, timer in timers.items():
        if key not in wanted and timer.outcome == TimerOutcome.PENDING:
            # The grade changed to one without this deadline.
            timer.done_at = timer.due_at
            timer.outcome = TimerOutcome.CANCELLED.value
            timer.changed = True
    return missing


def _runs(ticket: Ticket, kind: TimerKind) -> bool:
    """Whether an escalation of this kind still runs on the ticket (open; ack: unacknowledged)."""
    if ticket.status in DONE_STATUSES:
        return False
    return kind is not TimerKind.ACK or ticket.acknowledged_at is None


def timer_row(ticket_id: int, due: Due) -> dict[str, Any]:
    """The values of a new pending timer row (for inserts in bulk)."""
    return {
        "ticket_id": ticket_id,
        "kind": due.kind.value,
        "level": due.level,
        "due_at": due.due_at,
        "done_at": None,
        "outcome": TimerOutcome.PENDING.value,
    }


def timers_of(
    session: Session, ticket_ids: Collection[int]
) -> dict[int, dict[tuple[str, int], TimerState]]:
    """The timers of these tickets, per ticket and (kind, level), in one query."""
    result: dict[int, dict[tuple[str, int], TimerState]] = {t: {} for t in ticket_ids}
    t = EscalationTimer
    stmt = select(t.id, t.ticket_id, t.kind, t.level, t.due_at, t.done_at, t.outcome).where(
        t.ticket_id.in_(list(ticket_ids))
    )
    for row in session.execute(stmt):
        timer = TimerState(*row)
        result[timer.ticket_id][(timer.kind, timer.level)] = timer
    return result


# The timer columns planning changes.
_TIMER_STATE = ("due_at", "done_at", "outcome")


def save_timers(
    session: Session, timers: Iterable[TimerState], new_rows: list[dict[str, Any]]
) -> None:
    """Write the changed timers and insert the new ones, each in one executemany."""
    changed = ((t.id, (t.due_at, t.done_at, t.outcome)) for t in timers if t.changed)
    rows.update_rows(session, rows.table_of(EscalationTimer), _TIMER_STATE, changed)
    if new_rows:
        session.execute(insert(EscalationTimer), new_rows)


def schedule(session: Session, ticket: Ticket, clock: ResponseClock, *, new: bool = False) -> None:
    """Create or move the pending timers of a ticket to match its deadlines and status."""
    # A ticket just opened has no timers yet.
    timers = {} if new else timers_of(session, [ticket.id])[ticket.id]
    missing = plan(ticket, clock, timers)
    save_timers(session, timers.values(), [timer_row(ticket.id, d) for d in missing])


def cancel(session: Session, ticket_id: int, kind: TimerKind | None, now: datetime) -> None:
    """Stop the pending timers of a ticket (one kind, or all)."""
    stmt = update(EscalationTimer).where(
        EscalationTimer.ticket_id == ticket_id,
        EscalationTimer.outcome == TimerOutcome.PENDING.value,
    )
    if kind is not None:
        stmt = stmt.where(EscalationTimer.kind == kind.value)
    session.execute(
        stmt.values(done_at=now, outcome=TimerOutcome.CANCELLED.value).execution_options(
            synchronize_session=False
        )
    )


def rearm(session: Session, ticket_id: int, kind: TimerKind) -> None:
    """Make cancelled timers of a reopened ticket pending again (escalated steps stay done)."""
    session.execute(
        update(EscalationTimer)
        .where(
            EscalationTimer.ticket_id == ticket_id,
            EscalationTimer.kind == kind.value,
            EscalationTimer.outcome == TimerOutcome.CANCELLED.value,
        )
        .values(done_at=None, outcome=TimerOutcome.PENDING.value)
        .execution_options(synchronize_session=False)
    )
