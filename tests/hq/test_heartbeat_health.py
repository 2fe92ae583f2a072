"""Heartbeats: the device map is bounded and its names checked (issue 11, item 9), and HQ keeps
every other figure of each agent's last heartbeat and shows it (suppressed traps, ...)."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from protocol.wire import MAX_HEARTBEAT_DEVICES, Heartbeat
from tests.hq.conftest import HQ, start_hq


def _body(hq: HQ, **fields: Any) -> dict[str, Any]:
    return {
        "agent_version": "0.3.0",
        "sent_at": hq.clock.now().isoformat(),
        "outbox_depth": 7,
        "dropped_events": 2,
        "last_seq": 99,
        **fields,
    }


def _post(hq: HQ, token: str, body: dict[str, Any]) -> Any:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    raw = gzip.compress(json.dumps(body).encode())
    return hq.client.post("/api/v1/heartbeat", content=raw, headers=headers)


def _devices(n: int) -> dict[str, str]:
    return {f"dev-{i:06d}": "ok" for i in range(n)}


def test_an_oversized_device_map_is_refused_and_nothing_kept(hq: HQ) -> None:
    agent = hq.enroll()
    viewer = hq.user_token()
    assert _post(hq, agent, _body(hq, devices=_devices(MAX_HEARTBEAT_DEVICES))).is_success
    too_many = _post(hq, agent, _body(hq, devices=_devices(MAX_HEARTBEAT_DEVICES + 1)))
    assert too_many.status_code == 422
    [error] = too_many.json()["detail"]
    assert error["loc"] == ["body", "devices"] and "at most 5000" in error["msg"]
    assert len(hq.get(viewer, "/api/v1/devices").json()) == MAX_HEARTBEAT_DEVICES


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "-lead", "tx1\x00", "变送器"])
def test_device_names_must_be_device_ids(hq: HQ, name: str) -> None:
    agent = hq.enroll()
    refused = _post(hq, agent, _body(hq, devices={"tx1": "ok", name: "ok"}))
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"][:2] == ["body", "devices"]
    assert hq.get(hq.user_token(), "/api/v1/devices").json() == []


def test_hq_may_accept_fewer_devices(migrated_url: str, clock: ManualClock, tmp_path: Path) -> None:
    with start_hq(migrated_url, clock, tmp_path, heartbeat_max_devices=10) as hq:
        agent = hq.enroll()
        refused = _post(hq, agent, _body(hq, devices=_devices(11)))
        assert refused.status_code == 413
        assert "11 devices" in refused.json()["detail"]
        assert "heartbeat_max_devices" in refused.json()["detail"]
        assert _post(hq, agent, _body(hq, devices=_devices(10))).is_success


def test_the_agent_cannot_build_a_heartbeat_hq_refuses() -> None:
    fields = _body_fields()
    Heartbeat(**fields, devices=_devices(MAX_HEARTBEAT_DEVICES))
    with pytest.raises(ValidationError, match="at most 5000"):
        Heartbeat(**fields, devices=_devices(MAX_HEARTBEAT_DEVICES + 1))
    with pytest.raises(ValidationError, match="pattern"):
        Heartbeat(**fields, devices={"a b": "ok"})
    with pytest.raises(ValidationError, match="at most 64"):
        Heartbeat(**fields, host={f"figure_{i}": 1.0 for i in range(65)})


def _body_fields() -> dict[str, Any]:
    return {
        "agent_version": "0.3.0",
        "sent_at": "2026-03-02T08:00:00Z",
        "outbox_depth": 0,
        "dropped_events": 0,
        "last_seq": 0,
    }


def test_the_last_heartbeats_figures_are_kept_and_shown(hq: HQ) -> None:
    agent = hq.enroll(hostname="box1")
    admin = hq.user_token(Role.ADMIN)
    viewer = hq.user_token()
    host = {"cpu_percent": 3.5, "rss_mib": 61.2, "traps_suppressed": 14781.0}
    hq.clock.advance(timedelta(minutes=1))
    received = hq.clock.now()
    body = _body(hq, devices={"tx1": "ok"}, host=host)
    assert _post(hq, agent, body).status_code == 200

    [shown] = hq.get(admin, "/api/v1/agents").json()
    # Every field of the heartbeat but the device map, under its own name, so fields added to
    # the wire model later are kept without a schema change.
    assert set(shown["health"]) == set(Heartbeat.model_fields) - {"devices"}
    assert shown["health"]["host"] == host
    assert shown["health"]["outbox_depth"] == 7 and shown["health"]["last_seq"] == 99
    assert shown["health_at"].startswith(received.isoformat()[:19])
    assert hq.get(admin, f"/api/v1/agents/{shown['id']}").json()["health"] == shown["health"]
    [site] = hq.get(viewer, "/api/v1/sites").json()
    assert site["agents"][0]["health"]["host"]["traps_suppressed"] == 14781.0
    assert hq.get(viewer, f"/api/v1/sites/{site['id']}").json()["agents"] == site["agents"]

    # The last heartbeat wins: a figure the agent stopped sending is gone.
    assert _post(hq, agent, _body(hq, host={"cpu_percent": 9.0})).status_code == 200
    [shown] = hq.get(admin, "/api/v1/agents").json()
    assert shown["health"]["host"] == {"cpu_percent": 9.0}


def test_an_agent_that_never_sent_a_heartbeat_has_no_figures(hq: HQ) -> None:
    hq.enroll()
    [shown] = hq.get(hq.user_token(Role.ADMIN), "/api/v1/agents").json()
    assert (shown["health"], shown["health_at"], shown["state"]) == (None, None, "active")
