"""A ticket's SLA clock: its site's calendar, its pauses, its stored deadlines and timers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.core.domain import OPEN_STATUSES, TicketAction
from hq_server.store.models import Calendar, Site, Ticket
from hq_server.tickets import escalation
from hq_server.tickets.history import history
from hq_server.tickets.sla import (
    CalendarSpec,
    Deadlines,
    ResponseClock,
    deadlines_for,
    response_clock,
)
from protocol.grades import DEFAULT_POLICIES, Grade


def calendar_spec(session: Session, site: Site) -> CalendarSpec:
    """The calendar a site works on (its own, or the default hours in its timezone)."""
    if site.calendar_id is None:
        return CalendarSpec(timezone=site.timezone)
    calendar = session.get_one(Calendar, site.calendar_id)
    return spec_of(calendar)


def spec_of(calendar: Calendar) -> CalendarSpec:
    """The CalendarSpec of a stored calendar."""
    return CalendarSpec(
        timezone=calendar.timezone,
        always_open=calendar.always_open,
        hours=calendar.hours,
        holidays=tuple(calendar.holidays.get("dates", [])),
    )


def pause_intervals(ticket: Ticket) -> list[tuple[datetime, datetime]]:
    """The closed pending-customer intervals of a ticket."""
    stored: list[list[str]] = (ticket.pauses or {}).get("intervals", [])
    return [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in stored]


def add_pause(ticket: Ticket, start: datetime, end: datetime) -> None:
    """Record a closed pause interval (a new dict, so the JSON column sees the change)."""
    intervals: list[Any] = list((ticket.pauses or {}).get("intervals", []))
    intervals.append([start.isoformat(), end.isoformat()])
    ticket.pauses = {"intervals": intervals}


def ticket_clock(session: Session, ticket: Ticket) -> ResponseClock:
    """The clock the ticket's grade runs on at its site."""
    policy = DEFAULT_POLICIES[Grade(ticket.grade)]
    return response_clock(policy, calendar_spec(session, ticket.site))


def compute(session: Session, ticket: Ticket) -> Deadlines:
    """The ticket's deadlines from opened_at, grade, site calendar and pauses."""
    spec = calendar_spec(session, ticket.site)
    return deadlines_for(ticket.grade, ticket.opened_at, spec, pause_intervals(ticket))


def refresh(session: Session, ticket: Ticket) -> Deadlines:
    """Recompute and store the deadlines, and move the escalations' next steps with them."""
    deadlines = compute(session, ticket)
    ticket.ack_due_at = deadlines.ack_due_at
    ticket.restore_due_at = deadlines.restore_due_at
    escalation.schedule(ticket, ticket_clock(session, ticket))
    return deadlines


def refresh_open_tickets(
    session: Session, site_ids: list[int] | None, now: datetime, who: str, why: str
) -> int:
    """Recompute the deadlines of open tickets (at these sites) after a calendar change;
    a ticket whose deadlines moved gets a history entry. Returns how many moved."""
    stmt = select(Ticket).where(Ticket.status.in_(OPEN_STATUSES))
    if site_ids is not None:
        stmt = stmt.where(Ticket.site_id.in_(site_ids))
    moved = 0
    for ticket in session.scalars(stmt):
        before = (ticket.ack_due_at, ticket.restore_due_at)
        after = refresh(session, ticket)
        if before == (after.ack_due_at, after.restore_due_at):
            continue
        moved += 1
        ticket.updated_at = now
        history(
            session,
            ticket,
            now,
            who,
            TicketAction.DEADLINES_CHANGED,
            f"deadlines recomputed: {why}",
            ack_due_at=_iso(after.ack_due_at),
            restore_due_at=_iso(after.restore_due_at),
        )
    return moved


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def list_calendars(session: Session) -> list[Calendar]:
    """Every working-time calendar, by name."""
    return list(session.scalars(select(Calendar).order_by(Calendar.name)))
