"""A newer agent's heartbeat at an older HQ: fields added within v1 are left out while unused,
and an HQ that refuses one it does not know (422, extra fields forbidden) gets the heartbeat
again without them; the agent says so once.

The older HQ is a stand-in built here from the v1 heartbeat as it was before the agent's health
figures (set_aside_events) were added, with the same refusal of unknown fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from agent.uplink import Uplink
from protocol.wire import API_PREFIX, DeviceState, Heartbeat, HeartbeatAck

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class OldHeartbeat(BaseModel):
    """protocol.wire.Heartbeat before the fields added within v1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_version: str = Field(max_length=32)
    sent_at: datetime
    outbox_depth: int = Field(ge=0)
    dropped_events: int = Field(ge=0)
    last_seq: int = Field(ge=0)
    devices: dict[str, DeviceState] = Field(default_factory=dict)
    host: dict[str, float] = Field(default_factory=dict)


def _older_hq(received: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post(API_PREFIX + "/heartbeat")
    def heartbeat(hb: OldHeartbeat) -> HeartbeatAck:
        received.append(hb.model_dump(mode="json"))
        return HeartbeatAck(server_time=NOW)

    return app


def _heartbeat(set_aside: int) -> Heartbeat:
    return Heartbeat(
        agent_version="1.1.0",
        sent_at=NOW,
        outbox_depth=3,
        dropped_events=0,
        last_seq=42,
        set_aside_events=set_aside,
        host={"traps_suppressed": 14781.0},
    )


async def test_a_newer_agent_heartbeats_to_an_older_hq(caplog: pytest.LogCaptureFixture) -> None:
    received: list[dict[str, Any]] = []
    requests: list[dict[str, Any]] = []

    async def record(request: httpx.Request) -> None:
        requests.append(json.loads(request.content))

    transport = httpx.ASGITransport(app=_older_hq(received))
    uplink = Uplink("http://hq.test", "sw_agent_x", transport=transport)
    uplink._client.event_hooks["request"].append(record)
    try:
        # Unused: left out, the older HQ takes it as it is.
        await uplink.heartbeat(_heartbeat(set_aside=0))
        assert "set_aside_events" not in requests[-1]
        # Used: refused by the older HQ, sent again without it, and accepted.
        with caplog.at_level(logging.WARNING, logger="agent.uplink"):
            ack = await uplink.heartbeat(_heartbeat(set_aside=5))
            assert ack.server_time == NOW
            assert requests[-2]["set_aside_events"] == 5
            assert "set_aside_events" not in requests[-1]
            # From then on straight without it: one request a heartbeat, one warning in all.
            await uplink.heartbeat(_heartbeat(set_aside=6))
            assert len(requests) == 4 and "set_aside_events" not in requests[-1]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "set_aside_events" in warnings[0].getMessage()
        assert [r["last_seq"] for r in received] == [42, 42, 42]
        assert all(r["host"] == {"traps_suppressed": 14781.0} for r in received)
    finally:
        await uplink.aclose()


async def test_a_refusal_for_another_reason_is_not_retried() -> None:
    """A 422 that is not about a field the older HQ does not know stays a refusal."""
    app = FastAPI()
    calls: list[int] = []

    @app.post(API_PREFIX + "/heartbeat")
    def heartbeat(hb: OldHeartbeat) -> HeartbeatAck:
        calls.append(1)
        raise AssertionError("not reached")

    uplink = Uplink("http://hq.test", "sw_agent_x", transport=httpx.ASGITransport(app=app))
    try:
        bad = _heartbeat(set_aside=0).model_copy(update={"agent_version": "x" * 40})
        with pytest.raises(Exception, match="422"):
            await uplink.heartbeat(bad)
        assert calls == []
    finally:
        await uplink.aclose()
