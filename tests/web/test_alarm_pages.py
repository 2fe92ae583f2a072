"""The alarm pages, in-process on SQLite and PostgreSQL: active and recently cleared alarms with
flapping shown, filters with errors next to their fields, an alarm's event history; titles in
the reader's language, times in the site's zone."""

from __future__ import annotations

import re
from datetime import timedelta

from hq_server.core.domain import Role
from protocol.wire import EventKind
from tests.web.console import Console


def test_active_recent_and_flapping_alarms(console: Console) -> None:
    hq = console.hq
    agent = hq.enroll()
    events = [hq.event(device_id="tx1", title_zh="发射机停播")]
    # fan on ups1 goes up and down, a full flap window (11 states), until HQ calls it flapping
    start = hq.clock.now() - timedelta(minutes=20)
    for i in range(12):
        kind = EventKind.RAISE if i % 2 == 0 else EventKind.CLEAR
        at = start + timedelta(minutes=i)
        events.append(
            hq.event(kind, device_id="ups1", code="fan", grade=3, title="Fan fault", observed_at=at)
        )
    events.append(hq.event(device_id="sw1", code="port_down", grade=4, title="Port down"))
    events.append(hq.event(EventKind.CLEAR, device_id="sw1", code="port_down", grade=4))
    assert hq.post_events(agent, events).is_success
    console.as_user("vera", Role.VIEWER)

    active = console.get("/alarms")
    assert active.status_code == 200
    assert "Transmitter off air" in active.text and "Port down" not in active.text
    recent = console.get("/alarms", view="recent")
    assert "Port down" in recent.text
    flapping = (
        console.get("/alarms", view="recent", flapping="1").text
        + console.get("/alarms", flapping="1").text
    )
    assert "flapping" in flapping and "Fan fault" in flapping
    assert "Transmitter off air" not in flapping

    zh = console.client.get("/alarms", headers={"Accept-Language": "zh-CN"}).text
    assert "发射机停播" in zh and "告警" in zh

    bad = console.get("/alarms", grade="9")
    assert bad.status_code == 422 and 'id="e-grade"' in bad.text

    link = re.search(r'href="/alarms/(\d+)">Fan fault', flapping)
    assert link is not None
    page = console.get(f"/alarms/{link[1]}")
    assert page.status_code == 200
    assert page.text.count("<tr>") >= 12  # the event history, with its header
    assert "UTC" in page.text  # times name the site's zone
    assert console.get("/alarms/999999").status_code == 404


def test_times_are_in_the_sites_zone(console: Console) -> None:
    hq = console.hq
    with hq.db.writer() as session, session.begin():
        from hq_server.sites.registry import ensure_site

        ensure_site(session, "beijing", hq.clock.now(), timezone="Asia/Shanghai")
    agent = hq.enroll("beijing")
    assert hq.post_events(agent, [hq.event(observed_at=hq.clock.now() - timedelta(minutes=1))])
    console.as_user("vera", Role.VIEWER)
    assert "Asia/Shanghai" in console.get("/alarms").text
