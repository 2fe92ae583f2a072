"""Teams as stored: which team covers a site, who of it is on duty at a time, and gaps.

A site is covered by the team naming it among its sites; otherwise by the team of the site's
customer; otherwise by the team that names neither sites nor a customer (the catch-all).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

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
