"""Escalation chains as data, copied onto a ticket when it opens, and each escalation's next step.

A chain has levels (on-duty engineer, department manager, customer-service centre manager,
service director by default); each has contacts and a delay. The ack escalation of a ticket
runs from its ack deadline, the restore escalation from its restore deadline: level i is due
at deadline + delay(0) + ... + delay(i), each delay counted on the ticket's working clock or on
the wall clock. A ticket keeps only the next step of each escalation: how many levels it has
reached and when the next is due (null: not running). A grade change moves one time per
escalation, and the scheduler claims a step by advancing the level in the same transaction that
records it, so a restart neither loses nor repeats one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from hq_server.core.domain import DONE_STATUSES
from hq_server.store.models import EscalationChain, Ticket
from hq_server.tickets.sla import AROUND_THE_CLOCK, ResponseClock

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
    """Which escalation: of the ack deadline or of the restore deadline."""

    ACK = "ack"
    RESTORE = "restore"


class TimerOutcome(StrEnum):
    """What the scheduler did with a due step."""

    ESCALATED = "escalated"
    CANCELLED = "cancelled"  # the escalation no longer runs (acknowledged, resolved)
    DEFERRED = "deferred"  # held by a maintenance window until its end


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


def levels_of(ticket: Ticket) -> list[dict[str, Any]]:
    """The levels of the ticket's chain snapshot."""
    levels: list[dict[str, Any]] = (ticket.escalation or BUILTIN_CHAIN)["levels"]
    return levels


def _delay(level: dict[str, Any], clock: ResponseClock) -> tuple[ResponseClock, timedelta]:
    level_clock = AROUND_THE_CLOCK if level.get("delay_clock") == "wall" else clock
    return level_clock, timedelta(minutes=int(level.get("delay_minutes", 0)))


def deadline_of(ticket: Ticket, kind: TimerKind) -> datetime | None:
    """The deadline an escalation runs from."""
    return ticket.ack_due_at if kind is TimerKind.ACK else ticket.restore_due_at


def due_at(ticket: Ticket, kind: TimerKind, level: int, clock: ResponseClock) -> datetime | None:
    """When `level` of an escalation is due, from the ticket's deadline; None past the last
    level or without a deadline."""
    at = deadline_of(ticket, kind)
    levels = levels_of(ticket)
    if at is None or level >= len(levels):
        return None
    for step in levels[: level + 1]:
        level_clock, delay = _delay(step, clock)
        at = level_clock.add(at, delay)
    return at


def runs(ticket: Ticket, kind: TimerKind) -> bool:
    """Whether an escalation of this kind runs on the ticket (open; ack: unacknowledged)."""
    if ticket.status in DONE_STATUSES:
        return False
    return kind is not TimerKind.ACK or ticket.acknowledged_at is None


def level(ticket: Ticket, kind: TimerKind) -> int:
    """How many levels of an escalation the ticket has reached."""
    return ticket.ack_escalation_level if kind is TimerKind.ACK else ticket.restore_escalation_level


def next_at(ticket: Ticket, kind: TimerKind) -> datetime | None:
    """When the next step of an escalation is due (None: not running)."""
    return ticket.ack_escalation_at if kind is TimerKind.ACK else ticket.restore_escalation_at


def at_column(kind: TimerKind) -> InstrumentedAttribute[datetime | None]:
    """The ticket column holding when an escalation's next step is due."""
    return Ticket.ack_escalation_at if kind is TimerKind.ACK else Ticket.restore_escalation_at


def _set(ticket: Ticket, kind: TimerKind, at: datetime | None, reached: int | None = None) -> None:
    if kind is TimerKind.ACK:
        ticket.ack_escalation_at = at
        if reached is not None:
            ticket.ack_escalation_level = reached
    else:
        ticket.restore_escalation_at = at
        if reached is not None:
            ticket.restore_escalation_level = reached


def schedule(ticket: Ticket, clock: ResponseClock) -> None:
    """Set when each escalation's next step is due from the ticket's deadlines, status and the
    levels reached (after it opens, its grade or calendar changes, or it reopens)."""
    for kind in TimerKind:
        at = due_at(ticket, kind, level(ticket, kind), clock) if runs(ticket, kind) else None
        _set(ticket, kind, at)


def stop(ticket: Ticket, kind: TimerKind | None = None) -> None:
    """Stop one escalation (or both): acknowledged, resolved."""
    for k in TimerKind if kind is None else (kind,):
        _set(ticket, k, None)


def defer(ticket: Ticket, kind: TimerKind, until: datetime) -> None:
    """Hold the next step until `until` (a maintenance window's end); later levels keep their
    spacing, as they are counted from the step before."""
    _set(ticket, kind, until)


def advance(ticket: Ticket, kind: TimerKind, clock: ResponseClock) -> None:
    """The next step escalated: count it, and set when the level after it is due."""
    at = next_at(ticket, kind)
    assert at is not None
    reached = level(ticket, kind) + 1
    levels = levels_of(ticket)
    if reached < len(levels):
        level_clock, delay = _delay(levels[reached], clock)
        _set(ticket, kind, level_clock.add(at, delay), reached)
    else:
        _set(ticket, kind, None, reached)


def list_chains(session: Session) -> list[EscalationChain]:
    """Every escalation chain, by customer and grade."""
    stmt = select(EscalationChain).order_by(
        EscalationChain.customer, EscalationChain.grade, EscalationChain.id
    )
    return list(session.scalars(stmt))
