"""The customer's contacts told of their faults: acknowledged, and resolved (with the fix), each
message in the customer's language with times in the customer's time zone, through the
notification outbox (e-mail to each contact who gets notifications). Only for customers who
asked for it (Customer.notify_acknowledged, notify_resolved)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from hq_server.customers.messages import NO_DEADLINE, render
from hq_server.customers.records import contacts_of
from hq_server.store.models import Customer, Ticket
from hq_server.tickets import notify


def _local(at: datetime | None, customer: Customer) -> str | None:
    if at is None:
        return None
    return at.astimezone(ZoneInfo(customer.timezone)).strftime("%Y-%m-%d %H:%M %Z")


def tell_customer(session: Session, ticket: Ticket, event: str, now: datetime) -> int:
    """Queue the `event` ("acknowledged" or "resolved") e-mails of the ticket's customer, if it
    wants them; returns how many were queued."""
    if ticket.site.customer_id is None:
        return 0
    customer = session.get(Customer, ticket.site.customer_id)
    if customer is None:
        return 0
    wanted = customer.notify_acknowledged if event == "acknowledged" else customer.notify_resolved
    if not wanted:
        return 0
    resolution = ticket.resolution or {}
    count = 0
    for contact in contacts_of(session, customer.id):
        if not contact.notify or not contact.email:
            continue
        subject, text = render(
            event,
            customer.language,
            contact=contact.name,
            number=ticket.number,
            site=ticket.site.name,
            grade=ticket.customer_grade or ticket.grade,
            title=ticket.title,
            at=_local(now, customer),
            restore_due=_local(ticket.restore_due_at, customer)
            or NO_DEADLINE.get(customer.language, "none"),
            cause=resolution.get("cause", ""),
            fix=resolution.get("fix", ""),
        )
        payload = {
            "event": f"customer_{event}",
            "subject": subject,
            "text": text,
            "language": customer.language,
            "ticket": {"id": ticket.id, "number": ticket.number},
        }
        # Per occurrence: a reopened ticket resolved again tells the customer again.
        key = f"customer:{ticket.id}:{event}:{now.isoformat()}:{contact.id}"
        count += notify.enqueue(
            session,
            ticket_id=ticket.id,
            channel="email",
            target=contact.email,
            secret_ref=None,
            payload=payload,
            key=key,
            now=now,
        )
    return count
