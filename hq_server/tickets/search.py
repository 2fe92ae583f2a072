"""Finding tickets: the filters of the ticket list (API and console), overdue tickets, and the
open tickets closest to missing a deadline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from hq_server.core.domain import DONE_STATUSES, OPEN_STATUSES, TicketStatus
from hq_server.store.models import Site, Ticket
from hq_server.tickets.records import fold


@dataclass(frozen=True, slots=True)
class TicketFilter:
    """Filters of a ticket list; None (or empty) means "any"."""

    status: Sequence[TicketStatus] = ()
    open: bool | None = None
    site: str | None = None
    grade: int | None = None
    assignee: str | None = None
    overdue: bool | None = None
    text: str | None = None


def overdue_clause(now: datetime) -> ColumnElement[bool]:
    """Open and past the acknowledge deadline unacknowledged, or past the restore deadline."""
    return and_(
        Ticket.status.in_(OPEN_STATUSES),
        Ticket.paused_since.is_(None),
        # The IS NOT NULL guards keep the clause two-valued, so NOT(...) works for overdue=false.
        or_(
            and_(
                Ticket.acknowledged_at.is_(None),
                Ticket.ack_due_at.is_not(None),
                Ticket.ack_due_at < now,
            ),
            and_(Ticket.restore_due_at.is_not(None), Ticket.restore_due_at < now),
        ),
    )


def filtered(stmt: Select[tuple[Ticket]], f: TicketFilter, now: datetime) -> Select[tuple[Ticket]]:
    """`stmt` (selecting tickets) narrowed by the filters."""
    if f.assignee is not None:
        stmt = stmt.where(Ticket.assignee == f.assignee)
    if f.text:
        # Against the title folded when the ticket opened (SQLite's lower() folds ASCII only).
        escaped = fold(f.text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Ticket.title_folded.like(f"%{escaped}%", escape="\\"))
    if f.overdue is not None:
        late = overdue_clause(now)
        stmt = stmt.where(late if f.overdue else not_(late))
    if f.status:
        stmt = stmt.where(Ticket.status.in_([TicketStatus(s).value for s in f.status]))
    if f.open is not None:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES if f.open else DONE_STATUSES))
    if f.site is not None:
        stmt = stmt.join(Ticket.site).where(Site.name == f.site)
    if f.grade is not None:
        stmt = stmt.where(Ticket.grade == f.grade)
    return stmt


def find_tickets(
    session: Session, f: TicketFilter, now: datetime, *, limit: int, offset: int = 0
) -> list[Ticket]:
    """Tickets matching `f`, newest first."""
    stmt = filtered(select(Ticket), f, now)
    stmt = stmt.order_by(Ticket.opened_at.desc(), Ticket.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(stmt))


def count_tickets(session: Session, f: TicketFilter, now: datetime) -> int:
    """How many tickets match `f`."""
    stmt = filtered(select(Ticket), f, now).with_only_columns(func.count(Ticket.id))
    return int(session.scalar(stmt.order_by(None)) or 0)


def next_deadline(ticket: Ticket) -> datetime | None:
    """The deadline an open, running ticket must meet next: acknowledge (if not acknowledged
    yet), else restore; None when it has none or its clock is paused."""
    if ticket.status not in OPEN_STATUSES or ticket.paused_since is not None:
        return None
    if ticket.acknowledged_at is None and ticket.ack_due_at is not None:
        return ticket.ack_due_at
    return ticket.restore_due_at


def closest_to_deadline(session: Session, limit: int) -> list[Ticket]:
    """Open tickets with a running clock, the one whose next deadline comes first first."""
    due = case(
        (
            and_(Ticket.acknowledged_at.is_(None), Ticket.ack_due_at.is_not(None)),
            Ticket.ack_due_at,
        ),
        else_=Ticket.restore_due_at,
    )
    stmt = (
        select(Ticket)
        .where(Ticket.status.in_(OPEN_STATUSES), Ticket.paused_since.is_(None), due.is_not(None))
        .order_by(due, Ticket.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))
