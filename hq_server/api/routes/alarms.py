"""Alarms (any user token may read them): current state, and each alarm's events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import DbDep, GradeFilter, Id, Limit, SiteFilter, ViewerDep, query_instant
from hq_server.api.errors import AUTH_ERRORS, error
from hq_server.api.schemas.alarms import AlarmEventOut, AlarmOut
from hq_server.core.errors import NotFound
from hq_server.store.models import Alarm, Event, Site
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX, tags=["user"], route_class=BoundedBodyRoute, responses=AUTH_ERRORS
)
_NO_ALARM = error(404, "No such alarm")


@router.get("/alarms", response_model=list[AlarmOut])
def list_alarms(
    _user: ViewerDep,
    db: DbDep,
    active: Annotated[
        bool | None, Query(description="Only active (true) or cleared (false)")
    ] = None,
    site: SiteFilter = None,
    grade: GradeFilter = None,
    limit: Limit = 200,
) -> list[AlarmOut]:
    """Alarms, most recently changed first."""
    stmt = select(Alarm)
    if active is not None:
        stmt = stmt.where(Alarm.active.is_(active))
    if site is not None:
        stmt = stmt.join(Alarm.site).where(Site.name == site)
    if grade is not None:
        stmt = stmt.where(Alarm.grade == grade)
    stmt = stmt.order_by(Alarm.last_change_at.desc(), Alarm.id.desc()).limit(limit)
    with db.session() as session:
        return [AlarmOut.of(a) for a in session.scalars(stmt)]


@router.get(
    "/alarms/{alarm_id}",
    response_model=AlarmOut,
    responses=_NO_ALARM,
)
def get_alarm(alarm_id: Id, _user: ViewerDep, db: DbDep) -> AlarmOut:
    """One alarm's current state."""
    with db.session() as session:
        return AlarmOut.of(_alarm(session, alarm_id))


def _alarm(session: Session, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFound(f"no alarm {alarm_id}")
    return alarm


@router.get(
    "/alarms/{alarm_id}/events",
    response_model=list[AlarmEventOut],
    responses=_NO_ALARM,
)
def list_alarm_events(
    alarm_id: Id,
    _user: ViewerDep,
    db: DbDep,
    before: Annotated[
        datetime | None,
        Query(description="Only events observed before this instant (to page back)"),
    ] = None,
    limit: Limit = 200,
) -> list[AlarmEventOut]:
    """The alarm's history: every event of its fingerprint (raise, update, clear, repeats),
    newest first."""
    with db.session() as session:
        alarm = _alarm(session, alarm_id)
        stmt = select(Event).where(
            Event.site_id == alarm.site_id, Event.fault_key == alarm.fault_key
        )
        if before is not None:
            stmt = stmt.where(Event.observed_at < query_instant(before))
        stmt = stmt.order_by(Event.observed_at.desc(), Event.id.desc()).limit(limit)
        return [AlarmEventOut.model_validate(e) for e in session.scalars(stmt)]
