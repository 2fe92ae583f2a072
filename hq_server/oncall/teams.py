"""Teams as stored: which team covers a site, who of it is on duty at a time, and gaps.

A site is covered by the team naming it among its sites; otherwise by the team of the site's
customer; otherwise by the team that names neither sites nor a customer (the catch-all).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.users import find_user
from hq_server.core.errors import InvalidInput
from hq_server.oncall.rota import Duty, Override, Period, Role, Rotation, overrides_for
from hq_server.store.models import OncallOverride, OncallRotation, OncallTeam, Site

# How far ahead a rota is checked for gaps when it is saved and on the overview.
GAP_HORIZON = timedelta(days=14)
_CACHE = "oncall_teams"


@dataclass(frozen=True, slots=True)
class TeamRota:
    """A team and its duties (primary, backup), read once."""

    id: int
    name: str
    zone: str
    service_manager: str
    primary: Duty
    backup: Duty

    def duty(self, role: Role) -> Duty:
        """The duty of one role."""
        return self.primary if role is Role.PRIMARY else self.backup

    def gaps(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Times of [start, end) with nobody on primary duty."""
        return self.primary.gaps(start, end)


def rotation_of(row: OncallRotation, zone: str) -> Rotation:
    """The Rotation a stored row describes."""
    hours, minutes = (int(part) for part in row.handover.split(":"))
    return Rotation(
        members=tuple(row.members.get("members", [])),
        zone=zone,
        handover=time(hours, minutes),
        period=Period(row.period),
        weekday=row.weekday,
        starts_on=row.starts_on,
        holidays=frozenset(date.fromisoformat(d) for d in row.holidays.get("dates", [])),
        holiday_cover=row.holiday_cover,
    )


def load_team(session: Session, team: OncallTeam, since: datetime | None = None) -> TeamRota:
    """A team's rota: its rotations and its overrides ending after `since` (all if None)."""
    rotations = {
        Role(r.role): rotation_of(r, team.timezone)
        for r in session.scalars(select(OncallRotation).where(OncallRotation.team_id == team.id))
    }
    stmt = select(OncallOverride).where(OncallOverride.team_id == team.id)
    if since is not None:
        stmt = stmt.where(OncallOverride.ends_at > since)
    overrides = [
        Override(o.username, o.starts_at, o.ends_at, Role(o.role))
        for o in session.scalars(stmt.order_by(OncallOverride.id))
    ]
    return TeamRota(
        id=team.id,
        name=team.name,
        zone=team.timezone,
        service_manager=team.service_manager,
        primary=Duty(rotations.get(Role.PRIMARY), overrides_for(Role.PRIMARY, overrides)),
        backup=Duty(rotations.get(Role.BACKUP), overrides_for(Role.BACKUP, overrides)),
    )


def covering(teams: list[OncallTeam], site: Site) -> OncallTeam | None:
    """The team covering `site` among `teams` (see the module doc)."""
    by_name = [t for t in teams if site.name in t.sites.get("names", [])]
    if by_name:
        return min(by_name, key=lambda t: t.id)
    if site.customer:
        by_customer = [t for t in teams if t.customer and t.customer == site.customer]
        if by_customer:
            return min(by_customer, key=lambda t: t.id)
    rest = [t for t in teams if not t.sites.get("names") and not t.customer]
    return min(rest, key=lambda t: t.id) if rest else None


def team_for_site(session: Session, site: Site, now: datetime) -> TeamRota | None:
    """The rota of the team covering `site` (cached for the transaction), or None."""
    cache: dict[int | str, TeamRota | list[OncallTeam] | None] = session.info.setdefault(_CACHE, {})
    if site.id in cache:
        cached = cache[site.id]
        assert not isinstance(cached, list)
        return cached
    teams = cache.get("all")
    if teams is None:
        teams = list(session.scalars(select(OncallTeam)))
        cache["all"] = teams
    assert isinstance(teams, list)
    team = covering(teams, site)
    rota = None
    if team is not None:
        key = f"team:{team.id}"
        found = cache.get(key)
        if found is None:
            found = load_team(session, team, now - timedelta(days=1))
            cache[key] = found
        assert isinstance(found, TeamRota)
        rota = found
    cache[site.id] = rota
    return rota


