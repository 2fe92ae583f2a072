"""Ticket policy: alarm transitions in, tickets opened/updated with deadlines and history out.

One condition, one ticket: an alarm that becomes active opens a ticket unless its fingerprint
(site, fault_key) already has an open one. The database enforces it too (partial unique index
uq_tickets_open_fingerprint); losing that race is handled by using the ticket that won.
A CLEAR never resolves a ticket: an engineer does (hq_server.ticket_actions).

Before a new ticket is opened for a raised alarm, in this order:
- a maintenance window matching the alarm holds it (the window's end opens the ticket);
- a device "unreachable" alarm joins the site's outage ticket (hq_server.outage);
- a ticket of the same fingerprint resolved within the reopen window (or any time, for a
  flapping alarm) is reopened instead.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server import escalation, ticket_clock
from hq_server.db import insert_ignoring_conflict
from hq_server.domain import OPEN_STATUSES, TicketAction, TicketStatus
from hq_server.models import Alarm, Site, Ticket, TicketCounter, TicketEvent
from hq_server.settings import Settings

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
class TicketPolicy:
    """Settings of the alarm and ticket policy (from hq_server.settings.Settings)."""

    reopen_window: timedelta = timedelta(minutes=30)
    outage_min_devices: int = 3
    on_duty: str = ""
    flap_window: int = 11
    flap_high: float = 50.0
    flap_low: float = 25.0

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
        )


DEFAULT_POLICY = TicketPolicy()


@dataclass(frozen=True, slots=True)
class Subject:
    """What a new ticket is about: one alarm's fingerprint, or a site outage."""

    site: Site
    fault_key: str
    device_id: str
    code: str
    component: str
    grade: int
    title: str
    symptom: str
    alarm_id: int | None

    @classmethod
    def of(cls, alarm: Alarm) -> Subject:
        """The subject of an alarm's ticket."""
        return cls(
            site=alarm.site,
            fault_key=alarm.fault_key,
            device_id=alarm.device_id,
            code=alarm.code,
            component=alarm.component,
            grade=alarm.grade,
            title=ticket_title(alarm),
            symptom=alarm.title,
            alarm_id=alarm.id,
        )


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


