"""What engineers do to tickets: acknowledge, assign, comment, change status, resolve, close,
reopen; and the service desk's records: regrade with a reason, escalate at once at the
customer's request, on-site dispatch, the promised fix date and plan, the customer's
confirmation of the fix. Each action checks the status it starts from (InvalidTransition ->
409) and leaves a history entry; the SLA clock and escalation timers follow (pending customer
pauses the clock).

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
from hq_server.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from hq_server.core.settings import Settings
from hq_server.customers.policies import contract_for_site
from hq_server.store.models import Ticket
from hq_server.tickets import customer_notify, deadlines, escalation, paging
from hq_server.tickets.escalation import TimerKind
from hq_server.tickets.history import history
from hq_server.tickets.paging import DEFAULT_LIMITS, PagingLimits
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
        customer_notify.tell_customer(session, ticket, "acknowledged", now)


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
    # Who at the customer confirmed the fix, when, and what they said of it.
    confirmed_by: str = ""
    confirmed_at: datetime | None = None
    customer_opinion: str = ""

    def as_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "cause": self.cause,
            "fix": self.fix,
            "tested": self.tested,
            "confirmed_by_customer": self.confirmed_by_customer,
            "faq": self.faq,
            "faq_text": self.faq_text,
        } | self.confirmation()

    def confirmation(self) -> dict[str, Any]:
        """Who at the customer confirmed the fix, when, their opinion (what was given)."""
        if not (self.confirmed_by or self.confirmed_at or self.customer_opinion):
            return {}
        return {
            "confirmed_by": self.confirmed_by,
            "confirmed_at": _iso(self.confirmed_at),
            "customer_opinion": self.customer_opinion,
        }


def resolve(session: Session, ticket: Ticket, now: datetime, who: str, res: Resolution) -> None:
    """Any open status -> resolved, with the resolution; stops every escalation."""
    _require_open(ticket, "resolve")
    _check_confirmation(ticket, res.confirmed_by, res.confirmed_at, now)
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
    customer_notify.tell_customer(session, ticket, "resolved", now)


def close(session: Session, ticket: Ticket, now: datetime, who: str, note: str) -> None:
    """resolved -> closed."""
    if _status(ticket) is not S.RESOLVED:
        raise _refuse(ticket, "close", "resolve it first")
    ticket.status = S.CLOSED.value
    ticket.closed_at = now
    _touch(session, ticket, now, who, TicketAction.CLOSED, note or "closed", note=note)


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
        reason=reason,
    )
    session.flush()
    logger.info("ticket %s reopened by %s", ticket.number, who)


def _check_confirmation(ticket: Ticket, by: str, at: datetime | None, now: datetime) -> None:
    if at is not None and not by:
        raise InvalidInput("confirmed_by: say who at the customer confirmed", field="confirmed_by")
    if at is not None and (at > now or at < ticket.opened_at):
        raise InvalidInput(
            "confirmed_at: between the ticket's opening and now", field="confirmed_at"
        )


def confirm(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    by: str,
    at: datetime | None,
    opinion: str,
) -> None:
    """Record the customer's confirmation of the fix of a resolved (or closed) ticket: who
    confirmed, when (default now), their opinion."""
    if _status(ticket) not in DONE_STATUSES:
        raise _refuse(ticket, "record the customer's confirmation", "resolve it first")
    at = at or now
    _check_confirmation(ticket, by, at, now)
    ticket.resolution = {
        **(ticket.resolution or {}),
        "confirmed_by_customer": True,
        "confirmed_by": by,
        "confirmed_at": at.isoformat(),
        "customer_opinion": opinion,
    }
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.CUSTOMER_CONFIRMED,
        f"fix confirmed by {by} at {at.isoformat()}" + (f": {opinion}" if opinion else ""),
        confirmed_by=by,
        confirmed_at=at.isoformat(),
        customer_opinion=opinion,
    )


def regrade(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    given: int | str,
    reason: str,
    confirmed_at: datetime | None = None,
    paging_limits: PagingLimits = DEFAULT_LIMITS,
) -> None:
    """A person changes the grade (given in the customer's scheme), with a reason. An upgrade's
    deadlines count from when the new grade was confirmed (default now) and pages as an alarm's
    raised grade does; a downgrade keeps the start the deadlines count from."""
    _require_open(ticket, "regrade")
    grade, label = contract_for_site(session, ticket.site).grade_of(given)
    if int(grade) == ticket.grade:
        raise InvalidInput(f"grade: the ticket is already grade {ticket.grade}", field="grade")
    confirmed = confirmed_at or now
    if confirmed > now or confirmed < ticket.opened_at:
        raise InvalidInput(
            "confirmed_at: between the ticket's opening and now", field="confirmed_at"
        )
    old = ticket.grade
    upgraded = grade < old
    if upgraded:
        ticket.sla_started_at = confirmed
    ticket.grade = int(grade)
    ticket.customer_grade = label
    due = deadlines.refresh(session, ticket)
    start = deadlines.clock_start(ticket)
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.GRADE_CHANGED,
        f"grade {old} -> {int(grade)} ({label}): {reason}; deadlines count from "
        f"{start.isoformat()}",
        old=old,
        new=int(grade),
        given=label,
        reason=reason,
        upgraded=upgraded,
        confirmed_at=confirmed.isoformat(),
        clock_start=start.isoformat(),
        ack_due_at=_iso(due.ack_due_at),
        restore_due_at=_iso(due.restore_due_at),
        onsite_due_at=_iso(ticket.onsite_due_at),
    )
    if upgraded:
        paging.grade_raised(session, ticket, old, now, paging_limits)


def escalate_now(
    session: Session, ticket: Ticket, now: datetime, who: str, reason: str, settings: Settings
) -> None:
    """Escalate to the next level at once, at the customer's request (recorded, notified)."""
    _require_open(ticket, "escalate")
    escalation.escalate_now(
        session, ticket, now, who, reason, settings, deadlines.ticket_clock(session, ticket)
    )
    ticket.updated_at = now


DISPATCH_STEPS = ("sent_at", "left_at", "arrived_at", "left_site_at")


def dispatch(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    engineer: str | None,
    times: dict[str, datetime | None],
) -> None:
    """Record the on-site dispatch: the engineer sent, when sent, left for the site, arrived,
    left the site (each recorded once given; later ones fill in). Sending starts the on-site
    deadline of the grade (its escalation runs until the engineer arrives)."""
    _require_open(ticket, "dispatch")
    current: dict[str, Any] = dict(ticket.dispatch or {})
    was_sent = bool(current.get("sent_at"))
    if engineer:
        current["engineer"] = engineer
    if not current.get("engineer"):
        raise InvalidInput("engineer: say who is sent on site", field="engineer")
    given = {k: v for k, v in times.items() if v is not None}
    if not was_sent and "sent_at" not in given:
        given["sent_at"] = now
    for step, at in given.items():
        if at > now:
            raise InvalidInput(f"{step}: not in the future", field=step)
        if at < ticket.opened_at:
            raise InvalidInput(f"{step}: before the ticket was opened", field=step)
        current[step] = at.isoformat()
    previous: datetime | None = None
    for step in DISPATCH_STEPS:
        if not current.get(step):
            continue
        at = datetime.fromisoformat(current[step])
        if previous is not None and at < previous:
            raise InvalidInput(f"{step}: before the step it follows", field=step)
        previous = at
    if not current.get("sent_at") and any(current.get(s) for s in DISPATCH_STEPS[1:]):
        raise InvalidInput("sent_at: the engineer is sent first", field="sent_at")
    ticket.dispatch = current
    data: dict[str, Any] = {**current}
    if not was_sent:
        ticket.onsite_due_at = deadlines.onsite_due(session, ticket)
        ticket.onsite_escalation_level = 0
        escalation.schedule(ticket, deadlines.ticket_clock(session, ticket), (TimerKind.ONSITE,))
        data["onsite_due_at"] = _iso(ticket.onsite_due_at)
    if current.get("arrived_at"):
        escalation.stop(ticket, TimerKind.ONSITE)
        arrived = datetime.fromisoformat(current["arrived_at"])
        data["late"] = ticket.onsite_due_at is not None and arrived > ticket.onsite_due_at
    steps = ", ".join(f"{k} {v}" for k, v in given.items())
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.DISPATCH,
        f"on site: {current['engineer']}" + (f": {steps}" if steps else ""),
        **data,
    )


def set_plan(
    session: Session,
    ticket: Ticket,
    now: datetime,
    who: str,
    promised_fix_at: datetime | None,
    plan: str,
) -> None:
    """Record the fix date promised to the customer and the plan to get there."""
    _require_open(ticket, "set the plan of")
    if promised_fix_at is not None and promised_fix_at < ticket.opened_at:
        raise InvalidInput("promised_fix_at: before the ticket was opened", field="promised_fix_at")
    ticket.promised_fix_at = promised_fix_at
    ticket.plan = plan
    when = promised_fix_at.isoformat() if promised_fix_at else "no date"
    _touch(
        session,
        ticket,
        now,
        who,
        TicketAction.PLAN_CHANGED,
        f"fix promised for {when}" + (f": {plan}" if plan else ""),
        promised_fix_at=_iso(promised_fix_at),
        plan=plan,
    )
