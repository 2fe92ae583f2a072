"""Tickets: any user token reads them; engineers and admins open them by hand (a fault reported
by phone, fax, e-mail, the web or on site) and act on them (acknowledge, assign, comment,
status, resolve, close, reopen; regrade, escalate now, dispatch, plan, the customer's
confirmation). Each action answers the ticket with its history; a status that forbids the
action gives 409."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    ClockDep,
    DbDep,
    EngineerDep,
    GradeFilter,
    Id,
    Limit,
    SettingsDep,
    SiteFilter,
    ViewerDep,
    audit_note,
)
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, error, errors
from hq_server.api.schemas.tickets import (
    AssignIn,
    CommentIn,
    ConfirmationIn,
    DispatchIn,
    EscalateIn,
    ManualTicketIn,
    NoteIn,
    PlanIn,
    RegradeIn,
    ReopenIn,
    ResolveIn,
    StatusIn,
    TicketDetailOut,
    TicketOut,
)
from hq_server.core.domain import TicketStatus
from hq_server.store.db import Database
from hq_server.store.models import Ticket, TicketAlarmLink
from hq_server.tickets import actions, manual
from hq_server.tickets.policy import TicketPolicy
from hq_server.tickets.search import TicketFilter, find_tickets
from protocol.wire import API_PREFIX

router = APIRouter(prefix=API_PREFIX, route_class=BoundedBodyRoute, responses=AUTH_ERRORS)
_ACTION_ERRORS = {**BODY_ERRORS, **errors(404, 409)}


@router.get("/tickets", tags=["user"], response_model=list[TicketOut])
def list_tickets(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    status: Annotated[list[TicketStatus] | None, Query(description="Any of these")] = None,
    open: Annotated[
        bool | None, Query(description="Only open (true) or finished (false) tickets")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    assignee: Annotated[str | None, Query(max_length=100, description="Assigned to")] = None,
    overdue: Annotated[
        bool | None,
        Query(description="Only tickets past their acknowledge or restore deadline (true)"),
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the title (any case)")
    ] = None,
    customer_id: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="Only at this customer's sites")
    ] = None,
    source: Annotated[
        str | None,
        Query(max_length=10, description="Only from this source: alarm, phone, fax, ..."),
    ] = None,
    limit: Limit = 200,
) -> list[TicketOut]:
    """Tickets, newest first."""
    wanted = TicketFilter(
        status=status or (),
        open=open,
        site=site,
        grade=grade,
        assignee=assignee,
        overdue=overdue,
        text=q,
        customer_id=customer_id,
        source=source,
    )
    with db.session() as session:
        return [TicketOut.of(t) for t in find_tickets(session, wanted, clock.now(), limit=limit)]


@router.get(
    "/tickets/{ticket_id}",
    tags=["user"],
    response_model=TicketDetailOut,
    responses=error(404, "No such ticket"),
)
def get_ticket(ticket_id: Id, _user: ViewerDep, db: DbDep) -> TicketDetailOut:
    """One ticket with its history, escalation chain and grouped alarms."""
    with db.session() as session:
        return ticket_detail(session, ticket_id)


def ticket_detail(session: Session, ticket_id: int) -> TicketDetailOut:
    """A ticket with its history and grouped alarms, read in `session`."""
    ticket = actions.get_ticket(session, ticket_id, for_update=False)
    session.refresh(ticket, attribute_names=["history"])
    grouped = session.scalars(
        select(TicketAlarmLink.alarm_id)
        .where(TicketAlarmLink.ticket_id == ticket_id)
        .order_by(TicketAlarmLink.alarm_id)
    ).all()
    return TicketDetailOut.with_history(ticket, list(grouped))


def _act(
    db: Database,
    request: Request,
    ticket_id: Id,
    summary: str,
    action: Callable[[Session, Ticket], None],
) -> TicketDetailOut:
    """Run one action on a locked ticket in a transaction; answer the ticket as it is now."""
    with db.writer() as session, session.begin():
        ticket = actions.get_ticket(session, ticket_id)
        audit_note(request, f"{summary} {ticket.number}", ticket_number=ticket.number)
        action(session, ticket)
        session.flush()
        return ticket_detail(session, ticket_id)


@router.post(
    "/tickets/{ticket_id}/acknowledge",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def acknowledge(
    ticket_id: Id, request: Request, user: EngineerDep, db: DbDep, clock: ClockDep
) -> TicketDetailOut:
    """Acknowledge a new ticket (stops its acknowledge escalation)."""
    return _act(
        db,
        request,
        ticket_id,
        "acknowledge",
        lambda s, t: actions.acknowledge(s, t, clock.now(), user.name),
    )


@router.post(
    "/tickets/{ticket_id}/assign",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def assign(
    ticket_id: Id,
    body: AssignIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Set the assignee and optionally the on-duty engineer."""
    return _act(
        db,
        request,
        ticket_id,
        f"assign to {body.assignee}",
        lambda s, t: actions.assign(s, t, clock.now(), user.name, body.assignee, body.on_duty),
    )