def history(
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


def open_ticket(
    session: Session, alarm: Alarm, now: datetime, who: str, on_duty: str = ""
) -> TicketOutcome:
    """Open a ticket for an active alarm; if another transaction opened one first, return it."""
    return open_subject(session, Subject.of(alarm), now, who, on_duty, alarm_active=alarm.active)


def open_subject(
    session: Session,
    subject: Subject,
    now: datetime,
    who: str,
    on_duty: str = "",
    *,
    alarm_active: bool = True,
) -> TicketOutcome:
    """Open a ticket with deadlines, escalation chain and timers; reuse a concurrent winner."""
    site = subject.site
    try:
        with session.begin_nested():
            ticket = Ticket(
                number=allocate_number(session, now.year),
                site_id=site.id,
                site=site,
                alarm_id=subject.alarm_id,
                fault_key=subject.fault_key,
                device_id=subject.device_id,
                code=subject.code,
                component=subject.component,
                grade=subject.grade,
                status=TicketStatus.NEW.value,
                title=subject.title[:_TITLE_MAX],
                symptom=subject.symptom,
                on_duty=on_duty,
                assignee="",
                time_spent_minutes=0,
                opened_at=now,
                alarm_active=alarm_active,
                updated_at=now,
                escalation=escalation.chain_for(session, site.customer, subject.grade),
            )
            # Deadlines before the INSERT (one statement less per ticket), timers after it.
            deadlines = ticket_clock.compute(session, ticket)
            ticket.ack_due_at = deadlines.ack_due_at
            ticket.restore_due_at = deadlines.restore_due_at
            session.add(ticket)
            session.flush()
            escalation.schedule(
                session, ticket, ticket_clock.ticket_clock(session, ticket), new=True
            )
            history(
                session,
                ticket,
                now,
                who,
                TicketAction.OPENED,
                f"opened for grade {subject.grade} alarm {subject.fault_key}",
                grade=subject.grade,
                alarm_id=subject.alarm_id,
                escalation_chain=ticket.escalation["name"] if ticket.escalation else None,
            )
            session.flush()
    except IntegrityError:
        existing = find_open_ticket(session, site.id, subject.fault_key)
        if existing is None:
            raise
        logger.info(
            "site=%s fault=%s: ticket %s was opened concurrently, using it",
            site.id,
            subject.fault_key,
            existing.number,
        )
        return TicketOutcome(existing, opened=False)
    logger.info(
        "site=%s fault=%s: opened ticket %s grade %s",
        site.id,
        subject.fault_key,
        ticket.number,
        ticket.grade,
    )
    return TicketOutcome(ticket, opened=True)


def _change_grade(session: Session, ticket: Ticket, grade: int, now: datetime, who: str) -> None:
    """Set a ticket's grade and recompute its deadlines and timers from opened_at."""
    old = ticket.grade
    ticket.grade = grade
    deadlines = ticket_clock.refresh(session, ticket)
    ticket.updated_at = now
    history(
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


def apply_transition(
    session: Session, t: AlarmTransition, now: datetime, policy: TicketPolicy = DEFAULT_POLICY
) -> TicketOutcome | None:
    """Apply the ticket policy to one alarm transition; returns the ticket touched, if any."""
    alarm = t.alarm
    ticket = find_open_ticket(session, alarm.site_id, alarm.fault_key)
    if t.kind is TransitionKind.CLEARED:
        if ticket is None or not ticket.alarm_active:
            return None if ticket is None else TicketOutcome(ticket, opened=False)
        ticket.alarm_active = False
        ticket.updated_at = now
        if not alarm.flapping:  # a flapping alarm changes the flag, not the history
            history(session, ticket, now, t.who, TicketAction.ALARM_CLEARED, "alarm cleared")
        return TicketOutcome(ticket, opened=False)

    if ticket is None:
        worsened = t.old_grade is not None and alarm.grade < t.old_grade
        if t.kind is TransitionKind.RAISED or worsened:
            # An active alarm with no open ticket: someone must look at it. (A grade that got
            # better on an alarm whose ticket an engineer already resolved opens nothing.)
            return ticket_for_active_alarm(session, alarm, now, t.who, policy)
        return None

    if not ticket.alarm_active:
        ticket.alarm_active = True
        ticket.updated_at = now
        if not alarm.flapping:
            history(
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


def ticket_for_active_alarm(
    session: Session, alarm: Alarm, now: datetime, who: str, policy: TicketPolicy
) -> TicketOutcome | None:
    """The ticket an active alarm without an open ticket gets: held, grouped, reopened or new."""
    # Imported here: these modules build on this one.
    from hq_server import maintenance, outage, ticket_actions

    window = maintenance.active_window(session, alarm, now)
    if window is not None:
        logger.info(
            "site=%s fault=%s: held by maintenance window %s until %s",
            alarm.site_id,
            alarm.fault_key,
            window.id,
            window.ends_at.isoformat(),
        )
        return None
    grouped = outage.group(session, alarm, now, who, policy)
    if grouped is not None:
        return grouped
    since = None if alarm.flapping else now - policy.reopen_window
    recent = find_resolved_ticket(session, alarm.site_id, alarm.fault_key, since)
    if recent is not None:
        ticket_actions.reopen(
            session,
            recent,
            now,
            who,
            reason=f"alarm raised again (grade {alarm.grade}) soon after the ticket was resolved",
        )
        if alarm.grade != recent.grade:
            _change_grade(session, recent, alarm.grade, now, who)
        recent.alarm_active = True
        return TicketOutcome(recent, opened=False)
    outcome = open_ticket(session, alarm, now, who, policy.on_duty)
    if outcome.opened:
        outage.after_open(session, alarm, outcome.ticket, now, who)
    return outcome


def find_resolved_ticket(
    session: Session, site_id: int, fault_key: str, since: datetime | None
) -> Ticket | None:
    """The latest ticket of a fingerprint resolved at or after `since` (None: ever)."""
    stmt = select(Ticket).where(
        Ticket.site_id == site_id,
        Ticket.fault_key == fault_key,
        Ticket.status == TicketStatus.RESOLVED.value,
    )
    if since is not None:
        stmt = stmt.where(Ticket.resolved_at >= since)
    return session.scalars(stmt.order_by(Ticket.resolved_at.desc()).limit(1)).first()
