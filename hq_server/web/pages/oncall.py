"""On call: who of each team is on duty now and who next, the gaps of the next two weeks (times
with nobody on duty, shown as faults), the rotations and the overrides coming, and contacts
whose channels keep failing. Read through hq_server.oncall's services; refreshed live when
tickets change (a page's delivery changes a contact's state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hq_server.oncall import contacts, teams
from hq_server.oncall.contacts import ContactView
from hq_server.oncall.teams import DutyNow
from hq_server.store.models import OncallOverride, OncallRotation, OncallTeam
from hq_server.web.auth import Viewer, app_state
from hq_server.web.i18n import N_
from hq_server.web.render import navigation, render

router = APIRouter(include_in_schema=False)
navigation("/oncall", N_("On call"), 25)


@dataclass(frozen=True, slots=True)
class TeamView:
    """One team as the page shows it."""

    team: OncallTeam
    duty: list[DutyNow]
    gaps: list[tuple[datetime, datetime]]
    rotations: list[OncallRotation]
    overrides: list[OncallOverride]


@dataclass(frozen=True, slots=True)
class OncallData:
    """What the page shows."""

    teams: list[TeamView]
    unreachable: list[ContactView]


def oncall_data(request: Request) -> OncallData:
    """Read the teams, their duty and gaps, and the unreachable contacts in one session."""
    db, clock, settings = app_state(request)
    now = clock.now()
    views = []
    with db.session() as session:
        for team in session.scalars(select(OncallTeam).order_by(OncallTeam.name)):
            rota = teams.load_team(session, team, now)
            rotations = session.scalars(
                select(OncallRotation)
                .where(OncallRotation.team_id == team.id)
                .order_by(OncallRotation.role.desc())
            ).all()
            overrides = session.scalars(
                select(OncallOverride)
                .where(OncallOverride.team_id == team.id, OncallOverride.ends_at > now)
                .order_by(OncallOverride.starts_at)
            ).all()
            views.append(
                TeamView(
                    team=team,
                    duty=teams.duty_now(rota, now),
                    gaps=rota.gaps(now, now + teams.GAP_HORIZON),
                    rotations=list(rotations),
                    overrides=list(overrides),
                )
            )
        unreachable = [
            c for c in contacts.list_views(session, settings.contact_unreachable_after)
            if c.unreachable
        ]  # fmt: skip
    return OncallData(views, unreachable)


@router.get("/oncall")
async def oncall(request: Request, visit: Viewer) -> Response:
    """The on-call page."""
    data = await run_in_threadpool(oncall_data, request)
    return render(request, "oncall.html", visit.t, visit.user, data=data)
