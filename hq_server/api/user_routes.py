"""User endpoints (API tokens, any role may read): alarms, tickets, sites."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from agent.wire import API_PREFIX
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import DbDep, ViewerDep
from hq_server.api.errors import ERROR_RESPONSES
from hq_server.api.schemas import AlarmOut, ErrorOut, SiteOut, TicketDetailOut, TicketOut
from hq_server.domain import DONE_STATUSES, OPEN_STATUSES, TicketStatus
from hq_server.errors import NotFound
from hq_server.models import Agent, Alarm, Site, Ticket

router = APIRouter(
    prefix=API_PREFIX,
    tags=["user"],
    route_class=BoundedBodyRoute,
    responses={code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()},
)

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows")]
GradeFilter = Annotated[int | None, Query(ge=1, le=5, description="Only this grade")]
SiteFilter = Annotated[str | None, Query(description="Only this site (by name)")]


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(
    _user: ViewerDep,
    db: DbDep,
    active: Annotated[
        bool | None, Query(description="Only active (true) or cleared (false)")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    limit: Limit = 200,
) -> list[AlarmOut]:
    """Alarms, most recently changed first."""
    stmt = select(Alarm)
    if active is not None:
        stmt = stmt.where(Alarm.active.is_(active))
    if site is not None:
        stmt = stmt.join(Alarm.site).where(Site.name == site)
    if grade is not None:
        stmt = stmt.where(Alarm.grade == grade)
    stmt = stmt.order_by(Alarm.last_change_at.desc(), Alarm.id.desc()).limit(limit)
    with db.session() as session:
        return [AlarmOut.of(a) for a in session.scalars(stmt)]


@router.get("/tickets", response_model=list[TicketOut])
def list_tickets(
    _user: ViewerDep,
    db: DbDep,
    status: Annotated[list[TicketStatus] | None, Query(description="Any of these")] = None,
    open: Annotated[
        bool | None, Query(description="Only open (true) or finished (false) tickets")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    limit: Limit = 200,
) -> list[TicketOut]:
    """Tickets, newest first."""
    stmt = select(Ticket)
    if status:
        stmt = stmt.where(Ticket.status.in_([s.value for s in status]))
    if open is not None:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES if open else DONE_STATUSES))
    if site is not None:
        stmt = stmt.join(Ticket.site).where(Site.name == site)
    if grade is not None:
        stmt = stmt.where(Ticket.grade == grade)
    stmt = stmt.order_by(Ticket.opened_at.desc(), Ticket.id.desc()).limit(limit)
    with db.session() as session:
        return [TicketOut.of(t) for t in session.scalars(stmt)]


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketDetailOut,
    responses={404: {"model": ErrorOut, "description": "No such ticket"}},
)
def get_ticket(ticket_id: int, _user: ViewerDep, db: DbDep) -> TicketDetailOut:
    """One ticket with its history."""
    stmt = select(Ticket).where(Ticket.id == ticket_id).options(selectinload(Ticket.history))
    with db.session() as session:
        ticket = session.scalars(stmt).one_or_none()
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id}")
        return TicketDetailOut.with_history(ticket)


@router.get("/sites", response_model=list[SiteOut])
def list_sites(_user: ViewerDep, db: DbDep) -> list[SiteOut]:
    """All sites with their agents, by name."""
    with db.session() as session:
        sites = list(session.scalars(select(Site).order_by(Site.name)))
        agents: dict[int, list[Agent]] = {s.id: [] for s in sites}
        for agent in session.scalars(select(Agent).order_by(Agent.id)):
            agents.setdefault(agent.site_id, []).append(agent)
        return [SiteOut.of(s, agents[s.id]) for s in sites]
