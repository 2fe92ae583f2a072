"""Devices as HQ knows them (hq_server.sites.devices, read by GET /devices and the console):
state from the heartbeats, class and profile from agents that report them, class and active
alarm count from alarms, and the last values from the device's latest job returning some."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hq_server.core.domain import Role
from hq_server.sites.devices import last_values, list_devices, page_devices
from tests.hq.conftest import HQ
from tests.hq.test_heartbeat_health import _body, _post
from tests.hq.test_jobs import auth, poll, post_result, result_body, site_id


def test_devices_come_from_heartbeats_and_alarms(hq: HQ) -> None:
    agent = hq.enroll()
    info = {
        "tx1": {"device_class": "transmitter", "profile": "rs_dvbt"},
        "ups1": {"device_class": "ups", "profile": "auto"},
    }
    body = _body(hq, devices={"tx1": "ok", "ups1": "unreachable"}, device_info=info)
    assert _post(hq, agent, body).is_success
    assert hq.post_events(agent, [hq.event(device_id="tx1"), hq.event(device_id="pbx1")]).is_success
    shown = hq.get(hq.user_token(), "/api/v1/devices").json()
    assert [
        (d["device_id"], d["device_class"], d["profile"], d["state"], d["active_alarms"])
        for d in shown
    ] == [
        ("pbx1", "transmitter", None, "unknown", 1),
        ("tx1", "transmitter", "rs_dvbt", "ok", 1),
        ("ups1", "ups", "auto", "unreachable", 0),
    ]
    with hq.db.session() as session:
        [tx1] = list_devices(session, "site-a", "tx1")
        first = page_devices(session, limit=2)
        rest = page_devices(session, limit=2, offset=2)
    assert (tx1.site, tx1.profile, tx1.active_alarms) == ("site-a", "rs_dvbt", 1)
    assert first.total == rest.total == 3
    assert [d.device_id for d in first.rows + rest.rows] == ["pbx1", "tx1", "ups1"]


def test_an_older_agent_reports_no_profiles(hq: HQ) -> None:
    agent = hq.enroll()
    assert _post(hq, agent, _body(hq, devices={"tx1": "ok"})).is_success
    [device] = hq.get(hq.user_token(), "/api/v1/devices").json()
    assert (device["device_class"], device["profile"]) == (None, None)


def test_the_last_values_are_those_of_the_latest_job_returning_some(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)

    def run(values: dict[str, Any]) -> str:
        body = {"kind": "poll_device", "device_id": "tx1"}
        created = hq.client.post(f"/api/v1/sites/{site}/jobs", json=body, headers=auth(engineer))
        assert created.status_code == 201, created.text
        [job] = poll(hq, agent)["jobs"]
        item = {"name": "poll", "device_id": "tx1", "passed": True, "values": values}
        assert post_result(hq, agent, job["job_id"], result_body(job["job_id"], items=[item]))
        return str(job["job_id"])

    with hq.db.session() as session:
        assert last_values(session, site, "tx1") is None
    first = run({"forward_power_w": 48.5, "op_mode": "on"})
    with hq.db.session() as session:
        found = last_values(session, site, "tx1")
    assert found is not None and str(found.job_id) == first
    assert found.values == {"forward_power_w": 48.5, "op_mode": "on"}
    hq.clock.advance(timedelta(minutes=1))
    run({})  # a job without values leaves the last ones known
    second = run({"forward_power_w": 0.0, "op_mode": "off"})
    with hq.db.session() as session:
        found = last_values(session, site, "tx1")
    assert found is not None and str(found.job_id) == second and found.values["op_mode"] == "off"
