"""Ticket policy: alarm transitions in, tickets opened/updated with deadlines and history out.

One condition, one ticket: an alarm that becomes active opens a ticket unless its fingerprint
(site, fault_key) already has an open one. The database enforces it too (partial unique index
uq_tickets_open_fingerprint); losing that race is handled by using the ticket that won.
A CLEAR never resolves a ticket: an engineer does (ticket actions come later).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.db import insert_ignoring_conflict
from hq_server.domain import OPEN_STATUSES, TicketAction, TicketStatus
from hq_server.models import Alarm, Ticket, TicketCounter, TicketEvent
from hq_server.sla import deadlines_for

logger = logging.getLogger(__name__)

TICKET_NUMBER_RE = re.compile(r"^SW-(\d{4})-(\d{6,})$")
_TITLE_MAX = 300


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
class TicketOutcome:
    """What the policy did to a ticket for one transition."""

    ticket: Ticket
    opened: bool


def format_number(year: int, serial: int) -> str:
    """A ticket number: SW-<year>-<6-digit serial of that year>."""
    return f"SW-{year:04d}-{serial:06d}"


def allocate_number(session: Session, year: int) -> str:
    """The next ticket number of `year`; the counter row stays locked until the commit."""
    bump = (
        update(TicketCounter)
        .where(TicketCounter.year == year)
        .values(last_number=TicketCounter.last_number + 1)
        .returning(TicketCounter.last_number)
        .execution_options(synchronize_session=False)
    )
    serial = session.execute(bump).scalar_one_or_none()
    if serial is None:
        dialect = session.get_bind().dialect.name
        session.execute(
            insert_ignoring_conflict(
                dialect, TicketCounter, {"year": year, "last_number": 0}, ["year"]
            )
        )
        serial = session.execute(bump).scalar_one()
    return format_number(year, serial)


def ticket_title(alarm: Alarm) -> str:
    """ "<device_id>: <title>", with the component when there is one."""
    title = f"{alarm.device_id}: {alarm.title}"
    if alarm.component:
        title += f" ({alarm.component})"
    return title[:_TITLE_MAX]


def find_open_ticket(session: Session, site_id: int, fault_key: str) -> Ticket | None:
    """The open ticket of a fingerprint, if any."""
    stmt = select(Ticket).where(
        Ticket.site_id == site_id,
        Ticket.fault_key == fault_key,
        Ticket.status.in_(OPEN_STATUSES),
    )
    return session.scalars(stmt).one_or_none()


def _history(
    session: Session,
    ticket: Ticket,
    at: datetime,
    who: str,
    what: TicketAction,
    detail: str,
    **data: object,
) -> None:
    session.add(
        TicketEvent(ticket_id=ticket.id, at=at, who=who, what=what.value, detail=detail, data=data)
    )


def open_ticket(session: Session, alarm: Alarm, now: datetime, who: str) -> TicketOutcome:
    """Open a ticket for an active alarm; if another transaction opened one first, return it."""
    deadlines = deadlines_for(alarm.grade, now, alarm.site)
    try:
        with session.begin_nested():
            ticket = Ticket(
                number=allocate_number(session, now.year),
                site_id=alarm.site_id,
                alarm_id=alarm.id,
                fault_key=alarm.fault_key,
                device_id=alarm.device_id,
                code=alarm.code,
                component=alarm.component,
                grade=alarm.grade,
                status=TicketStatus.NEW.value,
                title=ticket_title(alarm),
                opened_at=now,
                ack_due_at=deadlines.ack_due_at,
                restore_due_at=deadlines.restore_due_at,
                alarm_active=alarm.active,
                updated_at=now,
            )
            session.add(ticket)
            session.flush()
            _history(
                session,
                ticket,
                now,
                who,
                TicketAction.OPENED,
                f"opened for grade {alarm.grade} alarm {alarm.fault_key}",
                grade=alarm.grade,
                alarm_id=alarm.id,
            )
            session.flush()
    except IntegrityError:
        existing = find_open_ticket(session, alarm.site_id, alarm.fault_key)
        if existing is None:
            raise
        logger.info(
            "site=%s fault=%s: ticket %s was opened concurrently, using it",
            alarm.site_id,
            alarm.fault_key,
            existing.number,
        )
        return TicketOutcome(existing, opened=False)
    logger.info(
        "site=%s fault=%s: opened ticket %s grade %s",
        alarm.site_id,
        alarm.fault_key,
        ticket.number,
        ticket.grade,
    )
    return TicketOutcome(ticket, opened=True)


def _change_grade(session: Session, ticket: Ticket, grade: int, now: datetime, who: str) -> None:
    """Set a ticket's grade and recompute its deadlines from opened_at."""
    old = ticket.grade
    deadlines = deadlines_for(grade, ticket.opened_at, ticket.site)
    ticket.grade = grade
    ticket.ack_due_at = deadlines.ack_due_at
    ticket.restore_due_at = deadlines.restore_due_at
    ticket.updated_at = now
    _history(
        session,
        ticket,
        now,
        who,
        TicketAction.GRADE_CHANGED,
        f"grade {old} -> {grade}",
        old=old,
        new=grade,
        ack_due_at=_iso(deadlines.ack_due_at),
        restore_due_at=_iso(deadlines.restore_due_at),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def apply_transition(session: Session, t: AlarmTransition, now: datetime) -> TicketOutcome | None:
    """Apply the ticket policy to one alarm transition; returns the ticket touched, if any."""
    alarm = t.alarm
    ticket = find_open_ticket(session, alarm.site_id, alarm.fault_key)
    if t.kind is TransitionKind.CLEARED:
        if ticket is None or not ticket.alarm_active:
            return None if ticket is None else TicketOutcome(ticket, opened=False)
        ticket.alarm_active = False
        ticket.updated_at = now
        _history(session, ticket, now, t.who, TicketAction.ALARM_CLEARED, "alarm cleared")
        return TicketOutcome(ticket, opened=False)

    if ticket is None:
        worsened = t.old_grade is not None and alarm.grade < t.old_grade
        if t.kind is TransitionKind.RAISED or worsened:
            # An active alarm with no open ticket: someone must look at it. (A grade that got
            # better on an alarm whose ticket an engineer already resolved opens nothing.)
            return open_ticket(session, alarm, now, t.who)
        return None

    if not ticket.alarm_active:
        ticket.alarm_active = True
        ticket.updated_at = now
        _history(
            session,
            ticket,
            now,
            t.who,
            TicketAction.ALARM_RAISED_AGAIN,
            f"alarm raised again (grade {alarm.grade})",
            grade=alarm.grade,
        )
    if alarm.grade != ticket.grade:
        _change_grade(session, ticket, alarm.grade, now, t.who)
    return TicketOutcome(ticket, opened=False)
