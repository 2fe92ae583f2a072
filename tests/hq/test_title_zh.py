"""Fault titles in Simplified Chinese (issue 13): a device profile's rule carries `title_zh`
beside its title; the agent's finding, fault tracker and outbox carry it to HQ, which keeps it
on the alarm and the ticket and returns it from the API. An event without it (an older agent)
is stored as before, and an agent leaves the field out while empty (an older HQ refuses it)."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.outbox import Outbox
from agent.shipping import ship
from agent.uplink import Uplink
from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.spec import CheckSpec
from checks.tracker import FaultTracker
from collectors.base import Reading, ReadingSet
from hq_server.core.clock import ManualClock
from hq_server.store.db import downgrade, upgrade
from protocol import faults
from protocol.wire import EventKind, unused_fields
from tests.hq.conftest import HQ, start_hq
from tests.hq.test_webhook_secrets import _database

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "agent" / "outbox.sqlite", {"tx1": "transmitter"})
    yield outbox
    outbox.close()


def _recording(app: ASGIApp, bodies: list[bytes]) -> ASGIApp:
    """`app`, keeping the body of every event batch it is sent."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/events"):
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        bodies.append(b"".join(chunks))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bodies[-1], "more_body": False}

        await app(scope, replay, send)

    return wrapped


async def _ship(hq: HQ, box: Outbox, bodies: list[bytes] | None = None) -> None:
    app: ASGIApp = hq.client.app
    transport = httpx.ASGITransport(app=_recording(app, [] if bodies is None else bodies))
    uplink = Uplink("http://hq", hq.enroll(), transport=transport)
    try:
        shipped = await ship(box, uplink, 500, asyncio.to_thread)
    finally:
        await uplink.aclose()
    assert shipped.set_aside == 0 and box.depth() == 0


async def test_a_profile_rule_with_title_zh_reaches_the_ticket(hq: HQ, box: Outbox) -> None:
    """The bundled R&S DVB-T profile's off_air rule, graded and shipped by the agent's own
    parts: the alarm and the ticket carry its Chinese title; the device-level fault of the agent
    (unreachable) carries the one of protocol/faults.py."""
    profile = builtin_profiles()["rs_dvbt"]
    [rule] = [c for c in profile.checks if c.code == "off_air"]
    assert rule.title_zh == "发射机停播"
    grader = DeviceGrader("tx1", profile.checks, profile.unreachable_grade)
    tracker = FaultTracker()
    readings = ReadingSet([Reading("tx1", "op_mode", "off", kind="state")])
    now = hq.clock.now().timestamp()
    changes = grader.on_readings(readings, tracker, now)
    changes += grader.on_error(faults.UNREACHABLE, "timeout", tracker, now)
    [event, unreachable] = box.record(changes, tracker.active)
    assert (event.code, event.title_zh) == ("off_air", "发射机停播")
    assert unreachable.title_zh == faults.title_zh(faults.UNREACHABLE) == "设备不可达"
    await _ship(hq, box)

    user = hq.user_token()
    alarms = {a["code"]: a for a in hq.alarms(user)}
    assert alarms["off_air"]["title"] == "Transmitter off air"
    assert alarms["off_air"]["title_zh"] == "发射机停播"
    tickets = {t["code"]: t for t in hq.tickets(user)}
    assert tickets["off_air"]["title"] == "tx1: Transmitter off air"
    assert tickets["off_air"]["title_zh"] == "tx1: 发射机停播"
    assert tickets["unreachable"]["title_zh"] == "tx1: 设备不可达"
    # Either title finds the ticket.
    assert [t["code"] for t in hq.tickets(user, q="停播")] == ["off_air"]
    single = hq.get(user, f"/api/v1/tickets/{tickets['off_air']['id']}")
    assert single.status_code == 200 and single.json()["title_zh"] == "tx1: 发射机停播"


