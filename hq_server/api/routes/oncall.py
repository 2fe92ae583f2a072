"""On-call teams, rotations and overrides, who is on duty now and next, gaps; engineers'
contact methods; paging policies per grade. Admins change teams, rotations and policies;
engineers add overrides ("I cover Tuesday night") and set their own contact methods."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.users import find_user
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AdminDep,
    ClockDep,
    DbDep,
    EngineerDep,
    Id,
    SettingsDep,
    ViewerDep,
    audit_note,
)
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import flush_unique, get_row
from hq_server.api.schemas.common import Instant
from hq_server.api.schemas.oncall import (
    ContactIn,
    ContactOut,
    DutyOut,
    Gap,
    NotificationOut,
    OverrideIn,
    OverrideOut,
    PolicyIn,
    PolicyOut,
    RotationIn,
    RotationOut,
    TeamDutyOut,
    TeamGapsOut,
    TeamIn,
    TeamOut,
)
from hq_server.core.domain import Role as UserRole
from hq_server.core.errors import InvalidInput, NotFound, PermissionDenied
from hq_server.oncall import contacts, teams
from hq_server.oncall.rota import Role
from hq_server.store.models import (
    OncallOverride,
    OncallRotation,
    OncallTeam,
    PagingPolicy,
    Ticket,
)
from hq_server.tickets import notify
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["oncall"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


def _gaps(spans: list[tuple[datetime, datetime]]) -> list[Gap]:
    return [Gap(starts_at=a, ends_at=b) for a, b in spans]


def _team_out(session: Session, team: OncallTeam, now: datetime) -> TeamOut:
    session.flush()
    rota = teams.load_team(session, team, now)
    rotations = session.scalars(
        select(OncallRotation)
        .where(OncallRotation.team_id == team.id)
        .order_by(OncallRotation.role.desc())
    ).all()
    overrides = session.scalars(
        select(OncallOverride)
        .where(OncallOverride.team_id == team.id, OncallOverride.ends_at > now)
        .order_by(OncallOverride.starts_at, OncallOverride.id)
    ).all()
    return TeamOut(
        id=team.id,
        name=team.name,
        timezone=team.timezone,
        sites=team.sites.get("names", []),
        customer=team.customer,
        service_manager=team.service_manager,
        rotations=[
            RotationOut(
                role=r.role,
                period=r.period,
                handover=r.handover,
                weekday=r.weekday,
                starts_on=r.starts_on,
                members=r.members.get("members", []),
                holidays=r.holidays.get("dates", []),
                holiday_cover=r.holiday_cover,
            )
            for r in rotations
        ],
        overrides=[OverrideOut.model_validate(o) for o in overrides],
        duty=[
            DutyOut(role=d.role.value, now=d.now or None, next=d.next or None, next_at=d.next_at)
            for d in teams.duty_now(rota, now)
        ],
        gaps=_gaps(rota.gaps(now, now + teams.GAP_HORIZON)),
        updated_at=team.updated_at,
    )


def _fill_team(session: Session, row: OncallTeam, body: TeamIn) -> None:
    teams.check_zone(body.timezone)
    teams.check_users(session, [("service_manager", body.service_manager)])
    row.name = body.name
    row.timezone = body.timezone
    row.sites = {"names": sorted(set(body.sites))}
    row.customer = body.customer
    row.service_manager = body.service_manager


@router.get("/oncall/teams", response_model=list[TeamOut])
def list_teams(_user: ViewerDep, db: DbDep, clock: ClockDep) -> list[TeamOut]:
    """Every team with its rota, who is on duty now and next, and its gaps ahead."""
    now = clock.now()
    with db.session() as session:
        rows = session.scalars(select(OncallTeam).order_by(OncallTeam.name)).all()
        return [_team_out(session, r, now) for r in rows]


@router.get("/oncall/teams/{team_id}", response_model=TeamOut, responses=errors(404))
def get_team(team_id: Id, _user: ViewerDep, db: DbDep, clock: ClockDep) -> TeamOut:
    """One team."""
    with db.session() as session:
        return _team_out(session, get_row(session, OncallTeam, team_id, "team"), clock.now())


@router.post("/oncall/teams", response_model=TeamOut, status_code=201, responses=errors(409))
def post_team(
    body: TeamIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> TeamOut:
    """Create a team (its gaps are in the answer: a new team has nobody on duty yet)."""
    now = clock.now()
    with db.writer() as session, session.begin():
        row = OncallTeam(created_at=now, updated_at=now)
        _fill_team(session, row, body)
        session.add(row)
        flush_unique(session, f"team {body.name!r}")
        audit_note(request, f"create on-call team {body.name}", team_id=row.id)
        return _team_out(session, row, now)


@router.put("/oncall/teams/{team_id}", response_model=TeamOut, responses=errors(404, 409))
def put_team(
    team_id: Id, body: TeamIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> TeamOut:
    """Change a team."""
    now = clock.now()
    with db.writer() as session, session.begin():
        row = get_row(session, OncallTeam, team_id, "team")
        _fill_team(session, row, body)
        row.updated_at = now
        flush_unique(session, f"team {body.name!r}")
        audit_note(request, f"change on-call team {body.name}", team_id=row.id)
        return _team_out(session, row, now)


@router.put(
    "/oncall/teams/{team_id}/rotations/{role}", response_model=TeamOut, responses=errors(404)
)
def put_rotation(
    team_id: Id,
    role: Role,
    body: RotationIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> TeamOut:
    """Set the rotation of a role (primary or backup); the answer lists the gaps it leaves."""
    now = clock.now()
    with db.writer() as session, session.begin():
        team = get_row(session, OncallTeam, team_id, "team")
        teams.save_rotation(session, team, role, body.model_dump(), now)
        audit_note(request, f"set the {role.value} rotation of team {team.name}", team_id=team.id)
        return _team_out(session, team, now)


@router.post(
    "/oncall/teams/{team_id}/overrides",
    response_model=TeamOut,
    status_code=201,
    responses=errors(404),
)
def post_override(
    team_id: Id,
    body: OverrideIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    clock: ClockDep,
) -> TeamOut:
    """Put someone on duty for a while in place of the rota; the answer lists gaps left."""
    now = clock.now()
    with db.writer() as session, session.begin():
        team = get_row(session, OncallTeam, team_id, "team")
        row = teams.add_override(
            session, team, Role(body.role), body.username, body.starts_at, body.ends_at,
            body.reason, user.name, now,
        )  # fmt: skip
        session.flush()
        audit_note(
            request,
            f"{body.username} covers {body.role} duty of team {team.name} "
            f"{body.starts_at.isoformat()} - {body.ends_at.isoformat()}",
            team_id=team.id,
            override_id=row.id,
        )
        return _team_out(session, team, now)


@router.delete(
    "/oncall/teams/{team_id}/overrides/{override_id}",
    status_code=204,
    response_model=None,
    responses=errors(404),
)
def delete_override(
    team_id: Id, override_id: Id, request: Request, _user: EngineerDep, db: DbDep
) -> None:
    """Remove an override."""
    with db.writer() as session, session.begin():
        row = get_row(session, OncallOverride, override_id, "override")
        if row.team_id != team_id:
            raise NotFound(f"no override {override_id} in team {team_id}")
        audit_note(request, f"remove override {override_id}", team_id=team_id)
        session.delete(row)


@router.get("/oncall/duty", response_model=list[TeamDutyOut])
def duty_now(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    at: Annotated[Instant | None, Query(description="default: now")] = None,
) -> list[TeamDutyOut]:
    """Who is on duty now (or `at`) and next, per team and role (the overview's panel)."""
    when = at or clock.now()
    with db.session() as session:
        result: list[TeamDutyOut] = []
        for team in session.scalars(select(OncallTeam).order_by(OncallTeam.name)):
            rota = teams.load_team(session, team, when)
            result += [
                TeamDutyOut(
                    team_id=team.id,
                    team=team.name,
                    role=d.role.value,
                    now=d.now or None,
                    next=d.next or None,
                    next_at=d.next_at,
                )
                for d in teams.duty_now(rota, when)
            ]
        return result


@router.get("/oncall/gaps", response_model=list[TeamGapsOut])
def gaps(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> list[TeamGapsOut]:
    """Times with nobody on duty in the next `days`, per team (shown on the overview)."""
    now = clock.now()
    with db.session() as session:
        return [
            TeamGapsOut(team_id=team.id, team=team.name, gaps=_gaps(spans))
            for team, spans in teams.all_gaps(session, now, now + timedelta(days=days))
        ]


# ---- contacts -----------------------------------------------------------------------------------


@router.get("/oncall/contacts", response_model=list[ContactOut])
def list_contacts(_user: ViewerDep, db: DbDep, settings: SettingsDep) -> list[ContactOut]:
    """Every engineer's contact methods (no secrets), unreachable ones marked."""
    with db.session() as session:
        return [
            ContactOut.model_validate(v)
            for v in contacts.list_views(session, settings.contact_unreachable_after)
        ]


@router.get("/oncall/contacts/{username}", response_model=ContactOut, responses=errors(404))
def get_contact(username: str, _user: ViewerDep, db: DbDep, settings: SettingsDep) -> ContactOut:
    """One engineer's contact methods."""
    with db.session() as session:
        view = contacts.get_view(session, username, settings.contact_unreachable_after)
        return ContactOut.model_validate(view)


@router.put("/oncall/contacts/{username}", response_model=ContactOut, responses=errors(404))
def put_contact(
    username: str,
    body: ContactIn,
    request: Request,
    user: EngineerDep,
    db: DbDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> ContactOut:
    """Set a user's contact methods (their own, or anyone's as admin); each channel is
    validated, a malformed URL, secret or phone number refused with the field named."""
    with db.writer() as session, session.begin():
        target = find_user(session, username)
        if target is None:
            raise NotFound(f"no HQ user {username!r}")
        if target.id != user.user_id and not user.role.allows(UserRole.ADMIN):
            raise PermissionDenied("engineers set their own contact methods; admins anyone's")
        row = contacts.save(session, target, body.language, body.channels, settings, clock.now())
        session.flush()
        audit_note(request, f"set the contact methods of {target.username}", user_id=target.id)
        view = contacts.view(row, target.username, settings.contact_unreachable_after)
        return ContactOut.model_validate(view)


# ---- paging policies ----------------------------------------------------------------------------


def _policy_out(row: PagingPolicy) -> PolicyOut:
    return PolicyOut(
        grade=row.grade,
        on_open=row.on_open.get("who", []),
        on_raise=row.on_raise.get("who", []),
        repeat_minutes=row.repeat_minutes,
        digest=row.digest,
        channels=row.channels.get("kinds", []),
        all_channels=bool(row.channels.get("all")),
        language=row.language,
        updated_at=row.updated_at,
    )


@router.get("/paging/policies", response_model=list[PolicyOut])
def list_policies(_user: ViewerDep, db: DbDep) -> list[PolicyOut]:
    """The paging policy of each grade."""
    with db.session() as session:
        rows = session.scalars(select(PagingPolicy).order_by(PagingPolicy.grade))
        return [_policy_out(r) for r in rows]


@router.put("/paging/policies/{grade}", response_model=PolicyOut)
def put_policy(
    grade: int,
    body: PolicyIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> PolicyOut:
    """Set who is paged for tickets of a grade, how often again, through which channels."""
    if not 1 <= grade <= 5:
        raise InvalidInput("grade: 1 to 5", field="grade")
    unknown = [k for k in body.channels if k not in contacts.REGISTRY.kinds()]
    if unknown:
        raise InvalidInput(
            f"channels: unknown kind {unknown[0]!r}; one of {', '.join(contacts.REGISTRY.kinds())}",
            field="channels",
        )
    with db.writer() as session, session.begin():
        row = session.get(PagingPolicy, grade)
        if row is None:
            row = PagingPolicy(grade=grade)
            session.add(row)
        row.on_open = {"who": list(dict.fromkeys(body.on_open))}
        row.on_raise = {"who": list(dict.fromkeys(body.on_raise))}
        row.repeat_minutes = body.repeat_minutes
        row.digest = body.digest
        row.channels = {"kinds": body.channels, "all": body.all_channels}
        row.language = body.language
        row.updated_at = clock.now()
        audit_note(request, f"set the paging policy of grade {grade}")
        return _policy_out(row)


# ---- a ticket's notifications ---------------------------------------------------------------


@router.get(
    "/tickets/{ticket_id}/notifications",
    response_model=list[NotificationOut],
    responses=errors(404),
)
def ticket_notifications(ticket_id: Id, _user: ViewerDep, db: DbDep) -> list[NotificationOut]:
    """The pages and other notifications of a ticket, oldest first, with their outcome (each
    attempt is also in the ticket's history)."""
    with db.session() as session:
        get_row(session, Ticket, ticket_id, "ticket")
        return [
            NotificationOut(
                id=n.id,
                channel=n.channel,
                target=n.target,
                kind=notify.kind_of(n),
                status=n.status,
                attempts=n.attempts,
                created_at=n.created_at,
                sent_at=n.sent_at,
                last_error=n.last_error,
            )
            for n in notify.of_ticket(session, ticket_id)
        ]
