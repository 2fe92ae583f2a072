"""Reading alarms as people look at them (the API and the console): active and recent alarms
with filters and paging, one alarm, and an alarm's history (the events of its fingerprint)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from hq_server.core.errors import NotFound
from hq_server.store.models import Alarm, Event, Site


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    """Which alarms: each criterion unset matches every alarm."""

    active: bool | None = None
    site: str | None = None
    site_id: int | None = None
    device_id: str | None = None
    grade: int | None = None
    flapping: bool | None = None
    changed_since: datetime | None = None  # last changed at or after this instant


def _where(wanted: AlarmFilter) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if wanted.active is not None:
        clauses.append(Alarm.active.is_(wanted.active))
    if wanted.site_id is not None:
        clauses.append(Alarm.site_id == wanted.site_id)
    if wanted.device_id is not None:
        clauses.append(Alarm.device_id == wanted.device_id)
    if wanted.grade is not None:
        clauses.append(Alarm.grade == wanted.grade)
    if wanted.flapping is not None:
        clauses.append(Alarm.flapping.is_(wanted.flapping))
    if wanted.changed_since is not None:
        clauses.append(Alarm.last_change_at >= wanted.changed_since)
    return clauses


def _filtered(stmt: Select[tuple[Alarm]], wanted: AlarmFilter) -> Select[tuple[Alarm]]:
    if wanted.site is not None:
        stmt = stmt.join(Alarm.site).where(Site.name == wanted.site)
    return stmt.where(*_where(wanted))


def find_alarms(
    session: Session, wanted: AlarmFilter, *, limit: int = 200, offset: int = 0
) -> list[Alarm]:
    """Alarms matching `wanted`, most recently changed first."""
    stmt = _filtered(select(Alarm), wanted)
    stmt = stmt.order_by(Alarm.last_change_at.desc(), Alarm.id.desc())
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def count_alarms(session: Session, wanted: AlarmFilter) -> int:
    """How many alarms match `wanted`."""
    stmt = select(func.count()).select_from(Alarm)
    if wanted.site is not None:
        stmt = stmt.join(Site, Site.id == Alarm.site_id).where(Site.name == wanted.site)
    return int(session.scalar(stmt.where(*_where(wanted))) or 0)


def get_alarm(session: Session, alarm_id: int) -> Alarm:
    """One alarm (NotFound if there is none)."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    return alarm


def alarm_events(
    session: Session, alarm: Alarm, *, before: datetime | None = None, limit: int = 200
) -> list[Event]:
    """The alarm's history: every event of its fingerprint (raise, update, clear, repeats),
    newest first; `before` pages back."""
    stmt = select(Event).where(Event.site_id == alarm.site_id, Event.fault_key == alarm.fault_key)
    if before is not None:
        stmt = stmt.where(Event.observed_at < before)
    stmt = stmt.order_by(Event.observed_at.desc(), Event.id.desc()).limit(limit)
    return list(session.scalars(stmt))