@router.post(
    "/tickets/{ticket_id}/comment",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def comment(
    ticket_id: Id,
    body: CommentIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Add a history entry: what was seen, what was done, minutes spent."""
    return _act(
        db,
        request,
        ticket_id,
        "comment on",
        lambda s, t: actions.comment(
            s, t, clock.now(), user.name, body.seen, body.done, body.time_spent_minutes
        ),
    )


@router.post(
    "/tickets/{ticket_id}/status",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def change_status(
    ticket_id: Id,
    body: StatusIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Move to in_progress or pending_customer (pending pauses the SLA clock)."""
    target = TicketStatus(body.status)
    return _act(
        db,
        request,
        ticket_id,
        f"set status {target} on",
        lambda s, t: actions.change_status(s, t, clock.now(), user.name, target, body.note),
    )


@router.post(
    "/tickets/{ticket_id}/resolve",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def resolve(
    ticket_id: Id,
    body: ResolveIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Resolve with the resolution record (stops every escalation)."""
    resolution = actions.Resolution(
        cause=body.cause,
        fix=body.fix,
        tested=body.tested,
        confirmed_by_customer=body.confirmed_by_customer,
        faq=body.faq,
        faq_text=body.faq_text,
        time_spent_minutes=body.time_spent_minutes,
        confirmed_by=body.confirmed_by,
        confirmed_at=body.confirmed_at,
        customer_opinion=body.customer_opinion,
    )
    return _act(
        db,
        request,
        ticket_id,
        "resolve",
        lambda s, t: actions.resolve(s, t, clock.now(), user.name, resolution),
    )


@router.post(
    "/tickets/{ticket_id}/close",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def close(
    ticket_id: Id,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
    body: NoteIn | None = None,
) -> TicketDetailOut:
    """Close a resolved ticket."""
    note = body.note if body is not None else ""
    return _act(
        db,
        request,
        ticket_id,
        "close",
        lambda s, t: actions.close(s, t, clock.now(), user.name, note),
    )


@router.post(
    "/tickets/{ticket_id}/reopen",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def reopen(
    ticket_id: Id,
    body: ReopenIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Reopen a resolved or closed ticket (its restore escalation runs again)."""
    return _act(
        db,
        request,
        ticket_id,
        "reopen",
        lambda s, t: actions.reopen(s, t, clock.now(), user.name, body.reason),
    )


@router.post(
    "/tickets",
    tags=["tickets"],
    response_model=TicketDetailOut,
    status_code=201,
    responses=BODY_ERRORS,
)
def open_ticket(
    body: ManualTicketIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> TicketDetailOut:
    """Open a ticket for a fault a person reported (phone, fax, e-mail, web, on site): the same
    SLA clocks, escalation and paging as an alarm's ticket, on the site's customer's policy;
    the grade is read in the customer's scheme."""
    report = manual.Report(
        source=body.source,
        site_id=body.site_id,
        grade=body.grade,
        symptom=body.symptom,
        reporter=body.reporter,
        contact_id=body.contact_id,
        customer_id=body.customer_id,
        device_id=body.device_id,
        title=body.title,
    )
    with db.writer() as session, session.begin():
        policy = TicketPolicy.of(settings)
        ticket = manual.open_manual(
            session, report, clock.now(), user.name, policy.on_duty, policy.paging
        )
        audit_note(
            request, f"open ticket {ticket.number} ({body.source})", ticket_number=ticket.number
        )
        return ticket_detail(session, ticket.id)


@router.post(
    "/tickets/{ticket_id}/regrade",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def regrade(
    ticket_id: Id,
    body: RegradeIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> TicketDetailOut:
    """Change the grade (in the customer's scheme) with a reason: an upgrade's deadlines count
    from when the new grade was confirmed and it pages, a downgrade keeps the original start."""
    limits = TicketPolicy.of(settings).paging
    return _act(
        db,
        request,
        ticket_id,
        f"regrade to {body.grade}",
        lambda s, t: actions.regrade(
            s, t, clock.now(), user.name, body.grade, body.reason, body.confirmed_at, limits
        ),
    )


@router.post(
    "/tickets/{ticket_id}/escalate",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def escalate(
    ticket_id: Id,
    body: EscalateIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> TicketDetailOut:
    """Escalate to the next level now, at the customer's request (notified, recorded); 409
    when the escalation has no level left."""
    return _act(
        db,
        request,
        ticket_id,
        "escalate",
        lambda s, t: actions.escalate_now(s, t, clock.now(), user.name, body.reason, settings),
    )


@router.post(
    "/tickets/{ticket_id}/dispatch",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def dispatch(
    ticket_id: Id,
    body: DispatchIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Record the on-site dispatch: engineer sent (starts the on-site deadline of the grade),
    left, arrived (stops its escalation), left the site."""
    times = {
        "sent_at": body.sent_at,
        "left_at": body.left_at,
        "arrived_at": body.arrived_at,
        "left_site_at": body.left_site_at,
    }
    return _act(
        db,
        request,
        ticket_id,
        "dispatch on",
        lambda s, t: actions.dispatch(s, t, clock.now(), user.name, body.engineer, times),
    )


@router.post(
    "/tickets/{ticket_id}/plan",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def plan(
    ticket_id: Id,
    body: PlanIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Record the fix date promised to the customer and the plan."""
    return _act(
        db,
        request,
        ticket_id,
        "set the plan of",
        lambda s, t: actions.set_plan(
            s, t, clock.now(), user.name, body.promised_fix_at, body.plan
        ),
    )


@router.post(
    "/tickets/{ticket_id}/confirmation",
    tags=["tickets"],
    response_model=TicketDetailOut,
    responses=_ACTION_ERRORS,
)
def confirmation(
    ticket_id: Id,
    body: ConfirmationIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TicketDetailOut:
    """Record who at the customer confirmed the fix of a resolved ticket, when, and their
    opinion."""
    return _act(
        db,
        request,
        ticket_id,
        "record the customer's confirmation of",
        lambda s, t: actions.confirm(
            s, t, clock.now(), user.name, body.confirmed_by, body.confirmed_at, body.opinion
        ),
    )
