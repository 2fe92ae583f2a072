"""On call: who of each team is on duty now and who next, the gaps of the next two weeks (times
with nobody on duty, shown as faults), the rotations and the overrides coming, and contacts
whose channels keep failing. Read through hq_server.oncall's services; refreshed live when
tickets change (a page's delivery changes a contact's state)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hq_server.core.errors import InvalidInput
from hq_server.oncall import contacts, teams
from hq_server.oncall.contacts import ContactView
from hq_server.oncall.rota import Role
from hq_server.oncall.teams import DutyNow
from hq_server.store.models import OncallOverride, OncallRotation, OncallTeam
from hq_server.web.auth import Engineer, Refused, Viewer, Visit, app_state
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


def _page(
    request: Request,
    visit: Visit,
    *,
    status_code: int = 200,
    form: int | None = None,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    data = oncall_data(request)
    return render(
        request, "oncall.html", visit.t, visit.user, status_code=status_code, data=data,
        form=form, typed=typed or {}, errors=errors or {},
    )  # fmt: skip


@router.get("/oncall")
async def oncall(request: Request, visit: Viewer) -> Response:
    """The on-call page."""
    return await run_in_threadpool(_page, request, visit)


def _local(value: str, zone: str) -> datetime | None:
    """A datetime-local field ("2026-03-03T18:00") read in the team's zone, as UTC."""
    try:
        naive = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if naive.tzinfo is not None or not 1970 <= naive.year <= 2999:
        return None
    return naive.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _add_override(request: Request, visit: Visit, team_id: int) -> dict[str, str]:
    """Save the override the form describes; the fields that are wrong, with their message."""
    t, form = visit.t, visit.form
    db, clock, _settings = app_state(request)
    with db.writer() as session, session.begin():
        team = session.get(OncallTeam, team_id)
        if team is None:
            raise Refused(t, 404, N_("There is no such team."))
        errors: dict[str, Any] = {}
        role = form.get("role", "primary")
        if role not in ("primary", "backup"):
            errors["role"] = t.gettext(N_("Choose primary or backup duty."))
        username = form.get("username", "").strip()
        if not username:
            errors["username"] = t.gettext(N_("Name the engineer who covers."))
        starts = _local(form.get("starts_at", ""), team.timezone)
        ends = _local(form.get("ends_at", ""), team.timezone)
        if starts is None:
            errors["starts_at"] = t.gettext(N_("Give a date and time."))
        if ends is None:
            errors["ends_at"] = t.gettext(N_("Give a date and time."))
        elif starts is not None and ends <= starts:
            errors["ends_at"] = t.gettext(N_("The end must come after the start."))
        if errors or starts is None or ends is None:
            return errors
        try:
            teams.add_override(
                session, team, Role(role), username, starts, ends,
                form.get("reason", "").strip()[:500], visit.who.username, clock.now(),
            )  # fmt: skip
        except InvalidInput:
            return {"username": t.gettext(N_("There is no HQ user of that name."))}
        request.state.audit_summary = (
            f"{username} covers {role} duty of team {team.name} "
            f"{starts.isoformat()} - {ends.isoformat()}"
        )
        request.state.audit_targets = {"team_id": team.id}
    return {}


@router.post("/oncall/{team_id}/overrides")
async def add_override(request: Request, team_id: int, visit: Engineer) -> Response:
    """Add an override ("I cover Tuesday night"); back to the page, or the page again showing
    what is wrong."""
    errors = await run_in_threadpool(_add_override, request, visit, team_id)
    if errors:
        request.state.audit_summary = f"refused override: bad input in {', '.join(errors)}"
        typed = {k: v for k, v in visit.form.items() if k != "csrf_token"}
        return await run_in_threadpool(
            lambda: _page(request, visit, status_code=422, form=team_id, typed=typed, errors=errors)
        )
    return RedirectResponse("/oncall", status_code=303)
