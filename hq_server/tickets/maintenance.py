"""Maintenance windows: matching alarms are recorded but open no ticket and escalate nothing
while the window runs; when it ends, alarms still active open their tickets (scheduler).

A window matches an alarm when each of its matchers (site, device, fault code) is unset or equal.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from hq_server.store.models import Alarm, MaintenanceWindow, Ticket

logger = logging.getLogger(__name__)


def _matches(site_id: int, device_id: str, code: str) -> ColumnElement[bool]:
    w = MaintenanceWindow
    return and_(
        or_(w.site_id.is_(None), w.site_id == site_id),
        or_(w.device_id.is_(None), w.device_id == device_id),
        or_(w.code.is_(None), w.code == code),
    )


def _running(now: datetime) -> ColumnElement[bool]:
    return and_(MaintenanceWindow.starts_at <= now, MaintenanceWindow.ends_at > now)


def active_window(session: Session, alarm: Alarm, now: datetime) -> MaintenanceWindow | None:
    """A running window matching the alarm, if any (the one ending last)."""
    # Windows are few: load the running ones once per transaction and match in Python, so a
    # batch opening hundreds of tickets does not ask the database hundreds of times.
    key = ("running_windows", now)
    running: list[MaintenanceWindow] | None = session.info.get(key)
    if running is None:
        stmt = select(MaintenanceWindow).where(_running(now))
        running = list(session.scalars(stmt.order_by(MaintenanceWindow.ends_at.desc())))
        session.info[key] = running
    for window in running:
        if (
            window.site_id in (None, alarm.site_id)
            and window.device_id in (None, alarm.device_id)
            and window.code in (None, alarm.code)
        ):
            return window
    return None


def holding_window(session: Session, ticket: Ticket, now: datetime) -> MaintenanceWindow | None:
    """A running window matching the ticket (its escalations wait for the latest end)."""
    stmt = (
        select(MaintenanceWindow)
        .where(_running(now), _matches(ticket.site_id, ticket.device_id, ticket.code))
        .order_by(MaintenanceWindow.ends_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def ended_windows(session: Session, now: datetime) -> list[MaintenanceWindow]:
    """Windows that have ended and whose held alarms were not released yet."""
    stmt = select(MaintenanceWindow).where(
        MaintenanceWindow.ends_at <= now, MaintenanceWindow.released_at.is_(None)
    )
    return list(session.scalars(stmt.order_by(MaintenanceWindow.ends_at)))


def held_alarms(session: Session, window: MaintenanceWindow) -> list[Alarm]:
    """Active alarms matching an ended window (candidates for a ticket now)."""
    stmt = select(Alarm).where(Alarm.active.is_(True))
    if window.site_id is not None:
        stmt = stmt.where(Alarm.site_id == window.site_id)
    if window.device_id is not None:
        stmt = stmt.where(Alarm.device_id == window.device_id)
    if window.code is not None:
        stmt = stmt.where(Alarm.code == window.code)
    return list(session.scalars(stmt.order_by(Alarm.id)))
