"""The overview: every site's state, open alarms by grade, the tickets closest to missing a
deadline, with live countdowns, and the on-call gaps of the next two weeks (times with nobody on
duty, shown only when there are some); refreshed live (data-live) when alarms, tickets or sites
change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hq_server.oncall import teams
from hq_server.sites.overview import (
    SiteState,
    open_alarm_counts,
    open_alarms_by_grade,
    site_states,
)
from hq_server.store.models import OncallTeam, Ticket
from hq_server.tickets.search import closest_to_deadline, next_deadline
from hq_server.web.auth import Viewer, app_state
from hq_server.web.i18n import N_
from hq_server.web.render import navigation, render

router = APIRouter(include_in_schema=False)
navigation("/", N_("Overview"), 10)

# Tickets shown in "closest to their deadline".
DEADLINE_ROWS = 10


@dataclass(frozen=True, slots=True)
class Deadline:
    """A ticket and the deadline it must meet next."""

    ticket: Ticket
    due: datetime
    kind: str  # "ack" or "restore"


@dataclass(frozen=True, slots=True)
class OverviewData:
    """What the overview shows."""

    sites: list[SiteState]
    by_grade: dict[int, int]
    deadlines: list[Deadline]
    # Teams with times of nobody on duty over teams.GAP_HORIZON, and those times.
    gaps: list[tuple[OncallTeam, list[tuple[datetime, datetime]]]]


def overview_data(request: Request) -> OverviewData:
    """Read the overview in one database session."""
    db, clock, settings = app_state(request)
    now = clock.now()
    with db.session() as session:
        counts = open_alarm_counts(session)
        sites = site_states(session, now, settings.heartbeat_timeout, counts)
        by_grade = open_alarms_by_grade(session, counts)
        deadlines = []
        for ticket in closest_to_deadline(session, DEADLINE_ROWS):
            due = next_deadline(ticket)
            if due is not None:
                kind = "ack" if ticket.acknowledged_at is None else "restore"
                deadlines.append(Deadline(ticket, due, kind))
        gaps = [
            (team, spans)
            for team, spans in teams.all_gaps(session, now, now + teams.GAP_HORIZON)
            if spans
        ]
    return OverviewData(sites, by_grade, deadlines, gaps)


@router.get("/")
async def overview(request: Request, visit: Viewer) -> Response:
    """The overview page."""
    data = await run_in_threadpool(overview_data, request)
    return render(request, "overview.html", visit.t, visit.user, data=data, now=visit.now)
