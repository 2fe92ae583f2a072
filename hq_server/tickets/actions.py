"""What engineers do to tickets: acknowledge, assign, comment, change status, resolve, close,
reopen. Each action checks the status it starts from (InvalidTransition -> 409) and leaves a
history entry; the SLA clock and escalation timers follow (pending customer pauses the clock).

    new ──ack──> acknowledged ──start──> in_progress <──back── pending_customer
     └──────────────start──────────────────┘ └──pending──────────────┘
    any open ──resolve──> resolved ──close──> closed;  resolved/closed ──reopen──> in_progress
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from hq_server.core.domain import DONE_STATUSES, TicketAction, TicketStatus
from hq_server.core.errors import Conflict, InvalidTransition, NotFound
from hq_server.store.models import Ticket
from hq_server.tickets import deadlines, escalation
from hq_server.tickets.escalation import TimerKind
from hq_server.tickets.history import history
from hq_server.tickets.records import find_open_ticket

logger = logging.getLogger(__name__)

S = TicketStatus
# The statuses an engineer may move a ticket to with POST .../status, and from where.
STATUS_MOVES: dict[TicketStatus, frozenset[TicketStatus]] = {
    S.IN_PROGRESS: frozenset({S.NEW, S.ACKNOWLEDGED, S.PENDING_CUSTOMER}),
    S.PENDING_CUSTOMER: frozenset({S.ACKNOWLEDGED, S.IN_PROGRESS}),
}


def get_ticket(session: Session, ticket_id: int, *, for_update: bool = True) -> Ticket:
    """The ticket, row-locked for the action on PostgreSQL; NotFound otherwise."""
    ticket = session.get(Ticket, ticket_id, with_for_update=for_update or None)
    if ticket is None:
        raise NotFound(f"no ticket {ticket_id}")
    return ticket


def _status(ticket: Ticket) -> TicketStatus:
    return TicketStatus(ticket.status)


def _refuse(ticket: Ticket, action: str, hint: str = "") -> InvalidTransition:
    message = f"ticket {ticket.number} is {ticket.status}: cannot {action}"
    return InvalidTransition(f"{message}; {hint}" if hint else message)


def _require_open(ticket: Ticket, action: str) -> None:
    if _status(ticket) in DONE_STATUSES:
        raise _refuse(ticket, action, "reopen it first")


def _touch(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    what: TicketAction,
    detail: str,
    **data: object,
) -> None:
    ticket.updated_at = now
    history(session, ticket, now, who, what, detail, **data)


def acknowledge(session: Session, ticket: Ticket, now: datetime, who: str) -> None:
    """new -> acknowledged; stops the acknowledge escalation."""
    if _status(ticket) is not S.NEW:
        raise _refuse(ticket, "acknowledge", "only a new ticket is acknowledged")
    _mark_acknowledged(session, ticket, now)
    ticket.status = S.ACKNOWLEDGED.value
    late = ticket.ack_due_at is not None and now > ticket.ack_due_at
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.ACKNOWLEDGED,
        "acknowledged" + (" after the deadline" if late else ""),
        late=late,
    )


def _mark_acknowledged(session: Session, ticket: Ticket, now: datetime) -> None:
    if ticket.acknowledged_at is None:
        ticket.acknowledged_at = now
        escalation.stop(ticket, TimerKind.ACK)


def assign(
    session: Session, ticket: Ticket, now: datetime, who: str, assignee: str, on_duty: str | None
) -> None:
    """Set the assignee (and the on-duty engineer) of an open ticket."""
    _require_open(ticket, "assign")
    ticket.assignee = assignee
    if on_duty is not None:
        ticket.on_duty = on_duty
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.ASSIGNED,
        f"assigned to {assignee}",
        assignee=assignee,
        on_duty=ticket.on_duty,
    )


def comment(
    session: Session, ticket: Ticket, now: datetime, who: str, seen: str, done: str, minutes: int
) -> None:
    """A history entry: what was seen, what was done, time spent (added to the ticket's)."""
    ticket.time_spent_minutes += minutes
    detail = "; ".join(
        part for part in (f"seen: {seen}" if seen else "", f"done: {done}" if done else "") if part
    )
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.COMMENT,
        detail,
        seen=seen,
        done=done,
        minutes=minutes,
    )


