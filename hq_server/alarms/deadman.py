"""HQ's dead man's switch: a site whose agents all stopped sending heartbeats (and events) for
`heartbeat_timeout` gets a grade-1 "site unreachable" alarm raised by HQ itself; it clears when
any agent of the site is heard from again: at once on a heartbeat (`heard_from`), or at the
next scheduler step for events. Checked by the scheduler loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hq_server.store.models import Agent, Alarm, Site, UTCDateTime
from hq_server.tickets.book import apply_transition
from hq_server.tickets.policy import AlarmTransition, TicketPolicy, TransitionKind
from protocol import faults
from protocol.faults import SITE_UNREACHABLE

logger = logging.getLogger(__name__)

FAULT_KEY = "hq:site_unreachable"
ACTOR = "hq:deadman"
TITLE = faults.title(SITE_UNREACHABLE)


@dataclass(frozen=True, slots=True)
class DeadmanReport:
    """Sites whose alarm was raised or cleared in one check."""

    raised: list[int]
    cleared: list[int]


def _last_heard(session: Session) -> dict[int, tuple[datetime, int]]:
    """Per site with live agents: when an agent was last heard from, and which agent."""
    heard = func.coalesce(Agent.last_seen_at, Agent.enrolled_at, type_=UTCDateTime())
    rows = session.execute(
        select(Agent.site_id, Agent.id, heard).where(Agent.revoked_at.is_(None))
    ).all()
    result: dict[int, tuple[datetime, int]] = {}
    for site_id, agent_id, at in rows:
        if site_id not in result or at > result[site_id][0]:
            result[site_id] = (at, agent_id)
    return result


def check(
    session: Session, now: datetime, timeout: timedelta, policy: TicketPolicy
) -> DeadmanReport:
    """Raise or clear the "site unreachable" alarms as the heartbeats say."""
    heard = _last_heard(session)
    alarms = {
        a.site_id: a for a in session.scalars(select(Alarm).where(Alarm.fault_key == FAULT_KEY))
    }
    report = DeadmanReport(raised=[], cleared=[])
    for site_id, (at, agent_id) in heard.items():
        silent = now - at >= timeout
        alarm = alarms.get(site_id)
        if silent and (alarm is None or not alarm.active):
            alarm = _raise(session, site_id, agent_id, alarm, now, at)
            apply_transition(
                session, AlarmTransition(TransitionKind.RAISED, alarm, None, ACTOR), now, policy
            )
            report.raised.append(site_id)
        elif not silent and alarm is not None and alarm.active:
            _clear(session, alarm, now, policy)
            report.cleared.append(site_id)
    return report


def _raise(
    session: Session,
    site_id: int,
    agent_id: int,
    alarm: Alarm | None,
    now: datetime,
    last_heard: datetime,
) -> Alarm:
    logger.warning(
        "site=%s: no heartbeat since %s, site unreachable", site_id, last_heard.isoformat()
    )
    if alarm is None:
        alarm = Alarm(
            site_id=site_id,
            site=session.get_one(Site, site_id),
            fault_key=FAULT_KEY,
            device_id="site",
            device_class="site",
            code=SITE_UNREACHABLE,
            component="",
            grade=1,
            title=TITLE,
            title_zh=faults.title_zh(SITE_UNREACHABLE),
            active=True,
            first_raised_at=now,
            last_change_at=now,
            cleared_at=None,
            raise_count=1,
            last_agent_id=agent_id,
            last_event_seq=0,
            flapping=False,
            state_log="1",
        )
        session.add(alarm)
    else:
        alarm.active = True
        alarm.cleared_at = None
        alarm.last_change_at = now
        alarm.raise_count += 1
    session.flush()
    return alarm


def heard_from(session: Session, site_id: int, now: datetime, policy: TicketPolicy) -> bool:
    """Clear the site's "site unreachable" alarm, if active, as one of its agents is back."""
    alarm = session.scalars(
        select(Alarm).where(
            Alarm.site_id == site_id, Alarm.fault_key == FAULT_KEY, Alarm.active.is_(True)
        )
    ).one_or_none()
    if alarm is None:
        return False
    _clear(session, alarm, now, policy)
    return True


def _clear(session: Session, alarm: Alarm, now: datetime, policy: TicketPolicy) -> None:
    logger.info("site=%s: heard from an agent again, site reachable", alarm.site_id)
    alarm.active = False
    alarm.cleared_at = now
    alarm.last_change_at = now
    session.flush()
    transition = AlarmTransition(TransitionKind.CLEARED, alarm, alarm.grade, ACTOR)
    apply_transition(session, transition, now, policy)
