"""Tickets: numbers, titles, lookups, and opening one ticket with its deadlines and escalation.

The ticket policy (which alarm transition opens, updates, reopens or groups which ticket) is in
hq_server.tickets.book, which applies it to a whole batch of transitions at once.
One condition, one ticket: at most one open ticket per fingerprint (site, fault_key); the
database enforces it too (partial unique index uq_tickets_open_fingerprint).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.core.domain import OPEN_STATUSES, TicketAction, TicketStatus
from hq_server.oncall import teams
from hq_server.store import rows
from hq_server.store.db import insert_ignoring_conflict
from hq_server.store.models import Alarm, Site, Ticket, TicketCounter
from hq_server.tickets import deadlines, escalation, paging
from hq_server.tickets.history import history

logger = logging.getLogger(__name__)

TICKET_NUMBER_RE = re.compile(r"^SW-(\d{4})-(\d{6,})$")
_TITLE_MAX = 300


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
    title_zh: str = ""
    # A ticket opened by a person (hq_server.tickets.manual): how it came in, who reported it,
    # the customer's contact, the grade as the customer's representative gave it.
    source: str = "alarm"
    reporter: str = ""
    contact_id: int | None = None
    customer_grade: str = ""

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
            title_zh=ticket_title(alarm, alarm.title_zh) if alarm.title_zh else "",
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
    return allocate_numbers(session, year, 1)[0]


def allocate_numbers(session: Session, year: int, count: int) -> list[str]:
    """`count` consecutive ticket numbers of `year` in one statement (the row stays locked)."""
    bump = (
        update(TicketCounter)
        .where(TicketCounter.year == year)
        .values(last_number=TicketCounter.last_number + count)
        .returning(TicketCounter.last_number)
        .execution_options(synchronize_session=False)
    )
    last = session.execute(bump).scalar_one_or_none()
    if last is None:
        dialect = session.get_bind().dialect.name
        session.execute(
            insert_ignoring_conflict(
                dialect, TicketCounter, {"year": year, "last_number": 0}, ["year"]
            )
        )
        last = session.execute(bump).scalar_one()
    return [format_number(year, serial) for serial in range(last - count + 1, last + 1)]


class ConcurrentTicket(Exception):
    """Another transaction opened a ticket for a fingerprint this one was opening: the
    transaction is spoiled (PostgreSQL) and must be run again from the start."""


def fold(text: str) -> str:
    """Text as it is searched: compatibility-normalised (NFKC) and case-folded, so that any case
    of any script matches ("ΣΦΆΛΜΑ", "σφάλμα" and "Σφάλμα" alike; full-width letters as ASCII).
    Done in Python: SQLite's lower() folds ASCII only, PostgreSQL's follows the locale."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def ticket_title(alarm: Alarm, title: str | None = None) -> str:
    """ "<device_id>: <title>", with the component when there is one; `title` instead of the
    alarm's (its Chinese title) when given."""
    title = f"{alarm.device_id}: {alarm.title if title is None else title}"
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


def new_ticket(
    session: Session, subject: Subject, now: datetime, on_duty: str, *, alarm_active: bool = True
) -> Ticket:
    """A new ticket (not yet added to the session, without its number) with its deadlines and
    escalation chain; every column is set (hq_server.store.rows inserts it with Core). Built like a
    detached copy: a batch opens hundreds, and the ORM's constructor costs more than the rest."""
    site = subject.site
    # The rota's engineer on duty for the site now; the configured one if the rota has none.
    on_duty = teams.on_duty_for_site(session, site, now) or on_duty
    values = {
        "number": "",
        "site_id": site.id,
        "site": site,
        "alarm_id": subject.alarm_id,
        "fault_key": subject.fault_key,
        "device_id": subject.device_id,
        "code": subject.code,
        "component": subject.component,
        "grade": subject.grade,
        "status": TicketStatus.NEW.value,
        "title": subject.title[:_TITLE_MAX],
        "title_zh": subject.title_zh[:_TITLE_MAX],
        # Both titles are searched: an engineer may look for either.
        "title_folded": fold("\n".join(filter(None, (subject.title, subject.title_zh)))),
        "symptom": subject.symptom,
        "on_duty": on_duty,
        "assignee": "",
        "time_spent_minutes": 0,
        "opened_at": now,
        "alarm_active": alarm_active,
        "updated_at": now,
        "escalation": escalation.chain_for(session, site.customer, subject.grade),
        "acknowledged_at": None,
        "resolved_at": None,
        "closed_at": None,
        "resolution": None,
        "paused_since": None,
        "pauses": None,
        "ack_escalation_level": 0,
        "restore_escalation_level": 0,
        "source": subject.source,
        "reporter": subject.reporter,
        "contact_id": subject.contact_id,
        "customer_grade": subject.customer_grade,
        "sla_started_at": None,
        "promised_fix_at": None,
        "plan": "",
        "dispatch": None,
        "onsite_due_at": None,
        "onsite_escalation_level": 0,
        "onsite_escalation_at": None,
    }
    ticket = rows.detached(Ticket, values)
    due = deadlines.compute(session, ticket)
    ticket.ack_due_at = due.ack_due_at
    ticket.restore_due_at = due.restore_due_at
    escalation.schedule(ticket, deadlines.ticket_clock(session, ticket))
    return ticket


def opened_detail(subject: Subject) -> str:
    """The history entry of a ticket's opening."""
    if subject.source != "alarm":
        given = f" (given as {subject.customer_grade})" if subject.customer_grade else ""
        reporter = f" by {subject.reporter}" if subject.reporter else ""
        return f"opened for grade {subject.grade}{given}: reported{reporter} by {subject.source}"
    return f"opened for grade {subject.grade} alarm {subject.fault_key}"


def open_subject(
    session: Session,
    subject: Subject,
    now: datetime,
    who: str,
    on_duty: str = "",
    *,
    alarm_active: bool = True,
    paging_limits: paging.PagingLimits = paging.DEFAULT_LIMITS,
) -> TicketOutcome:
    """Open one ticket with deadlines and escalation chain; reuse a concurrent winner."""
    site = subject.site
    try:
        with session.begin_nested():
            ticket = new_ticket(session, subject, now, on_duty, alarm_active=alarm_active)
            ticket.number = allocate_number(session, now.year)
            session.add(ticket)
            session.flush()
            history(
                session,
                ticket,
                now,
                who,
                TicketAction.OPENED,
                opened_detail(subject),
                grade=subject.grade,
                alarm_id=subject.alarm_id,
                escalation_chain=ticket.escalation["name"] if ticket.escalation else None,
            )
            session.flush()
            paging.ticket_opened(session, [ticket], now, paging_limits)
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
