"""Maintenance windows: matching alarms are recorded but open no ticket and escalate nothing
while the window runs; when it ends, alarms still active open their tickets (scheduler).

A window matches an alarm when each of its matchers (site, device, fault code) is unset or equal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from hq_server.core.errors import InvalidInput
from hq_server.store.models import Alarm, MaintenanceWindow, Site, Ticket

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


# ---- planning windows (the API and the console) ----------------------------------------------

REASON_MAX = 4000
APPROVAL_MAX = 100
MATCHER_MAX = 64


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """What a window is to be: its matchers (None matches everything), times, reason, approval."""

    site_id: int | None
    device_id: str | None
    code: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    approval_ref: str = ""


class WindowOutcome(StrEnum):
    """What cancelling a window did."""

    DELETED = "deleted"  # it had not started
    ENDED = "ended"  # it was running: it ends now
    KEPT = "kept"  # it is over: kept as a record


def check_plan(session: Session, plan: WindowPlan) -> None:
    """InvalidInput naming the field, for a plan that cannot be a window."""
    if plan.ends_at <= plan.starts_at:
        raise InvalidInput("ends_at must be after starts_at", field="ends_at")
    if not plan.reason.strip():
        raise InvalidInput("reason: required", field="reason")
    if len(plan.reason) > REASON_MAX:
        raise InvalidInput(f"reason: at most {REASON_MAX} characters", field="reason")
    if len(plan.approval_ref) > APPROVAL_MAX:
        raise InvalidInput(f"approval_ref: at most {APPROVAL_MAX} characters", field="approval_ref")
    for name in ("device_id", "code"):
        value = getattr(plan, name)
        if value is not None and not 1 <= len(value) <= MATCHER_MAX:
            raise InvalidInput(f"{name}: 1 to {MATCHER_MAX} characters", field=name)
    if plan.site_id is not None and session.get(Site, plan.site_id) is None:
        raise InvalidInput(f"no site {plan.site_id}", field="site_id")


def _fill(row: MaintenanceWindow, plan: WindowPlan) -> None:
    row.site_id, row.device_id, row.code = plan.site_id, plan.device_id, plan.code
    row.starts_at, row.ends_at = plan.starts_at, plan.ends_at
    row.reason, row.approval_ref = plan.reason, plan.approval_ref
    # A window moved to end later holds its alarms again until then.
    row.released_at = None


def list_windows(
    session: Session, now: datetime, *, active: bool | None = None, site_id: int | None = None
) -> list[MaintenanceWindow]:
    """Windows (of a site; running now or not), latest start first."""
    stmt = select(MaintenanceWindow)
    if site_id is not None:
        stmt = stmt.where(MaintenanceWindow.site_id == site_id)
    if active is not None:
        stmt = stmt.where(_running(now) if active else ~_running(now))
    return list(session.scalars(stmt.order_by(MaintenanceWindow.starts_at.desc())))


def plan_window(
    session: Session, plan: WindowPlan, author: str, now: datetime
) -> MaintenanceWindow:
    """A new window (checked; InvalidInput names the bad field), flushed so it has its id."""
    check_plan(session, plan)
    row = MaintenanceWindow(author=author, created_at=now)
    _fill(row, plan)
    session.add(row)
    session.flush()
    logger.info("maintenance window %s planned by %s: %s", row.id, author, plan.reason[:80])
    return row


def change_window(session: Session, row: MaintenanceWindow, plan: WindowPlan) -> None:
    """Change a window's matchers, times, reason and approval (checked)."""
    check_plan(session, plan)
    _fill(row, plan)


def cancel_window(session: Session, row: MaintenanceWindow, now: datetime) -> WindowOutcome:
    """Cancel a window: one not started yet is deleted, a running one ends now (so the
    scheduler opens tickets for the alarms it held); a past one stays as a record."""
    if row.starts_at > now:
        session.delete(row)
        return WindowOutcome.DELETED
    if row.ends_at > now:
        session.execute(
            update(MaintenanceWindow)
            .where(MaintenanceWindow.id == row.id)
            .values(ends_at=now)
            .execution_options(synchronize_session=False)
        )
        return WindowOutcome.ENDED
    return WindowOutcome.KEPT
