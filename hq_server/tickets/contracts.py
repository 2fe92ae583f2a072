"""A customer's record changed with what follows from it: when its SLA policy changes, the
deadlines of the open tickets at its sites are recomputed. The API and the console both call
this (the record itself is hq_server.customers.records')."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.customers import records
from hq_server.store.models import Customer, Site
from hq_server.tickets import deadlines


def change_customer(
    session: Session, row: Customer, fields: records.CustomerFields, now: datetime, who: str
) -> int:
    """Replace `row`'s record; returns how many open tickets' deadlines moved (a change of SLA
    policy recomputes those at its sites)."""
    old_policy = row.sla_policy_id
    records.save_customer(session, row, fields, now)
    if row.sla_policy_id == old_policy:
        return 0
    site_ids = list(session.scalars(select(Site.id).where(Site.customer_id == row.id)))
    if not site_ids:
        return 0
    return deadlines.refresh_open_tickets(
        session, site_ids, now, who, "customer's SLA policy changed"
    )
