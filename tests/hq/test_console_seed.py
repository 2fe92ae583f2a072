"""The console benchmark's seeding (benchmarks/console_seed.py) writes what HQ itself would hold:
HQ reads the sites, alarms and tickets through its API, an event for a seeded fault reaches its
seeded alarm and ticket, and a new ticket takes the next number of the year."""

from __future__ import annotations

from pathlib import Path

from benchmarks.console_seed import Scale, seed
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from tests.hq.conftest import START, start_hq


def test_seeded_rows_are_hqs_own(migrated_url: str, tmp_path: Path) -> None:
    scale = Scale(sites=10, devices_per_site=4, alarms=200, tickets=50)
    seeded = seed(
        migrated_url, scale, now=START, users={"bench": "admin"}, password="Kx9-desk-pass!"
    )
    assert (seeded.sites, seeded.agents, seeded.alarms, seeded.tickets) == (10, 10, 200, 50)
    with start_hq(migrated_url, ManualClock(START), tmp_path) as hq:
        viewer = hq.user_token(Role.VIEWER)
        assert len(hq.alarms(viewer, limit=500)) == 200
        tickets = hq.tickets(viewer, limit=500)
        assert len(tickets) == 50
        assert {t["site"] for t in tickets} == set(seeded.site_names)
        assert sorted(t["number"] for t in tickets) == seeded.ticket_numbers
        assert all(t["title_zh"] for t in tickets)
        first = next(t for t in tickets if t["number"] == seeded.ticket_numbers[0])
        # The seeded fault raised again by the site's agent: same alarm, same ticket.
        device, _, rest = first["fault_key"].partition(":")
        code, _, component = rest.partition(":")
        agent = hq.enroll(first["site"], hostname="box-new")
        repeat = hq.event(device_id=device, code=code, component=component, grade=first["grade"])
        fresh = hq.event(device_id="new1", code="fan", grade=3, title="Fan fault")
        assert hq.post_events(agent, [repeat, fresh]).status_code == 200
        after = {t["fault_key"]: t for t in hq.tickets(viewer, site=first["site"], limit=500)}
        assert after[first["fault_key"]]["number"] == first["number"]
        year = START.year
        assert after["new1:fan"]["number"] == f"SW-{year}-{51:06d}"
        login = hq.client.post(
            "/api/v1/auth/token", json={"username": "bench", "password": "Kx9-desk-pass!"}
        )
        assert login.status_code == 200, login.text
