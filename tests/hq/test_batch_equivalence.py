"""A batch means the same as its events one by one: ingest works a whole batch in memory and
writes it in bulk (hq_server.tickets.book), which must not change what happens. Two sites get
the same random stream (raises, grade updates, clears; flapping, device-unreachable outages,
a site-unreachable fault, tickets resolved and raised again): one site's agent posts each phase
as one batch, the other's posts every event alone. Alarms, tickets, their history, escalations and
outage links must come out the same."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.core.domain import Role
from hq_server.store.models import Alarm, Event, Site, Ticket, TicketAlarmLink, TicketEvent
from tests.hq.conftest import HQ

RESOLVED = {"cause": "c", "fix": "f", "tested": True, "confirmed_by_customer": True}
FINGERPRINTS = [
    ("tx1", "off_air", ""),
    ("tx1", "power_drop", ""),
    ("sw1", "port_down", "Gi0/1"),
    ("sw1", "port_down", "Gi0/2"),
    ("ups1", "on_battery", ""),
    *((f"dev{i}", "unreachable", "") for i in range(5)),
    ("agent", "site_unreachable", ""),
]


def _stream(seed: int, n: int) -> list[tuple[str, int, tuple[str, str, str]]]:
    """(kind, grade, fingerprint) in order; a few fingerprints are hot, so some flap."""
    rng = random.Random(seed)
    hot = FINGERPRINTS[:2]
    out = []
    for _ in range(n):
        fp = rng.choice(hot) if rng.random() < 0.3 else rng.choice(FINGERPRINTS)
        kind = rng.choices(["raise", "update", "clear"], weights=[4, 2, 4])[0]
        out.append((kind, rng.randint(1, 5), fp))
    return out


def _post(hq: HQ, agent: str, name: str, stream: list[Any], *, one_by_one: bool) -> None:
    events = [
        hq.event(
            kind,
            agent=name,
            device_id=device,
            code=code,
            component=component,
            grade=grade,
            title=f"{code} on {device}",
        )
        for kind, grade, (device, code, component) in stream
    ]
    batches = [[e] for e in events] if one_by_one else [events]
    for batch in batches:
        response = hq.post_events(agent, batch)
        assert response.status_code == 200, response.text
        assert len(response.json()["stored"]) == len(batch)


def _resolve_every_other(hq: HQ, user: str, site: str) -> None:
    open_tickets = sorted(hq.tickets(user, site=site, open="true"), key=lambda t: t["title"])
    for ticket in open_tickets[::2]:
        response = hq.post(user, f"/api/v1/tickets/{ticket['id']}/resolve", RESOLVED)
        assert response.status_code == 200, response.text


def _who(value: str) -> str:
    return re.sub(r"agent:\d+", "agent", value)


def _snapshot(session: Session, site_name: str) -> dict[str, Any]:
    site = session.scalars(select(Site).where(Site.name == site_name)).one()
    alarms = {
        a.fault_key: (
            a.active,
            a.grade,
            a.raise_count,
            a.flapping,
            a.state_log,
            a.first_raised_at,
            a.last_change_at,
            a.cleared_at,
        )
        for a in session.scalars(select(Alarm).where(Alarm.site_id == site.id))
    }
    alarm_keys = {a.id: a.fault_key for a in session.scalars(select(Alarm))}
    tickets = []
    for t in session.scalars(select(Ticket).where(Ticket.site_id == site.id).order_by(Ticket.id)):
        history = [
            (h.what, _who(h.who), h.detail)
            for h in session.scalars(
                select(TicketEvent).where(TicketEvent.ticket_id == t.id).order_by(TicketEvent.id)
            )
        ]
        links = sorted(
            alarm_keys[link.alarm_id]
            for link in session.scalars(
                select(TicketAlarmLink).where(TicketAlarmLink.ticket_id == t.id)
            )
        )
        tickets.append(
            (
                t.fault_key,
                t.status,
                t.grade,
                t.alarm_active,
                t.opened_at,
                t.ack_due_at,
                t.restore_due_at,
                t.resolved_at,
                t.alarm_id is not None and alarm_keys[t.alarm_id],
                history,
                (t.ack_escalation_level, t.ack_escalation_at),
                (t.restore_escalation_level, t.restore_escalation_at),
                links,
            )
        )
    applied = [
        e.applied
        for e in session.scalars(select(Event).where(Event.site_id == site.id).order_by(Event.seq))
    ]
    return {"alarms": alarms, "tickets": tickets, "applied": applied}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_batch_ends_where_its_events_one_by_one_end(hq: HQ, seed: int) -> None:
    stream = _stream(seed, 240)
    phases = [stream[:100], stream[100:170], stream[170:]]
    agents = {"batch": hq.enroll("site-batch"), "single": hq.enroll("site-single")}
    user = hq.user_token(Role.ENGINEER)
    hq.clock.advance(timedelta(hours=1))  # events are observed in the past, as usual
    for number, phase in enumerate(phases):
        for site, agent in agents.items():
            _post(hq, agent, site, phase, one_by_one=site == "single")
        for site in agents:
            _resolve_every_other(hq, user, f"site-{site}")
        if number == 1:  # outside the reopen window: new tickets instead of reopened ones
            hq.clock.advance(timedelta(hours=2))
    with hq.db.session() as session:
        batch = _snapshot(session, "site-batch")
        single = _snapshot(session, "site-single")
    assert batch["alarms"] == single["alarms"]
    assert batch["applied"] == single["applied"]
    assert len(batch["tickets"]) == len(single["tickets"])
    for mine, theirs in zip(batch["tickets"], single["tickets"], strict=True):
        assert mine == theirs
    # The stream did reach the paths worth comparing.
    whats = {h[0] for t in batch["tickets"] for h in t[9]}
    assert {"opened", "grade_changed", "alarm_cleared", "reopened", "alarm_grouped"} <= whats
    assert any(t[0] == "site:outage" for t in batch["tickets"])
