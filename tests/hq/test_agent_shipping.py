"""The agent's shipping (agent.shipping, its real outbox and uplink) against the real HQ app, on
SQLite and PostgreSQL (issue 11, item 4): events HQ refuses for good are set aside and the queue
moves on; a batch HQ refuses as a whole is split until the refused events are found alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent.config import load_config
from agent.errors import UplinkError, UplinkRejected
from agent.outbox import Outbox
from agent.runner import AgentRuntime
from agent.shipping import ship
from agent.uplink import Uplink
from checks.tracker import FaultChange
from hq_server.core.clock import ManualClock
from hq_server.store.models import Event
from protocol.grades import Grade
from protocol.wire import BatchAck, EventBatch, EventKind, FaultEvent
from tests.e2e.conftest import write_site
from tests.hq.conftest import HQ, start_hq
from tests.outbox_rows import put_raw


async def in_db(fn: Callable[..., Any], *args: Any) -> Any:
    """Outbox calls off the event loop, as the runtime's database thread runs them."""
    return await asyncio.to_thread(fn, *args)


def change(code: str, grade: int, title: str = "", detail: str = "") -> FaultChange:
    return FaultChange(
        EventKind.RAISE, "tx1", code, "", Grade(grade), title or code, detail, 1_772_000_000.0
    )


def raw_event(code: str, observed_at: str) -> dict[str, Any]:
    return {
        "kind": "raise",
        "device_id": "tx1",
        "device_class": "transmitter",
        "code": code,
        "grade": 2,
        "title": code,
        "observed_at": observed_at,
    }


@asynccontextmanager
async def uplink_to(hq: HQ) -> AsyncIterator[Uplink]:
    uplink = Uplink("http://hq", hq.enroll(), transport=httpx.ASGITransport(app=hq.client.app))
    try:
        yield uplink
    finally:
        await uplink.aclose()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "agent" / "outbox.sqlite", {"tx1": "transmitter"})
    yield outbox
    outbox.close()


def stored_ids(hq: HQ) -> set[str]:
    with hq.db.session() as session:
        return {str(i) for i in session.scalars(select(Event.event_id))}


async def test_refused_events_are_set_aside_and_the_queue_moves_on(hq: HQ, box: Outbox) -> None:
    """The attack of item 4 through the agent: poisoned events next to a grade-1 event. The
    grade-1 event gets its ticket, the NUL is cleaned and stored, the times HQ refuses are set
    aside with HQ's reason, and the events recorded afterwards are delivered."""
    [off_air, nul] = box.record([change("off_air", 1), change("fan", 3, "fan\x00 1")], {})
    year_one = put_raw(box.path, 10, 2, raw_event("clock_a", "0001-01-01T00:00:00+14:00"))
    nineteen_ninety = put_raw(box.path, 11, 2, raw_event("clock_b", "1990-01-01T00:00:00Z"))
    async with uplink_to(hq) as uplink:
        shipped = await ship(box, uplink, 500, in_db)
        assert (shipped.stored, shipped.set_aside, shipped.requests) == (2, 2, 1)
        assert box.depth() == 0 and box.set_aside_count() == 2
        reasons = {a.event_id: a.reason for a in box.set_aside_events()}
        assert reasons[year_one].startswith("HQ refused it: observed_at: ")
        assert "cannot be expressed in UTC" in reasons[year_one]
        assert "before 2000-01-01" in reasons[nineteen_ninety]
        assert stored_ids(hq) == {str(off_air.event_id), str(nul.event_id)}
        user = hq.user_token()
        assert [t["grade"] for t in hq.tickets(user) if t["fault_key"] == "tx1:off_air"] == [1]

        [later] = box.record([change("temp_high", 3)], {})
        shipped = await ship(box, uplink, 500, in_db)
        assert (shipped.stored, shipped.set_aside) == (1, 0)
        assert str(later.event_id) in stored_ids(hq)
    assert nul.title == "fan\ufffd 1"


async def test_a_batch_refused_whole_is_halved_until_the_refused_event_is_alone(
    migrated_url: str, clock: ManualClock, tmp_path: Path, box: Outbox
) -> None:
    """An HQ that refuses a batch as a whole (here: 413, larger than the 2 KiB it takes) gets
    it in halves; the event too large on its own is set aside, all others delivered."""
    box.record([change(f"c{i:02}", 3) for i in range(12)], {})
    [big] = box.record([change("big", 3, detail="x" * 2000)], {})
    box.record([change(f"d{i:02}", 3) for i in range(12)], {})
    with start_hq(migrated_url, clock, tmp_path / "hq", max_body_bytes=2048) as hq:
        async with uplink_to(hq) as uplink:
            shipped = await ship(box, uplink, 500, in_db)
        assert (shipped.stored, shipped.set_aside) == (24, 1)
        assert 3 < shipped.requests <= 2 * 25
        [aside] = box.set_aside_events()
        assert aside.event_id == str(big.event_id)
        assert aside.reason == (
            "HQ refused it (413): request body larger than 2048 bytes (setting max_body_bytes)"
        )
        assert box.depth() == 0 and len(stored_ids(hq)) == 24


