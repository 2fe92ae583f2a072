"""The device pages, in-process on SQLite and PostgreSQL: the device list (class, profile,
state from heartbeats), a device's page (last values, alarms, tickets, backups, jobs), asking
the site's agent for a poll and following the job to its result, the side-by-side config diff;
roles as in the API (a viewer sees no job button, and a forged POST is refused), CSRF, errors
next to their fields and nothing queued."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from sqlalchemy import func, select

from hq_server.core.changes import Change, Topic, feed
from hq_server.core.domain import Role
from hq_server.store.models import JobRecord
from tests.hq.conftest import HQ
from tests.hq.test_backups import backup, upload
from tests.hq.test_heartbeat_health import _body, _post
from tests.hq.test_jobs import poll, post_result, result_body, site_id
from tests.web.console import Console

V1 = "hostname sw1\ninterface Gi1/0/1\n description uplink\n shutdown\n!\nntp server 10.0.0.1\n"
V2 = "hostname sw1\ninterface Gi1/0/1\n description uplink to core\n!\nntp server 10.0.0.1\n"


def _station(hq: HQ) -> tuple[str, int]:
    """An enrolled agent that reported tx1 (profile rs_dvbt) and raised off_air on it."""
    agent = hq.enroll()
    info = {"tx1": {"device_class": "transmitter", "profile": "rs_dvbt"}}
    assert _post(hq, agent, _body(hq, devices={"tx1": "ok"}, device_info=info)).is_success
    event = hq.event(device_id="tx1", title_zh="发射机停播")
    assert hq.post_events(agent, [event]).is_success
    return agent, site_id(hq)


def _jobs(hq: HQ) -> int:
    with hq.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(JobRecord)) or 0)


def test_the_device_list_and_page(console: Console) -> None:
    hq = console.hq
    _agent, site = _station(hq)
    console.as_user("vera", Role.VIEWER)
    listed = console.get("/devices")
    assert listed.status_code == 200
    assert "rs_dvbt" in listed.text and "transmitter" in listed.text
    page = console.get(f"/devices/{site}/tx1")
    assert page.status_code == 200
    assert "Transmitter off air" in page.text  # its alarm, and its ticket
    assert re.search(r"SW-\d{4}-\d{6}", page.text)
    assert 'action="/devices/' not in page.text  # a viewer gets no job button
    zh = console.client.get(f"/devices/{site}/tx1", headers={"Accept-Language": "zh-CN"})
    assert "发射机停播" in zh.text and "设备" in zh.text
    assert console.get(f"/devices/{site}/nope").status_code == 404
    assert console.get(f"/devices/{site + 99}/tx1").status_code == 404


def test_a_viewer_cannot_queue_a_job_even_forging_the_form(console: Console) -> None:
    hq = console.hq
    _agent, site = _station(hq)
    console.as_user("vera", Role.VIEWER)
    csrf = console.get("/devices").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', csrf)
    assert token is not None
    forged = console.client.post(
        f"/devices/{site}/tx1/jobs",
        data={"csrf_token": token[1], "kind": "poll_device"},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert _jobs(hq) == 0


def test_poll_now_and_follow_the_job_to_its_result(console: Console) -> None:
    hq = console.hq
    agent, site = _station(hq)
    console.as_user("erin", Role.ENGINEER)
    page = f"/devices/{site}/tx1"
    no_csrf = console.post_form(
        page, f"/devices/{site}/tx1/jobs", {"kind": "poll_device"}, csrf=False
    )
    assert no_csrf.status_code == 403 and _jobs(hq) == 0
    asked = console.post_form(page, f"/devices/{site}/tx1/jobs", {"kind": "poll_device"})
    assert asked.status_code == 303
    job_path = asked.headers["location"]
    queued = console.get(job_path)
    assert queued.status_code == 200 and 'data-status="queued"' in queued.text
    [job] = poll(hq, agent)["jobs"]
    assert (job["kind"], job["device_id"]) == ("poll_device", "tx1")
    assert 'data-status="dispatched"' in console.get(job_path).text
    values = {"forward_power_w": 48.5, "op_mode": "on"}
    item = {"name": "poll", "device_id": "tx1", "passed": True, "values": values}
    body = result_body(job["job_id"], items=[item], summary="tx1: 2 reading(s)")
    assert post_result(hq, agent, job["job_id"], body).is_success
    done = console.get(job_path).text
    assert 'data-status="done"' in done and "forward_power_w" in done and "48.5" in done
    device = console.get(page).text
    assert 'id="last-values"' in device and "op_mode" in device


def test_bad_job_input_is_shown_next_to_its_field_and_nothing_is_queued(console: Console) -> None:
    hq = console.hq
    _agent, site = _station(hq)
    console.as_user("erin", Role.ENGINEER)
    page = f"/devices/{site}/tx1"
    action = f"/devices/{site}/tx1/jobs"
    empty = console.post_form(page, action, {"kind": "run_check", "item": ""})
    assert empty.status_code == 422
    assert 'id="e-run_check-item"' in empty.text and 'aria-invalid="true"' in empty.text
    bad = console.post_form(page, action, {"kind": "run_check", "item": "no spaces/allowed"})
    assert bad.status_code == 422 and 'id="e-run_check-item"' in bad.text
    unknown = console.post_form(page, action, {"kind": "run_action", "item": "reboot"})
    assert unknown.status_code == 422
    assert _jobs(hq) == 0
    checked = console.post_form(page, action, {"kind": "run_check", "item": "off_air"})
    assert checked.status_code == 303 and _jobs(hq) == 1


def test_the_config_diff_side_by_side(console: Console) -> None:
    hq = console.hq
    agent, site = _station(hq)
    for text in (V1, V2):
        assert upload(hq, agent, backup(text)).status_code == 200
    console.as_user("vera", Role.VIEWER)
    device = console.get(f"/devices/{site}/sw1").text
    assert f"/devices/{site}/sw1/diff?old=1&amp;new=2" in device
    diff = console.get(f"/devices/{site}/sw1/diff", old="1", new="2")
    assert diff.status_code == 200
    rows: list[Any] = re.findall(r'<tr class="d-(\w+)">', diff.text)
    assert "changed" in rows and "removed" in rows
    assert "description uplink to core" in diff.text and " shutdown" in diff.text
    assert console.get(f"/devices/{site}/sw1/diff", old="1", new="9").status_code == 404


async def test_a_jobs_progress_is_announced_to_live_pages(console: Console) -> None:
    """Queued, dispatched and done each reach the live feed the job page listens to."""
    hq = console.hq
    agent, site = _station(hq)
    console.as_user("erin", Role.ENGINEER)
    sub = feed.subscribe()
    try:
        asked = console.post_form(
            f"/devices/{site}/tx1", f"/devices/{site}/tx1/jobs", {"kind": "poll_device"}
        )
        job_id = asked.headers["location"].rsplit("/", 1)[1]
        [job] = poll(hq, agent)["jobs"]
        assert post_result(hq, agent, job_id, result_body(job_id)).is_success
        seen: list[Change] = []
        while len(seen) < 3:
            change = await asyncio.wait_for(sub.queue.get(), timeout=10)
            assert change is not None  # None: the feed closed
            if change.topic is Topic.JOBS and job_id in change.ids:
                seen.append(change)
    finally:
        feed.unsubscribe(sub)
    assert job["job_id"] == job_id
