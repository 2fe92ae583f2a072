"""A newer agent reporting to an HQ older than the fields added within v1 (title_zh on events,
device_info on heartbeats): the older HQ refuses them as unknown, the agent learns it and sends
without them, and no event is set aside for it.

The older HQ is the real HQ behind a front that answers a body naming a newer field the way an
HQ without it does (its wire models forbid unknown fields: tested in tests/hq/test_events_api.py
with a field no HQ knows): the event is refused for good with "title_zh: Extra inputs are not
permitted", the heartbeat with a 422 naming device_info."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.outbox import Outbox
from agent.shipping import ship
from agent.uplink import Uplink
from checks.engine import DeviceGrader
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.base import Reading, ReadingSet
from protocol.wire import DeviceInfo, DeviceState, Heartbeat
from tests.hq.conftest import HQ

NEWER = {"title_zh", "device_info"}
REFUSAL = "Extra inputs are not permitted"


def _older(app: ASGIApp, seen: list[dict[str, Any]]) -> ASGIApp:
    """`app` as an HQ that knows none of the NEWER fields (see the module doc)."""

    async def older(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.endswith(("/events", "/heartbeat")):
            await app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        headers = dict(scope["headers"])
        text = gzip.decompress(raw) if headers.get(b"content-encoding") == b"gzip" else raw
        body = json.loads(text)
        seen.append(body)
        refused: list[dict[str, Any]] = []
        if path.endswith("/heartbeat"):
            unknown = sorted(NEWER & set(body))
            if unknown:
                detail = [{"type": "extra_forbidden", "loc": ["body", unknown[0]], "msg": REFUSAL}]
                await _json(send, 422, {"detail": detail})
                return
        else:
            kept = []
            for event in body["events"]:
                unknown = sorted(NEWER & set(event))
                if unknown:
                    refused.append(
                        {"event_id": event["event_id"], "reason": f"{unknown[0]}: {REFUSAL}"}
                    )
                else:
                    kept.append(event)
            raw = gzip.compress(json.dumps({"events": kept}).encode())
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        if not refused:
            await app(scope, replay, send)
            return
        answer: dict[str, Any] = {}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.body":
                answer.update(json.loads(message.get("body", b"{}") or b"{}"))

        await app(scope, replay, capture)
        answer["rejected"] = [*answer.get("rejected", []), *refused]
        await _json(send, 200, answer)

    return older


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "agent" / "outbox.sqlite", {"tx1": "transmitter"})
    yield outbox
    outbox.close()


async def test_a_newer_agent_keeps_reporting_to_an_older_hq(hq: HQ, box: Outbox) -> None:
    seen: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=_older(hq.client.app, seen))
    uplink = Uplink("http://hq", hq.enroll(), transport=transport)
    try:
        profile = builtin_profiles()["rs_dvbt"]
        grader = DeviceGrader("tx1", profile.checks)
        tracker = FaultTracker()
        readings = ReadingSet([Reading("tx1", "op_mode", "off", kind="state")])
        now = hq.clock.now().timestamp()
        box.record(grader.on_readings(readings, tracker, now), tracker.active)
        shipped = await ship(box, uplink, 500, asyncio.to_thread)
        assert (shipped.stored, shipped.set_aside) == (1, 0)
        assert uplink.unknown_fields == {"title_zh"}
        assert "title_zh" in seen[0]["events"][0] and "title_zh" not in seen[1]["events"][0]
        [alarm] = hq.alarms(hq.user_token())
        assert (alarm["title"], alarm["title_zh"]) == ("Transmitter off air", "")

        beat = Heartbeat(
            agent_version="0.2.0",
            sent_at=datetime.now(UTC),
            outbox_depth=0,
            dropped_events=0,
            last_seq=1,
            devices={"tx1": DeviceState.OK},
            device_info={"tx1": DeviceInfo(device_class="transmitter", profile="rs_dvbt")},
        )
        await uplink.heartbeat(beat)
        assert uplink.unknown_fields == {"title_zh", "device_info"}
        assert "device_info" not in seen[-1]
        await uplink.heartbeat(beat)  # from now on without it, at once
        assert "device_info" not in seen[-1] and len(seen) == 5
    finally:
        await uplink.aclose()
