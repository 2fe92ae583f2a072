"""A ticket's timeline, oldest first: its alarm's events (as the agent sent them), its history
entries (actions, escalation steps, deadline changes) and its notifications (sent, pending,
failed). What the console's ticket page shows; the API serves the parts separately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.store.models import Event, Notification, Ticket, TicketEvent

# Alarm events shown at most (the newest ones): a flapping alarm can send thousands.
MAX_ALARM_EVENTS = 200


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One thing that happened: kind (event, history, notification), when, who, what."""

    kind: str
    at: datetime
    who: str
    what: str
    detail: str
    data: dict[str, Any]


def timeline(session: Session, ticket: Ticket) -> list[TimelineEntry]:
    """Everything that happened to the ticket and its alarm since it opened, oldest first."""
    entries = [
        TimelineEntry("history", h.at, h.who, h.what, h.detail, dict(h.data or {}))
        for h in session.scalars(
            select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
    ]
    events = session.scalars(
        select(Event)
        .where(
            Event.site_id == ticket.site_id,
            Event.fault_key == ticket.fault_key,
            # Received since the ticket opened (the opening event was received at that
            # instant); observed_at may be much older for events an agent kept in its outbox.
            Event.received_at >= ticket.opened_at,
        )
        .order_by(Event.observed_at.desc(), Event.id.desc())
        .limit(MAX_ALARM_EVENTS)
    )
    entries += [
        TimelineEntry(
            "event",
            e.observed_at,
            f"agent:{e.agent_id}",
            e.kind,
            e.detail or e.title,
            {"grade": e.grade, "values": e.values},
        )
        for e in events
    ]
    entries += [
        TimelineEntry(
            "notification",
            n.sent_at or n.created_at,
            n.channel,
            n.status,
            # A webhook URL may carry a key in its path or query: only its host is shown.
            n.target if n.channel == "email" else (urlsplit(n.target).hostname or ""),
            {"attempts": n.attempts, "last_error": n.last_error},
        )
        for n in session.scalars(
            select(Notification)
            .where(Notification.ticket_id == ticket.id)
            .order_by(Notification.id)
        )
    ]
    order = {"event": 0, "history": 1, "notification": 2}
    entries.sort(key=lambda e: (e.at, order[e.kind]))
    return entries
