"""Site-wide outages: many alarms, one ticket.

Kept simple on purpose:
- HQ's own "site unreachable" alarm (dead man's switch, hq_server.alarms.deadman) and an agent's
  ``site_unreachable`` fault are outage tickets of their site;
- when ``outage_min_devices`` device ``unreachable`` alarms are active at a site at once, HQ
  opens one outage ticket (fingerprint ``site:outage``) for them;
- while a site has an open outage ticket, a device that becomes unreachable joins it (a link
  row and a history entry) instead of opening a ticket of its own. Alarms that already had
  their own ticket keep it and are linked as well, for the overview.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hq_server.core.domain import OPEN_STATUSES, TicketAction
from hq_server.store.db import insert_ignoring_conflict
from hq_server.store.models import Alarm, Ticket, TicketAlarmLink
from hq_server.tickets.history import history
from hq_server.tickets.policy import TicketPolicy
from hq_server.tickets.records import Subject, TicketOutcome, open_subject
from protocol.faults import SITE_UNREACHABLE
from protocol.faults import UNREACHABLE as DEVICE_UNREACHABLE

logger = logging.getLogger(__name__)

OUTAGE_KEY = "site:outage"
OUTAGE_CODE = "site_outage"


def outage_ticket(session: Session, site_id: int) -> Ticket | None:
    """The site's open outage ticket, if any (the oldest, should there be two kinds)."""
    stmt = (
        select(Ticket)
        .where(
            Ticket.site_id == site_id,
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.code.in_([SITE_UNREACHABLE, OUTAGE_CODE]),
        )
        .order_by(Ticket.id)
        .limit(1)
    )
    return session.scalars(stmt).first()


def link(session: Session, ticket: Ticket, alarm: Alarm, now: datetime, who: str) -> None:
    """Group an alarm under a ticket (once) with a history entry."""
    values = {"ticket_id": ticket.id, "alarm_id": alarm.id, "linked_at": now}
    dialect = session.get_bind().dialect.name
    stmt = insert_ignoring_conflict(
        dialect, TicketAlarmLink, values, ["ticket_id", "alarm_id"]
    ).returning(TicketAlarmLink.alarm_id)
    if session.execute(stmt).scalar_one_or_none() is None:
        return
    ticket.updated_at = now
    history(
        session,
        ticket,
        now,
        who,
        TicketAction.ALARM_GROUPED,
        f"{alarm.device_id}: {alarm.title} (grouped under this outage)",
        alarm_id=alarm.id,
        fault_key=alarm.fault_key,
        device_id=alarm.device_id,
        title=alarm.title,
    )


def _active_unreachable(session: Session, site_id: int) -> list[Alarm]:
    stmt = select(Alarm).where(
        Alarm.site_id == site_id, Alarm.active.is_(True), Alarm.code == DEVICE_UNREACHABLE
    )
    return list(session.scalars(stmt.order_by(Alarm.id)))


def group(
    session: Session, alarm: Alarm, now: datetime, who: str, policy: TicketPolicy
) -> TicketOutcome | None:
    """Put a device-unreachable alarm under its site's outage ticket, opening one if needed."""
    if alarm.code != DEVICE_UNREACHABLE:
        return None
    ticket = outage_ticket(session, alarm.site_id)
    if ticket is not None:
        link(session, ticket, alarm, now, who)
        return TicketOutcome(ticket, opened=False)
    count = session.scalar(
        select(func.count())
        .select_from(Alarm)
        .where(
            Alarm.site_id == alarm.site_id,
            Alarm.active.is_(True),
            Alarm.code == DEVICE_UNREACHABLE,
        )
    )
    if (count or 0) < policy.outage_min_devices:
        return None
    members = _active_unreachable(session, alarm.site_id)
    subject = Subject(
        site=alarm.site,
        fault_key=OUTAGE_KEY,
        device_id="site",
        code=OUTAGE_CODE,
        component="",
        grade=min(a.grade for a in members),
        title=f"Site outage: {len(members)} devices unreachable",
        title_zh=f"站点停运：{len(members)} 台设备不可达",  # noqa: RUF001
        symptom=", ".join(a.device_id for a in members),
        alarm_id=None,
    )
    outcome = open_subject(session, subject, now, who, policy.on_duty, paging_limits=policy.paging)
    for member in members:
        link(session, outcome.ticket, member, now, who)
    logger.info(
        "site=%s: %d devices unreachable, grouped under ticket %s",
        alarm.site_id,
        len(members),
        outcome.ticket.number,
    )
    return outcome


def after_open(session: Session, alarm: Alarm, ticket: Ticket, now: datetime, who: str) -> None:
    """A new "site unreachable" ticket gathers the devices already unreachable at the site."""
    if alarm.code != SITE_UNREACHABLE:
        return
    for member in _active_unreachable(session, alarm.site_id):
        link(session, ticket, member, now, who)