def change_status(
    session: Session, ticket: Ticket, now: datetime, who: str, target: TicketStatus, note: str
) -> None:
    """Move to in_progress or pending_customer; pending pauses the SLA clock, leaving resumes."""
    allowed = STATUS_MOVES.get(target)
    if allowed is None:
        raise InvalidTransition(
            f"status {target} is set by its own action (acknowledge, resolve, close, reopen)"
        )
    current = _status(ticket)
    if current not in allowed:
        raise _refuse(ticket, f"move to {target}", f"allowed from {', '.join(sorted(allowed))}")
    data: dict[str, Any] = {"old": current.value, "new": target.value}
    if target is S.IN_PROGRESS:
        _mark_acknowledged(session, ticket, now)
    if current is S.PENDING_CUSTOMER:
        _resume_clock(session, ticket, now, data)
    if target is S.PENDING_CUSTOMER:
        ticket.paused_since = now
    ticket.status = target.value
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.STATUS_CHANGED,
        f"{current} -> {target}" + (f": {note}" if note else ""),
        **data,
    )


def _resume_clock(session: Session, ticket: Ticket, now: datetime, data: dict[str, Any]) -> None:
    """Close the running pause and push the deadlines back by its working time."""
    if ticket.paused_since is None:
        return
    deadlines.add_pause(ticket, ticket.paused_since, now)
    ticket.paused_since = None
    due = deadlines.refresh(session, ticket)
    data["ack_due_at"] = _iso(due.ack_due_at)
    data["restore_due_at"] = _iso(due.restore_due_at)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class Resolution:
    """How a fault was resolved (the fields of the seeds' fault records)."""

    cause: str
    fix: str
    tested: bool
    confirmed_by_customer: bool
    faq: bool
    faq_text: str
    time_spent_minutes: int

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "cause": self.cause,
            "fix": self.fix,
            "tested": self.tested,
            "confirmed_by_customer": self.confirmed_by_customer,
            "faq": self.faq,
            "faq_text": self.faq_text,
        }


def resolve(session: Session, ticket: Ticket, now: datetime, who: str, res: Resolution) -> None:
    """Any open status -> resolved, with the resolution; stops every escalation."""
    _require_open(ticket, "resolve")
    if ticket.paused_since is not None:
        _resume_clock(session, ticket, now, {})
    ticket.acknowledged_at = ticket.acknowledged_at or now
    escalation.stop(ticket)
    ticket.status = S.RESOLVED.value
    ticket.resolved_at = now
    ticket.resolution = res.as_json()
    ticket.time_spent_minutes += res.time_spent_minutes
    late = ticket.restore_due_at is not None and now > ticket.restore_due_at
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.RESOLVED,
        f"resolved: {res.fix}",
        **res.as_json(),
        minutes=res.time_spent_minutes,
        late=late,
    )


def close(session: Session, ticket: Ticket, now: datetime, who: str, note: str) -> None:
    """resolved -> closed."""
    if _status(ticket) is not S.RESOLVED:
        raise _refuse(ticket, "close", "resolve it first")
    ticket.status = S.CLOSED.value
    ticket.closed_at = now
    _touch(session, ticket, now, who, TicketAction.CLOSED, note or "closed")


def reopen(session: Session, ticket: Ticket, now: datetime, who: str, reason: str) -> None:
    """resolved/closed -> in_progress (or new if never acknowledged); restore escalation again."""
    if _status(ticket) not in DONE_STATUSES:
        raise _refuse(ticket, "reopen", "it is still open")
    other = find_open_ticket(session, ticket.site_id, ticket.fault_key)
    if other is not None:
        raise Conflict(
            f"ticket {other.number} is already open for {ticket.fault_key}: work on that one"
        )
    old = ticket.status
    ticket.status = (S.IN_PROGRESS if ticket.acknowledged_at else S.NEW).value
    ticket.resolved_at = None
    ticket.closed_at = None
    deadlines.refresh(session, ticket)  # and the escalations run again from their levels
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.REOPENED,
        f"reopened: {reason}",
        old=old,
        new=ticket.status,
    )
    session.flush()
    logger.info("ticket %s reopened by %s", ticket.number, who)