class UncappedSender:
    """The agent's uplink without the agent's own cap of 5,000 events per batch (which keeps
    the real agent from ever sending more), so that the real HQ refuses a batch whole."""

    def __init__(self, uplink: Uplink) -> None:
        self.uplink = uplink
        self.sizes: list[int] = []

    async def send_events(self, events: list[FaultEvent]) -> BatchAck:
        self.sizes.append(len(events))
        batch = EventBatch.model_construct(events=events)
        return await self.uplink._post("/events", batch, BatchAck, gzip_body=True)


async def test_a_422_for_the_whole_batch_is_split_too(hq: HQ, box: Outbox) -> None:
    """HQ answers 422 when it cannot read a batch at all (here: over its 5,000 events; an HQ
    older than per-event judging did so for any invalid event). The halves go through, and
    the event HQ refuses inside them is set aside alone."""
    box.record([change(f"c{i}", 3) for i in range(5001)], {})
    bad = put_raw(box.path, 9999, 3, raw_event("clock", "0001-01-01T00:00:00+14:00"))
    async with uplink_to(hq) as uplink:
        sender = UncappedSender(uplink)
        shipped = await ship(box, sender, 5002, in_db)
    assert sender.sizes == [5002, 2501, 2501]
    assert (shipped.stored, shipped.set_aside) == (5001, 1)
    assert [a.event_id for a in box.set_aside_events()] == [bad]
    assert box.depth() == 0 and len(stored_ids(hq)) == 5001


class RecordingTransport(httpx.ASGITransport):
    """The real app, with the bodies the agent sent kept for inspection."""

    def __init__(self, app: Any) -> None:
        super().__init__(app=app)
        self.bodies: dict[str, list[dict[str, Any]]] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Keep the JSON body (by path), then let the app answer."""
        raw = await request.aread()
        if request.headers.get("content-encoding") != "gzip":
            self.bodies.setdefault(request.url.path, []).append(json.loads(raw))
        return await super().handle_async_request(request)


async def test_the_heartbeat_reports_the_set_aside_events(hq: HQ, tmp_path: Path) -> None:
    """The agent's heartbeat carries the count (HQ takes it); while it is 0 the heartbeat is
    the same JSON as before the field existed, so an older HQ still takes it."""
    site = write_site(tmp_path / "agent", "http://127.0.0.1")
    token = hq.enroll()
    runtime = AgentRuntime(load_config(site), token)
    transport = RecordingTransport(hq.client.app)
    await runtime.uplink.aclose()
    runtime.uplink = Uplink("http://hq", token, transport=transport)
    try:
        await runtime.uplink.heartbeat(runtime.heartbeat_payload())
        [first] = transport.bodies["/api/v1/heartbeat"]
        assert "set_aside_events" not in first

        await runtime.commit([change("off_air", 1)])
        put_raw(runtime.outbox.path, 50, 2, raw_event("clock", "0001-01-01T00:00:00+14:00"))
        assert await runtime.upload_once() == 2
        payload = runtime.heartbeat_payload()
        assert payload.set_aside_events == 1
        await runtime.uplink.heartbeat(payload)
        assert transport.bodies["/api/v1/heartbeat"][-1]["set_aside_events"] == 1
    finally:
        await runtime.close()


async def test_a_408_is_retried_like_a_busy_hq(box: Outbox) -> None:
    """HQ's 408 (the body did not arrive within body_timeout: a slow link) is no refusal of
    the batch: the agent tries again later, with the usual backoff, and sets nothing aside."""

    def slow_link(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            408,
            json={"detail": "request body not received within 60 s (setting body_timeout)"},
            headers={"Connection": "close"},
        )

    box.record([change("off_air", 1)], {})
    uplink = Uplink("http://hq", "sw_agent_x", transport=httpx.MockTransport(slow_link))
    try:
        with pytest.raises(UplinkError) as failed:
            await ship(box, uplink, 100, in_db)
        assert not isinstance(failed.value, UplinkRejected)
    finally:
        await uplink.aclose()
    assert [e.code for e in await in_db(box.pending)] == ["off_air"]
    assert box.set_aside_events() == []
