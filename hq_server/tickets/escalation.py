"""Escalation chains as data, copied onto a ticket when it opens, and each escalation's next step.

A chain has levels (on-duty engineer, department manager, customer-service centre manager,
service director by default); each has contacts and a delay. The ack escalation of a ticket
runs from its ack deadline, the restore escalation from its restore deadline: level i is due
at deadline + delay(0) + ... + delay(i), each delay counted on the ticket's working clock or on
the wall clock. A ticket keeps only the next step of each escalation: how many levels it has
reached and when the next is due (null: not running). A grade change moves one time per
escalation, and the scheduler claims a step by advancing the level in the same transaction that
records it, so a restart neither loses nor repeats one.

A third escalation runs while an engineer dispatched on site has not arrived: from the on-site
deadline (the contract policy's on-site target of the grade), the same chain, level by level.
A person may also escalate at once at the customer's request (`escalate_now`): the next level
of the running escalation is notified now, and the levels after it keep their times.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from hq_server.channels.base import EventKind
from hq_server.core.domain import DONE_STATUSES, SYSTEM_ACTOR, TicketAction
from hq_server.core.errors import Conflict
from hq_server.core.settings import Settings
from hq_server.store.models import EscalationChain, Ticket
from hq_server.tickets import notify, paging
from hq_server.tickets.history import history
from hq_server.tickets.sla import AROUND_THE_CLOCK, ResponseClock

logger = logging.getLogger(__name__)

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
    ONSITE = "onsite"  # the dispatched engineer not on site by the on-site deadline


# The escalations that run from the ticket's acknowledge and restore deadlines (the ones a grade
# change moves in a batch; the on-site one is moved by the ticket's own actions).
DEADLINE_KINDS = (TimerKind.ACK, TimerKind.RESTORE)


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
    if kind is TimerKind.ONSITE:
        return ticket.onsite_due_at
    return ticket.ack_due_at if kind is TimerKind.ACK else ticket.restore_due_at


def dispatched(ticket: Ticket) -> bool:
    """Whether an engineer was sent on site and has not arrived yet."""
    dispatch = ticket.dispatch or {}
    return bool(dispatch.get("sent_at")) and not dispatch.get("arrived_at")


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
    if kind is TimerKind.ONSITE:
        return dispatched(ticket)
    return kind is not TimerKind.ACK or ticket.acknowledged_at is None


def level(ticket: Ticket, kind: TimerKind) -> int:
    """How many levels of an escalation the ticket has reached."""
    if kind is TimerKind.ONSITE:
        return ticket.onsite_escalation_level
    return ticket.ack_escalation_level if kind is TimerKind.ACK else ticket.restore_escalation_level


def next_at(ticket: Ticket, kind: TimerKind) -> datetime | None:
    """When the next step of an escalation is due (None: not running)."""
    if kind is TimerKind.ONSITE:
        return ticket.onsite_escalation_at
    return ticket.ack_escalation_at if kind is TimerKind.ACK else ticket.restore_escalation_at


def at_column(kind: TimerKind) -> InstrumentedAttribute[datetime | None]:
    """The ticket column holding when an escalation's next step is due."""
    if kind is TimerKind.ONSITE:
        return Ticket.onsite_escalation_at
    return Ticket.ack_escalation_at if kind is TimerKind.ACK else Ticket.restore_escalation_at


def _set(ticket: Ticket, kind: TimerKind, at: datetime | None, reached: int | None = None) -> None:
    if kind is TimerKind.ACK:
        ticket.ack_escalation_at = at
        if reached is not None:
            ticket.ack_escalation_level = reached
    elif kind is TimerKind.ONSITE:
        ticket.onsite_escalation_at = at
        if reached is not None:
            ticket.onsite_escalation_level = reached
    else:
        ticket.restore_escalation_at = at
        if reached is not None:
            ticket.restore_escalation_level = reached


def schedule(
    ticket: Ticket, clock: ResponseClock, kinds: tuple[TimerKind, ...] = DEADLINE_KINDS
) -> None:
    """Set when each escalation's next step is due from the ticket's deadlines, status and the
    levels reached (after it opens, its grade or calendar changes, or it reopens)."""
    for kind in kinds:
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


_WHAT = {TimerKind.ACK: "acknowledged", TimerKind.RESTORE: "restored", TimerKind.ONSITE: "on site"}


