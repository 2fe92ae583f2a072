"""The state of every site at a glance (the console's overview): worst open grade, open alarms,
agents online or silent, last heartbeat, outbox depth, dropped events; open alarms by grade.

A few grouped queries, whatever the number of sites (1,000 sites and 20,000 open alarms read
in tens of milliseconds: benchmarks/console_pages.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hq_server.store.models import Agent, Alarm, Site


@dataclass(frozen=True, slots=True)
class SiteState:
    """One site as the overview shows it."""

    id: int
    name: str
    customer: str
    timezone: str
    worst_grade: int | None  # of its active alarms; None: no active alarm
    open_alarms: int
    agents: int  # enrolled, not revoked
    agents_online: int  # of those, heard from within the heartbeat timeout
    last_heartbeat: datetime | None
    outbox_depth: int
    dropped_events: int

    @property
    def online(self) -> bool | None:
        """True if every agent is online, False if one is silent, None without agents."""
        if not self.agents:
            return None
        return self.agents_online == self.agents


def open_alarm_counts(session: Session) -> dict[tuple[int, int], int]:
    """How many alarms are active, per (site id, grade): one pass over the active alarms."""
    return {
        (int(site_id), int(grade)): int(count)
        for site_id, grade, count in session.execute(
            select(Alarm.site_id, Alarm.grade, func.count())
            .where(Alarm.active.is_(True))
            .group_by(Alarm.site_id, Alarm.grade)
        )
    }


def site_states(
    session: Session,
    now: datetime,
    heartbeat_timeout: timedelta,
    counts: dict[tuple[int, int], int] | None = None,
) -> list[SiteState]:
    """Every site by worst open grade (most severe first), then by name; `counts` from
    open_alarm_counts if the caller has them already."""
    if counts is None:
        counts = open_alarm_counts(session)
    alarms: dict[int, tuple[int, int]] = {}
    for (site_id, grade), n in counts.items():
        lowest, total = alarms.get(site_id, (grade, 0))
        alarms[site_id] = (min(lowest, grade), total + n)
    agents: dict[int, tuple[int, int, datetime | None, int, int]] = {}
    for site_id, seen, depth, dropped in session.execute(
        select(Agent.site_id, Agent.last_seen_at, Agent.outbox_depth, Agent.dropped_events).where(
            Agent.revoked_at.is_(None)
        )
    ):
        count, online, last, total_depth, total_dropped = agents.get(site_id, (0, 0, None, 0, 0))
        alive = seen is not None and seen > now - heartbeat_timeout
        agents[site_id] = (
            count + 1,
            online + int(alive),
            max(last, seen) if last is not None and seen is not None else (last or seen),
            total_depth + (depth or 0),
            total_dropped + (dropped or 0),
        )
    states = []
    for site_id, name, customer, timezone in session.execute(
        select(Site.id, Site.name, Site.customer, Site.timezone)
    ):
        worst: int | None = None
        count = 0
        if site_id in alarms:
            worst, count = alarms[site_id]
        n, online, last, depth, dropped = agents.get(site_id, (0, 0, None, 0, 0))
        states.append(
            SiteState(
                id=site_id,
                name=name,
                customer=customer,
                timezone=timezone,
                worst_grade=worst,
                open_alarms=count,
                agents=n,
                agents_online=online,
                last_heartbeat=last,
                outbox_depth=depth,
                dropped_events=dropped,
            )
        )
    states.sort(key=lambda s: (s.worst_grade or 9, s.name))
    return states


def open_alarms_by_grade(
    session: Session, counts: dict[tuple[int, int], int] | None = None
) -> dict[int, int]:
    """How many alarms are active, per grade (every grade 1..5 present)."""
    if counts is None:
        counts = open_alarm_counts(session)
    by_grade = dict.fromkeys(range(1, 6), 0)
    for (_site, grade), count in counts.items():
        by_grade[grade] = by_grade.get(grade, 0) + count
    return by_grade
