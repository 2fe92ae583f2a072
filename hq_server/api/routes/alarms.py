"""Alarms (any user token may read them): current state, and each alarm's events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from hq_server.alarms import views
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import DbDep, GradeFilter, Id, Limit, SiteFilter, ViewerDep, query_instant
from hq_server.api.errors import AUTH_ERRORS, error
from hq_server.api.schemas.alarms import AlarmEventOut, AlarmOut
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
    wanted = views.AlarmFilter(active=active, site=site, grade=grade)
    with db.session() as session:
        return [AlarmOut.of(a) for a in views.find_alarms(session, wanted, limit=limit)]


@router.get(
    "/alarms/{alarm_id}",
    response_model=AlarmOut,
    responses=_NO_ALARM,
)
def get_alarm(alarm_id: Id, _user: ViewerDep, db: DbDep) -> AlarmOut:
    """One alarm's current state."""
    with db.session() as session:
        return AlarmOut.of(views.get_alarm(session, alarm_id))


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
        alarm = views.get_alarm(session, alarm_id)
        since = query_instant(before) if before is not None else None
        events = views.alarm_events(session, alarm, before=since, limit=limit)
        return [AlarmEventOut.model_validate(e) for e in events]