def forget(session: Session) -> None:
    """Drop the cached teams of this transaction (after a team, rotation or override changed)."""
    session.info.pop(_CACHE, None)


def on_duty_for_site(session: Session, site: Site, at: datetime) -> str:
    """The user name on primary duty for `site` at `at` ('' if nobody or no team)."""
    rota = team_for_site(session, site, at)
    return rota.primary.who(at) if rota is not None else ""


@dataclass(frozen=True, slots=True)
class DutyNow:
    """Who is on duty for a role now, and who takes over next and when."""

    role: Role
    now: str
    next: str | None
    next_at: datetime | None


def duty_now(rota: TeamRota, at: datetime) -> list[DutyNow]:
    """Now and next, per role."""
    result = []
    for role in Role:
        duty = rota.duty(role)
        change = duty.next_change(at)
        result.append(
            DutyNow(
                role=role,
                now=duty.who(at),
                next=change[1] if change else None,
                next_at=change[0] if change else None,
            )
        )
    return result


def all_gaps(
    session: Session, start: datetime, end: datetime
) -> list[tuple[OncallTeam, list[tuple[datetime, datetime]]]]:
    """Every team with the gaps of its primary duty in [start, end) (teams without gaps too)."""
    teams = session.scalars(select(OncallTeam).order_by(OncallTeam.name)).all()
    return [(team, load_team(session, team, start).gaps(start, end)) for team in teams]


# ---- changing teams ---------------------------------------------------------------------------


def check_users(session: Session, names: Iterable[tuple[str, str]]) -> None:
    """InvalidInput naming the field of the first (field, user name) that is not an HQ user."""
    for field, name in names:
        if name and find_user(session, name) is None:
            raise InvalidInput(f"{field}: no HQ user {name!r}", loc=tuple(field.split(".")))


def check_zone(zone: str) -> str:
    """`zone` if it is an IANA time zone name."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            "timezone: expected an IANA time zone name such as Asia/Shanghai", field="timezone"
        ) from None
    return zone


def gaps_ahead(
    session: Session, team: OncallTeam, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The gaps of a team's primary duty from `now` over GAP_HORIZON (as saved now)."""
    session.flush()
    return load_team(session, team, now).gaps(now, now + GAP_HORIZON)


def save_rotation(
    session: Session,
    team: OncallTeam,
    role: Role,
    values: dict[str, Any],
    now: datetime,
) -> OncallRotation:
    """Create or replace the rotation of one role of a team; user names checked."""
    members = list(values["members"])
    check_users(
        session,
        [*((f"members.{i}", m) for i, m in enumerate(members)),
         ("holiday_cover", values.get("holiday_cover", ""))],
    )  # fmt: skip
    row = session.scalars(
        select(OncallRotation).where(
            OncallRotation.team_id == team.id, OncallRotation.role == role.value
        )
    ).one_or_none()
    if row is None:
        row = OncallRotation(team_id=team.id, role=role.value)
        session.add(row)
    row.period = Period(values["period"]).value
    row.handover = values["handover"]
    row.weekday = int(values.get("weekday", 0))
    row.starts_on = values["starts_on"]
    row.members = {"members": members}
    row.holidays = {"dates": sorted({d.isoformat() for d in values.get("holidays", [])})}
    row.holiday_cover = values.get("holiday_cover", "")
    row.updated_at = now
    team.updated_at = now
    forget(session)
    return row


def add_override(
    session: Session,
    team: OncallTeam,
    role: Role,
    username: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    who: str,
    now: datetime,
) -> OncallOverride:
    """Put `username` on duty from `starts_at` to `ends_at` in place of the rota."""
    if ends_at <= starts_at:
        raise InvalidInput("ends_at: must be after starts_at", field="ends_at")
    check_users(session, [("username", username)])
    row = OncallOverride(
        team_id=team.id,
        role=role.value,
        username=username,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by=who,
        created_at=now,
    )
    session.add(row)
    team.updated_at = now
    forget(session)
    return row
