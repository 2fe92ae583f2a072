"""Alarms: the active ones and those that cleared recently, with flapping shown, filtered and in
pages; an alarm's page with its event history. Read through hq_server.alarms.views, as the API
reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from math import ceil

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hq_server.alarms import views
from hq_server.core.errors import NotFound
from hq_server.store.models import Alarm, Event
from hq_server.web.auth import Refused, Viewer, app_state
from hq_server.web.i18n import N_, Translator
from hq_server.web.render import navigation, render
from hq_server.web.titles import fault_title

router = APIRouter(include_in_schema=False)
navigation("/alarms", N_("Alarms"), 30)

PAGE_SIZE = 50
EVENTS_SHOWN = 200
# "Recent": cleared within this long.
RECENT = timedelta(hours=24)
VIEWS = {"active": N_("Active"), "recent": N_("Cleared in the last 24 hours")}
EVENT_KINDS = {"raise": N_("raised"), "update": N_("updated"), "clear": N_("cleared")}


@dataclass(slots=True)
class AlarmQuery:
    """The list's filters as typed, and the errors in them."""

    values: dict[str, str]
    view: str
    grade: int | None
    page: int
    errors: dict[str, str] = field(default_factory=dict)


def _query(params: dict[str, str], t: Translator) -> AlarmQuery:
    values = {k: params.get(k, "").strip() for k in ("view", "grade", "site", "device")}
    values["flapping"] = "1" if params.get("flapping") in ("1", "true", "on") else ""
    errors: dict[str, str] = {}
    view = values["view"] or "active"
    if view not in VIEWS:
        errors["view"] = t.gettext(N_("Unknown view."))
        view = "active"
    values["view"] = view
    grade: int | None = None
    if values["grade"]:
        if values["grade"].isdigit() and 1 <= int(values["grade"]) <= 5:
            grade = int(values["grade"])
        else:
            errors["grade"] = t.gettext(N_("A grade is a number from 1 to 5."))
    for name in ("site", "device"):
        if len(values[name]) > 100:
            errors[name] = t.gettext(N_("At most %(count)s characters."), count=100)
            values[name] = values[name][:100]
    page = int(params["page"]) if params.get("page", "").isdigit() else 1
    return AlarmQuery(values, view, grade, max(1, page), errors)


@router.get("/alarms")
async def alarm_list(request: Request, visit: Viewer) -> Response:
    """Active alarms (or those cleared in the last day), most recently changed first."""
    query = _query(dict(request.query_params), visit.t)
    db, clock, _settings = app_state(request)
    now = clock.now()
    wanted = views.AlarmFilter(
        active=query.view == "active",
        site=query.values["site"] or None,
        device_id=query.values["device"] or None,
        grade=query.grade,
        flapping=True if query.values["flapping"] else None,
        changed_since=now - RECENT if query.view == "recent" else None,
    )

    def read() -> tuple[list[Alarm], int]:
        with db.session() as session:
            total = views.count_alarms(session, wanted)
            rows = views.find_alarms(
                session, wanted, limit=PAGE_SIZE, offset=(query.page - 1) * PAGE_SIZE
            )
            for alarm in rows:
                _ = alarm.site  # loaded (joined) before the session closes
            return rows, total

    rows, total = await run_in_threadpool(read)
    link = {k: v for k, v in query.values.items() if v}
    return render(
        request,
        "alarms/list.html",
        visit.t,
        visit.user,
        status_code=422 if query.errors else 200,
        rows=rows,
        total=total,
        query=query,
        page=query.page,
        pages=max(1, ceil(total / PAGE_SIZE)),
        link=link,
        views=VIEWS,
    )


@router.get("/alarms/{alarm_id}")
async def alarm_page(request: Request, alarm_id: int, visit: Viewer) -> Response:
    """One alarm: its state and its event history, newest first."""
    db, _clock, _settings = app_state(request)

    def read() -> tuple[Alarm, list[Event]]:
        with db.session() as session:
            try:
                alarm = views.get_alarm(session, alarm_id)
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such alarm.")) from None
            return alarm, views.alarm_events(session, alarm, limit=EVENTS_SHOWN)

    alarm, events = await run_in_threadpool(read)
    return render(
        request,
        "alarms/detail.html",
        visit.t,
        visit.user,
        alarm=alarm,
        events=events,
        zone=alarm.site.timezone,
        kinds=EVENT_KINDS,
        title=fault_title(visit.t, alarm),
    )
