"""A ticket's history: one entry per thing that happened to it (who, when, what, details)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from hq_server.core.changes import Topic
from hq_server.core.domain import TicketAction
from hq_server.store.changes import mark
from hq_server.store.models import Ticket, TicketEvent


def history(
    session: Session,
    ticket: Ticket,
    at: datetime,
    who: str,
    what: TicketAction,
    detail: str,
    **data: object,
) -> None:
    """Add an entry to the ticket's history (written at the session's next flush); watchers
    hear of the ticket once the transaction commits."""
    mark(session, Topic.TICKETS, ticket.id)
    session.add(
        TicketEvent(ticket_id=ticket.id, at=at, who=who, what=what.value, detail=detail, data=data)
    )