async def test_the_agent_leaves_an_empty_title_zh_out_of_the_json(hq: HQ, box: Outbox) -> None:
    """An HQ older than the field refuses events naming it: the agent sends it (and its outbox
    stores it) only when set."""
    plain = CheckSpec(
        code="fan", title="Fan fault", grade=3, kind="state", metric="fan", raise_in=["failed"]
    )
    grader = DeviceGrader("tx1", [plain])
    tracker = FaultTracker()
    now = hq.clock.now().timestamp()
    changes = grader.on_readings(ReadingSet([Reading("tx1", "fan", "failed")]), tracker, now)
    changes += grader.on_error(faults.UNREACHABLE, "timeout", tracker, now)
    [fan, unreachable] = box.record(changes, tracker.active)
    assert (fan.title_zh, unreachable.title_zh) == ("", "设备不可达")
    assert (unused_fields(fan), unused_fields(unreachable)) == ({"title_zh"}, set())
    db = sqlite3.connect(box.path)
    try:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM events ORDER BY seq")]
    finally:
        db.close()
    assert ["title_zh" in b for b in bodies] == [False, True]

    sent: list[bytes] = []
    await _ship(hq, box, sent)
    [batch] = [json.loads(gzip.decompress(body)) for body in sent]
    assert {e["code"]: "title_zh" in e for e in batch["events"]} == {
        "fan": False,
        "unreachable": True,
    }


def test_an_event_without_title_zh_is_stored_as_before(hq: HQ) -> None:
    """An older agent sends no title_zh: the alarm and ticket get an empty one; a later event
    of a newer agent for the same fault gives the alarm its Chinese title."""
    agent = hq.enroll()
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    user = hq.user_token()
    [alarm] = hq.alarms(user)
    assert alarm["title_zh"] == ""
    [ticket] = hq.tickets(user)
    assert ticket["title_zh"] == ""
    update = hq.event(EventKind.UPDATE, grade=2, title_zh="发射机停播")
    assert hq.post_events(agent, [update]).status_code == 200
    [alarm] = hq.alarms(user)
    assert alarm["title_zh"] == "发射机停播"
    too_long = hq.event(device_id="tx2", title_zh="停" * 201)
    response = hq.post_events(agent, [too_long])
    assert response.status_code == 200
    assert "title_zh" in response.json()["rejected"][0]["reason"]


def test_a_site_outage_has_a_chinese_title(hq: HQ) -> None:
    """HQ's own ticket grouping devices unreachable together."""
    agent = hq.enroll()
    events = [
        hq.event(device_id=f"d{i}", code=faults.UNREACHABLE, grade=2, title="Device unreachable")
        for i in range(3)
    ]
    assert hq.post_events(agent, events).status_code == 200
    user = hq.user_token()
    # Three devices unreachable at once are one outage (the policy's minimum).
    [outage] = [t for t in hq.tickets(user) if t["code"] != faults.UNREACHABLE]
    assert outage["title_zh"] == "站点停运：3 台设备不可达"  # noqa: RUF001


def _seed(hq: HQ) -> None:
    agent = hq.enroll()
    events = [
        hq.event(device_id="tx1", title_zh="发射机停播"),
        hq.event(device_id="tx2", code="fan", grade=3, title="Fan fault"),
    ]
    assert hq.post_events(agent, events).status_code == 200


def test_revision_0010_adds_and_drops_title_zh_with_rows_present(
    db_url: str, tmp_path: Path
) -> None:
    """Down to 0008 with alarms and tickets present: the columns go, the rows stay; up again:
    the rows have an empty Chinese title and HQ works on them."""
    upgrade(db_url)
    clock = ManualClock(T0)
    with start_hq(db_url, clock, tmp_path) as hq:
        _seed(hq)
    downgrade(db_url, "0008")
    with _database(db_url) as db, db.engine.connect() as conn:
        for table in ("alarms", "tickets"):
            columns = {c["name"] for c in inspect(conn).get_columns(table)}
            assert "title_zh" not in columns and "title" in columns
            count = text(f"SELECT count(*) FROM {table}")  # noqa: S608 (a fixed name)
            assert conn.execute(count).scalar_one() == 2
    upgrade(db_url)
    with _database(db_url) as db, db.engine.connect() as conn:
        db.check_schema()
        for table in ("alarms", "tickets"):
            select_zh = text(f"SELECT title_zh FROM {table}")  # noqa: S608 (a fixed name)
            values = conn.execute(select_zh).scalars().all()
            assert values == ["", ""]
    clock.advance(timedelta(minutes=1))
    with start_hq(db_url, clock, tmp_path) as hq:
        user = hq.user_token()
        assert {a["title_zh"] for a in hq.alarms(user)} == {""}
        agent = hq.enroll(hostname="box2")
        raised: dict[str, Any] = hq.event(device_id="tx3", title_zh="发射机停播", seq=1)
        raised["event_id"] = str(uuid.uuid4())
        assert hq.post_events(agent, [raised]).status_code == 200
        zh = {t["device_id"]: t["title_zh"] for t in hq.tickets(user)}
        assert zh == {"tx1": "", "tx2": "", "tx3": "tx3: 发射机停播"}