def escalate_step(
    session: Session,
    ticket: Ticket,
    kind: TimerKind,
    level_index: int,
    now: datetime,
    settings: Settings,
    *,
    requested_by: str | None = None,
    reason: str = "",
) -> None:
    """Record one escalation step on the ticket and queue its notifications (the scheduler's
    step when a deadline passed, or a person's at the customer's request)."""
    levels = levels_of(ticket)
    fallback: dict[str, Any] = {"name": f"level {level_index + 1}", "contacts": []}
    level = levels[level_index] if level_index < len(levels) else fallback
    deadline = deadline_of(ticket, kind)
    what = _WHAT[kind]
    contacts = level.get("contacts", [])
    names = ", ".join(c.get("name", "?") for c in contacts) or "no contacts"
    target = f"level {level_index + 1} ({level.get('name')}): {names}"
    if requested_by is None:
        why = f"not {what} by {deadline.isoformat() if deadline else '?'}"
    else:
        why = "at the customer's request" + (f" ({reason})" if reason else "")
    detail = f"{why}: escalated to {target}"
    history(
        session,
        ticket,
        now,
        requested_by or SYSTEM_ACTOR,
        TicketAction.ESCALATED,
        detail,
        kind=kind.value,
        level=level_index + 1,
        level_name=level.get("name"),
        contacts=[c.get("name") for c in contacts],
        deadline=deadline.isoformat() if deadline else None,
        **({"requested": True, "reason": reason} if requested_by is not None else {}),
    )
    headline = f"not {what}" if requested_by is None else "escalated at the customer's request"
    payload = {
        "event": "escalation",
        "subject": f"[StationWatch] {ticket.number} grade {ticket.grade} {headline}: "
        f"level {level_index + 1} ({level.get('name')})",
        "text": f"{ticket.number} {ticket.title}\nsite {ticket.site.name}\n{detail}\n",
        "ticket": {
            "id": ticket.id,
            "number": ticket.number,
            "title": ticket.title,
            "site": ticket.site.name,
            "grade": ticket.grade,
            "status": ticket.status,
            "ack_due_at": _iso(ticket.ack_due_at),
            "restore_due_at": _iso(ticket.restore_due_at),
        },
        "kind": kind.value,
        "level": level_index + 1,
        "level_name": level.get("name"),
        "at": now.isoformat(),
    }
    if requested_by is not None:
        payload["requested_by"] = requested_by
    # A step taken at the customer's request and the scheduler's step of the same level are
    # the same step: one key, so its contacts are told once.
    limits = paging.PagingLimits.of(settings)
    for index, contact in enumerate(contacts):
        key = f"escalation:{ticket.id}:{kind.value}:{level_index}:{index}"
        user = contact.get("user")
        if user:  # an HQ user: paged through their contact methods
            name = ticket.on_duty if user == paging.ON_DUTY_USER else str(user)
            if name:
                facts = paging.page_facts(ticket, ticket.site, EventKind.ESCALATED)
                paging.page(session, name, facts, f"{key}:page", now, limits, team_id=None)
        notify.notify_contact(
            session,
            ticket,
            contact,
            {**payload, "contact": contact.get("name")},
            key,
            now,
            settings,
            contact_at=(level_index, index),
        )
    logger.warning("ticket %s: %s", ticket.number, detail)


def escalate_now(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    reason: str,
    settings: Settings,
    clock: ResponseClock,
) -> TimerKind:
    """Escalate to the next level at once, at the customer's request: of the acknowledge
    escalation while unacknowledged, else of the restore escalation. The levels after it stay
    due when the deadline would have made them due. Conflict when no level is left."""
    if ticket.status in DONE_STATUSES:
        raise Conflict(f"ticket {ticket.number} is {ticket.status}: nothing to escalate")
    kind = TimerKind.ACK if runs(ticket, TimerKind.ACK) else TimerKind.RESTORE
    reached = level(ticket, kind)
    if reached >= len(levels_of(ticket)):
        raise Conflict(
            f"ticket {ticket.number}: its {kind.value} escalation has reached its last level"
        )
    escalate_step(session, ticket, kind, reached, now, settings, requested_by=who, reason=reason)
    _set(ticket, kind, next_at(ticket, kind), reached + 1)
    schedule(ticket, clock, (kind,))
    return kind


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
