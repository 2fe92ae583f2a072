"""A ticket's SLA clock: its contract's SLA policy (hq_server.customers.policies; the default
policy for a site without one), its calendar, its pauses, its stored deadlines and timers.

The deadlines count from `sla_started_at` when set (an upgrade confirmed by a person: the new
grade's deadlines count from its confirmation), else from `opened_at`; pauses before that start
do not move them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.core.domain import OPEN_STATUSES, TicketAction
from hq_server.customers.policies import ContractPolicy, contract_for_site
from hq_server.store.models import Calendar, Site, Ticket
from hq_server.tickets import escalation
from hq_server.tickets.history import history
from hq_server.tickets.sla import (
    CalendarSpec,
    Deadlines,
    ResponseClock,
    deadlines_for,
    paused_time,
    response_clock,
)
from protocol.grades import Grade


def calendar_spec(
    session: Session, site: Site, contract: ContractPolicy | None = None
) -> CalendarSpec:
    """The calendar a site works on: its contract policy's, else its own, else the default
    hours in its timezone."""
    if contract is None:
        contract = contract_for_site(session, site)
    calendar_id = contract.calendar_id if contract.calendar_id is not None else site.calendar_id
    if calendar_id is None:
        return CalendarSpec(timezone=site.timezone)
    calendar = session.get_one(Calendar, calendar_id)
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
    contract = contract_for_site(session, ticket.site)
    policy = contract.grades[Grade(ticket.grade)]
    return response_clock(policy, calendar_spec(session, ticket.site, contract))


def clock_start(ticket: Ticket) -> datetime:
    """When the ticket's deadlines start counting."""
    return ticket.sla_started_at or ticket.opened_at


def _pauses_since(ticket: Ticket, start: datetime) -> list[tuple[datetime, datetime]]:
    return [(max(a, start), b) for a, b in pause_intervals(ticket) if b > start]


def compute(session: Session, ticket: Ticket) -> Deadlines:
    """The ticket's deadlines from its clock start, grade, contract policy, calendar, pauses."""
    contract = contract_for_site(session, ticket.site)
    spec = calendar_spec(session, ticket.site, contract)
    start = clock_start(ticket)
    return deadlines_for(ticket.grade, start, spec, _pauses_since(ticket, start), contract.grades)


def onsite_due(session: Session, ticket: Ticket) -> datetime | None:
    """When a dispatched engineer must be on site: the on-site target of the ticket's grade in
    its contract policy, counted like its other deadlines; None without a target."""
    contract = contract_for_site(session, ticket.site)
    minutes = contract.onsite_minutes.get(Grade(ticket.grade))
    if minutes is None:
        return None
    clock = ticket_clock(session, ticket)
    start = clock_start(ticket)
    shift = paused_time(clock, _pauses_since(ticket, start))
    return clock.add(start, timedelta(minutes=minutes) + shift)


def refresh(session: Session, ticket: Ticket) -> Deadlines:
    """Recompute and store the deadlines (the on-site one too while an engineer is on the way),
    and move the escalations' next steps with them."""
    deadlines = compute(session, ticket)
    ticket.ack_due_at = deadlines.ack_due_at
    ticket.restore_due_at = deadlines.restore_due_at
    clock = ticket_clock(session, ticket)
    escalation.schedule(ticket, clock)
    if escalation.dispatched(ticket):
        ticket.onsite_due_at = onsite_due(session, ticket)
        escalation.schedule(ticket, clock, (escalation.TimerKind.ONSITE,))
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
