"""Jobs through the real app: create, long poll, result, cancel, expiry, roles, reports."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from hq_server.app import create_app
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.jobs.queue import EXPIRY_GRACE, QUEUE_TTL, AgentRef, expire_jobs, take_work
from hq_server.store.models import Agent, Site
from tests.hq.conftest import HQ, START, TestClient


def site_id(hq: HQ, name: str = "site-a") -> int:
    """The id of a site (it exists once an agent enrolled there)."""
    with hq.db.session() as session:
        return session.scalars(select(Site.id).where(Site.name == name)).one()


def auth(token: str) -> dict[str, str]:
    """The bearer header for a token."""
    return {"Authorization": f"Bearer {token}"}


def create_job(hq: HQ, token: str, site: int, **body: Any) -> httpx.Response:
    """POST a job request."""
    if body.setdefault("kind", "run_checklist") == "run_checklist":
        body.setdefault("item", "daily_inspection")
    response: httpx.Response = hq.client.post(
        f"/api/v1/sites/{site}/jobs", json=body, headers=auth(token)
    )
    return response


def queued(hq: HQ, token: str, site: int, **body: Any) -> dict[str, Any]:
    """Create a job, asserting success; its JSON."""
    response = create_job(hq, token, site, **body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def poll(hq: HQ, agent: str, wait: int = 0, **params: Any) -> dict[str, Any]:
    """One long poll as an agent, asserting success."""
    response = hq.client.get(
        "/api/v1/jobs/next", params={"wait": wait, **params}, headers=auth(agent)
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def result_body(
    job_id: str, status: str = "ok", items: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A JobResult as JSON."""
    now = datetime(2026, 3, 2, 8, 0).isoformat() + "Z"
    return {
        "job_id": job_id,
        "status": status,
        "started_at": now,
        "finished_at": now,
        "summary": extra.pop("summary", ""),
        "items": items or [],
        **extra,
    }


def post_result(hq: HQ, agent: str, job_id: str, body: dict[str, Any]) -> httpx.Response:
    """POST a job result as an agent."""
    response: httpx.Response = hq.client.post(
        f"/api/v1/jobs/{job_id}/result", json=body, headers=auth(agent)
    )
    return response


def get_job(hq: HQ, token: str, job_id: str) -> dict[str, Any]:
    """GET one job, asserting success."""
    response = hq.get(token, f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until condition() holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def test_create_poll_result_round_trip(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER, name="eve")
    viewer = hq.user_token(Role.VIEWER)

    job = queued(hq, engineer, site, params={"depth": 2})
    assert job["status"] == "queued"
    assert job["requested_by"] == "eve"

    answer = poll(hq, agent)
    assert [j["job_id"] for j in answer["jobs"]] == [job["id"]]
    given = answer["jobs"][0]
    assert given["kind"] == "run_checklist"
    assert given["item"] == "daily_inspection"
    assert given["params"] == {"depth": 2}
    assert given["requested_by"] == "eve"
    assert answer["cancel"] == []
    assert get_job(hq, viewer, job["id"])["status"] == "dispatched"
    assert poll(hq, agent)["jobs"] == []  # handed out once

    items = [
        {"name": "fans", "device_id": "tx1", "category": "hardware", "passed": True},
        {"name": "ntp", "category": "software", "passed": False, "detail": "skew 9 s"},
    ]
    response = post_result(hq, agent, job["id"], result_body(job["id"], "failed", items))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "job_id": job["id"],
        "status": "done",
        "result_status": "failed",
        "duplicate": False,
    }
    stored = get_job(hq, viewer, job["id"])
    assert stored["status"] == "done"
    assert stored["result_status"] == "failed"
    assert stored["result"]["failed_items"] == 1
    assert [(i["name"], i["passed"]) for i in stored["items"]] == [("fans", True), ("ntp", False)]

    # Idempotent: a repeat (even a different one) gets the first result back.
    again = post_result(hq, agent, job["id"], result_body(job["id"], "ok"))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["result_status"] == "failed"
    assert len(get_job(hq, viewer, job["id"])["items"]) == 2


def test_long_poll_answers_at_once_when_a_job_is_queued(hq: HQ) -> None:
    agent = hq.enroll()
    job = queued(hq, hq.user_token(Role.ENGINEER), site_id(hq))
    started = time.monotonic()
    answer = poll(hq, agent, wait=10)
    assert time.monotonic() - started < 3
    assert [j["job_id"] for j in answer["jobs"]] == [job["id"]]


def test_long_poll_waits_about_wait_seconds_when_idle(hq: HQ) -> None:
    agent = hq.enroll()
    started = time.monotonic()
    answer = poll(hq, agent, wait=1)
    elapsed = time.monotonic() - started
    assert answer == {"jobs": [], "cancel": []}
    assert 0.9 <= elapsed < 5


def test_long_poll_wakes_when_a_job_is_queued_meanwhile(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        waiting = pool.submit(poll, hq, agent, 20)
        time.sleep(0.3)  # let the poll start waiting (a late start only makes it return at once)
        job = queued(hq, engineer, site)
        answer = waiting.result(timeout=15)
    assert time.monotonic() - started < 10
    assert [j["job_id"] for j in answer["jobs"]] == [job["id"]]


def test_jobs_go_to_their_site_and_target_agent(hq: HQ) -> None:
    a1 = hq.enroll("site-a", "box1")
    a2 = hq.enroll("site-a", "box2")
    b1 = hq.enroll("site-b", "box3")
    engineer = hq.user_token(Role.ENGINEER)
    with hq.db.session() as session:
        rows = session.execute(select(Site.name, Site.id)).all()
    sites = dict(rows)
    box2 = hq.get(engineer, "/api/v1/sites").json()[0]["agents"][1]["id"]
    targeted = queued(hq, engineer, sites["site-a"], agent_id=box2)
    assert poll(hq, b1)["jobs"] == []
    assert poll(hq, a1)["jobs"] == []
    assert [j["job_id"] for j in poll(hq, a2)["jobs"]] == [targeted["id"]]
    # An agent of another site is not a target.
    other = hq.get(engineer, "/api/v1/sites").json()[1]["agents"][0]["id"]
    assert create_job(hq, engineer, sites["site-a"], agent_id=other).status_code == 422


def test_two_agents_polling_concurrently_never_get_the_same_job(hq: HQ) -> None:
    agents = [hq.enroll("site-a", f"box{i}") for i in range(2)]
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    ids = {queued(hq, engineer, site)["id"] for _ in range(30)}
    pollers = [agents[i % 2] for i in range(8)]
    barrier = threading.Barrier(len(pollers))

    def drain(agent: str) -> list[str]:
        barrier.wait(timeout=30)
        got: list[str] = []
        while True:
            answer = poll(hq, agent, limit=2)
            if not answer["jobs"]:
                return got
            got += [j["job_id"] for j in answer["jobs"]]

    with ThreadPoolExecutor(max_workers=len(pollers)) as pool:
        results = list(pool.map(drain, pollers))
    handed = [job for got in results for job in got]
    assert len(handed) == len(set(handed)), "a job was handed out twice"
    assert set(handed) == ids


def test_cancel_a_queued_job(hq: HQ) -> None:
    agent = hq.enroll()
    engineer = hq.user_token(Role.ENGINEER)
    job = queued(hq, engineer, site_id(hq))
    response = hq.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(engineer))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert poll(hq, agent) == {"jobs": [], "cancel": []}
    again = hq.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=auth(engineer))
    assert again.status_code == 409


def test_cancel_a_dispatched_job_tells_its_agent(hq: HQ) -> None:
    agent = hq.enroll()
    engineer = hq.user_token(Role.ENGINEER)
    job = queued(hq, engineer, site_id(hq))
    assert poll(hq, agent)["jobs"]
    cancel = f"/api/v1/jobs/{job['id']}/cancel"
    response = hq.client.post(cancel, headers=auth(engineer))
    assert response.json()["status"] == "cancel_requested"
    assert hq.client.post(cancel, headers=auth(engineer)).json()["status"] == "cancel_requested"

    started = time.monotonic()
    answer = poll(hq, agent, wait=10)  # a new cancel answers at once
    assert time.monotonic() - started < 3
    assert answer == {"jobs": [], "cancel": [job["id"]]}
    # Until the agent reports, every answer repeats the cancel (but does not return early).
    assert poll(hq, agent)["cancel"] == [job["id"]]

    done = post_result(hq, agent, job["id"], result_body(job["id"], "cancelled"))
    assert done.json()["status"] == "cancelled"
    assert poll(hq, agent) == {"jobs": [], "cancel": []}
    assert hq.client.post(cancel, headers=auth(engineer)).status_code == 409


def test_refused_job_is_stored_with_its_reason(hq: HQ) -> None:
    agent = hq.enroll()
    viewer = hq.user_token()
    job = queued(hq, hq.user_token(Role.ENGINEER), site_id(hq), item="not_in_catalogue")
    poll(hq, agent)
    body = result_body(job["id"], "refused", summary="not_in_catalogue: no such checklist")
    response = post_result(hq, agent, job["id"], body)
    assert response.status_code == 200
    stored = get_job(hq, viewer, job["id"])
    assert (stored["status"], stored["result_status"]) == ("done", "refused")
    assert stored["result"]["summary"] == "not_in_catalogue: no such checklist"
    listed = hq.get(viewer, "/api/v1/jobs", status="done", kind="run_checklist").json()
    assert [j["id"] for j in listed] == [job["id"]]


def test_only_the_agent_that_got_the_job_may_report_it(hq: HQ) -> None:
    a1 = hq.enroll("site-a", "box1")
    a2 = hq.enroll("site-a", "box2")
    b1 = hq.enroll("site-b", "box3")
    engineer = hq.user_token(Role.ENGINEER)
    job = queued(hq, engineer, site_id(hq))
    body = result_body(job["id"])
    assert post_result(hq, a1, job["id"], body).status_code == 403  # not dispatched yet
    assert poll(hq, a1)["jobs"]
    assert post_result(hq, a2, job["id"], body).status_code == 403
    assert post_result(hq, b1, job["id"], body).status_code == 404
    assert post_result(hq, a1, str(uuid.uuid4()), body).status_code == 422  # ids differ
    assert post_result(hq, engineer, job["id"], body).status_code == 403  # a user token
    bad_item = result_body(job["id"], items=[{"name": "x", "device_id": "a b", "passed": True}])
    assert post_result(hq, a1, job["id"], bad_item).status_code == 422
    assert post_result(hq, a1, job["id"], body).status_code == 200


def _approval(hq: HQ, **changes: Any) -> dict[str, Any]:
    now = hq.clock.now()
    approval = {
        "reference": "CHG-2026-0042",
        "approved_by": "customer: Mr Li; HQ: service manager",
        "window_start": (now - timedelta(minutes=5)).isoformat(),
        "window_end": (now + timedelta(hours=2)).isoformat(),
    }
    approval.update(changes)
    return approval


def test_roles_and_approvals(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    viewer = hq.user_token(Role.VIEWER)
    engineer = hq.user_token(Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    reboot = {"kind": "run_action", "item": "reboot", "device_id": "sw1"}

    assert create_job(hq, viewer, site).status_code == 403
    assert create_job(hq, agent, site).status_code == 403
    assert (
        hq.client.post(f"/api/v1/sites/{site}/jobs", json={"kind": "poll_device"}).status_code
        == 401
    )
    assert create_job(hq, engineer, site, **reboot).status_code == 422  # needs an approval
    assert create_job(hq, engineer, site, **reboot, approval=_approval(hq)).status_code == 403
    assert create_job(hq, admin, site, **reboot).status_code == 422

    job = queued(hq, admin, site, **reboot, approval=_approval(hq))
    assert job["approval"]["reference"] == "CHG-2026-0042"
    given = poll(hq, agent)["jobs"][0]
    assert given["approval"]["reference"] == "CHG-2026-0042"
    assert given["device_id"] == "sw1"

    now = hq.clock.now()
    not_sane = [
        _approval(hq, window_end=(now - timedelta(minutes=1)).isoformat()),  # over
        _approval(hq, window_end=(now - timedelta(minutes=10)).isoformat()),  # end < start
        _approval(hq, window_end=(now + timedelta(days=40)).isoformat()),  # too long
        _approval(hq, window_start="2026-03-02T08:00:00"),  # no timezone
    ]
    for approval in not_sane:
        response = create_job(hq, admin, site, **reboot, approval=approval)
        assert response.status_code == 422, approval
    # An approval belongs to actions only.
    assert create_job(hq, admin, site, approval=_approval(hq)).status_code == 422


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"kind": "backup_config"}, 422),  # needs a device
        ({"kind": "poll_device", "device_id": "tx1", "item": "x"}, 422),  # takes no item
        ({"kind": "run_check", "item": "vswr_high"}, 422),  # needs a device
        ({"kind": "run_checklist", "item": ""}, 422),
        ({"kind": "run_checklist", "item": "a b"}, 422),
        ({"kind": "nope", "item": "x"}, 422),
        ({"kind": "backup_config", "device_id": "tx 1"}, 422),
        ({"kind": "run_checklist", "item": "x", "timeout_s": 0}, 422),
        ({"kind": "run_checklist", "item": "x", "params": {"a": "\u0000"}}, 422),
        ({"kind": "run_checklist", "item": "x", "agent_id": 2**40}, 422),
        ({"kind": "backup_config", "device_id": "tx1"}, 201),
        ({"kind": "run_check", "item": "vswr_high", "device_id": "tx1", "timeout_s": 60}, 201),
    ],
)
def test_job_shapes(hq: HQ, body: dict[str, Any], status: int) -> None:
    hq.enroll()
    response = create_job(hq, hq.user_token(Role.ENGINEER), site_id(hq), **body)
    assert response.status_code == status, response.text


def test_unknown_site_and_job(hq: HQ) -> None:
    engineer = hq.user_token(Role.ENGINEER)
    assert create_job(hq, engineer, 999).status_code == 404
    assert create_job(hq, engineer, 2**40).status_code == 422
    assert hq.get(engineer, f"/api/v1/jobs/{uuid.uuid4()}").status_code == 404
    assert hq.get(engineer, "/api/v1/jobs/not-a-uuid").status_code == 422
    cancel = hq.client.post(f"/api/v1/jobs/{uuid.uuid4()}/cancel", headers=auth(engineer))
    assert cancel.status_code == 404


def test_dispatched_job_without_result_expires_and_a_late_result_is_kept(hq: HQ) -> None:
    agent = hq.enroll()
    viewer = hq.user_token()
    engineer = hq.user_token(Role.ENGINEER)
    site = site_id(hq)
    slow = queued(hq, engineer, site, timeout_s=60)
    cancelled = queued(hq, engineer, site, timeout_s=60)
    assert len(poll(hq, agent)["jobs"]) == 2
    hq.client.post(f"/api/v1/jobs/{cancelled['id']}/cancel", headers=auth(engineer))

    with hq.db.writer() as session, session.begin():
        hq.clock.advance(timedelta(seconds=60) + EXPIRY_GRACE - timedelta(seconds=1))
        assert expire_jobs(session, hq.clock.now()) == 0
    with hq.db.writer() as session, session.begin():
        hq.clock.advance(timedelta(seconds=2))
        assert expire_jobs(session, hq.clock.now()) == 2
    assert get_job(hq, viewer, slow["id"])["status"] == "expired"
    assert get_job(hq, viewer, cancelled["id"])["status"] == "cancelled"

    late = post_result(hq, agent, slow["id"], result_body(slow["id"], "ok"))
    assert late.status_code == 200
    stored = get_job(hq, viewer, slow["id"])
    assert (stored["status"], stored["result_status"]) == ("done", "ok")
    assert stored["result"]["late"] is True


def test_job_no_agent_picks_up_expires_after_the_queue_ttl(hq: HQ) -> None:
    hq.enroll()
    job = queued(hq, hq.user_token(Role.ENGINEER), site_id(hq))
    hq.clock.advance(QUEUE_TTL + timedelta(seconds=1))
    with hq.db.writer() as session, session.begin():
        assert expire_jobs(session, hq.clock.now()) == 1
    assert get_job(hq, hq.user_token(), job["id"])["status"] == "expired"


def _run_checklist(
    hq: HQ, agent: str, engineer: str, site: int, items: list[dict[str, Any]]
) -> None:
    job = queued(hq, engineer, site)
    assert poll(hq, agent)["jobs"]
    response = post_result(hq, agent, job["id"], result_body(job["id"], "failed", items))
    assert response.status_code == 200, response.text


def test_inspection_report_groups_by_device_and_category(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    viewer = hq.user_token()
    hw, sw, env = "hardware", "software", "environment"
    _run_checklist(
        hq,
        agent,
        engineer,
        site,
        [
            {"name": "fans", "device_id": "tx1", "category": hw, "passed": True},
            {"name": "psu", "device_id": "tx1", "category": hw, "passed": False, "detail": "B"},
            {"name": "firmware", "device_id": "tx1", "category": sw, "passed": True},
            {"name": "room temp", "category": env, "passed": False, "detail": "31 C"},
        ],
    )
    hq.clock.advance(timedelta(days=1))
    _run_checklist(
        hq,
        agent,
        engineer,
        site,
        [{"name": "fans", "device_id": "tx1", "category": hw, "passed": True}],
    )
    # Not a checklist: not in the report.
    check = queued(hq, engineer, site, kind="run_check", item="vswr_high", device_id="tx1")
    poll(hq, agent)
    items = [{"name": "vswr", "device_id": "tx1", "category": hw, "passed": False}]
    post_result(hq, agent, check["id"], result_body(check["id"], "failed", items))

    hq.clock.advance(timedelta(seconds=1))  # `to` (default: now) is exclusive
    path = f"/api/v1/sites/{site}/reports/inspections"
    report = hq.get(viewer, path).json()
    assert datetime.fromisoformat(report["from"]) == hq.clock.now() - timedelta(days=7)
    assert report["checklist_runs"] == 2
    assert report["runs_by_status"] == {"failed": 2}
    assert (report["passed"], report["failed"]) == (3, 2)
    devices = {d["device_id"]: d for d in report["devices"]}
    assert set(devices) == {"tx1", "(site)"}
    tx1 = {c["category"]: c for c in devices["tx1"]["categories"]}
    assert list(tx1) == ["software", "hardware"]
    assert (tx1["hardware"]["passed"], tx1["hardware"]["failed"]) == (2, 1)
    assert [f["name"] for f in tx1["hardware"]["failed_items"]] == ["psu"]
    assert devices["(site)"]["categories"][0]["failed_items"][0]["detail"] == "31 C"

    # Only the second run falls in a window starting half a day after the first.
    start = (hq.clock.now() - timedelta(hours=12)).isoformat()
    later = hq.get(viewer, path, **{"from": start}).json()
    assert (later["checklist_runs"], later["passed"], later["failed"]) == (1, 1, 0)

    only_tx1 = hq.get(viewer, path, device_id="tx1").json()
    assert [d["device_id"] for d in only_tx1["devices"]] == ["tx1"]
    assert (only_tx1["passed"], only_tx1["failed"]) == (3, 1)

    markdown = hq.get(viewer, path, format="md")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "## tx1" in markdown.text
    assert "| hardware | 2 | 1 |" in markdown.text
    assert "psu: B" in markdown.text

    assert hq.get(viewer, path, **{"from": start, "to": start}).status_code == 422
    assert hq.get(viewer, path, to="0001-01-02T00:00:00Z").status_code == 422
    assert hq.get(viewer, "/api/v1/sites/999/reports/inspections").status_code == 404


def test_a_claim_skips_jobs_locked_by_a_concurrent_claim(hq: HQ) -> None:
    """PostgreSQL: a second claim neither waits for nor takes rows another claim holds."""
    if hq.db.dialect != "postgresql":
        pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE): no concurrent claim exists")
    hq.enroll("site-a", "box1")
    hq.enroll("site-a", "box2")
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    ids = {queued(hq, engineer, site)["id"] for _ in range(4)}
    with hq.db.session() as session:
        agents = list(session.scalars(select(Agent.id).order_by(Agent.id)))
    first, second = (AgentRef(agent_id=a, site_id=site) for a in agents)
    with hq.db.writer() as holder, holder.begin():
        taken, _ = take_work(holder, first, hq.clock.now(), limit=2)
        with hq.db.writer() as other, other.begin():
            # Waiting for the holder's rows would fail here instead of hanging.
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            rest, _ = take_work(other, second, hq.clock.now(), limit=10)
    mine = {str(j.job_id) for j in taken.jobs}
    theirs = {str(j.job_id) for j in rest.jobs}
    assert len(mine) == 2 and len(theirs) == 2
    assert mine.isdisjoint(theirs) and mine | theirs == ids


def test_hq_caps_the_long_poll(migrated_url: str, tmp_path: Path) -> None:
    settings = Settings(
        db_url=migrated_url,
        data_dir=tmp_path,
        scheduler_enabled=False,
        job_schedules_enabled=False,
        job_poll_max_wait=0,
    )
    with TestClient(create_app(settings, clock=ManualClock(START))) as client:
        hq = HQ(client=client, db=client.app.state.db, clock=client.app.state.clock)
        agent = hq.enroll()
        started = time.monotonic()
        assert poll(hq, agent, wait=30) == {"jobs": [], "cancel": []}
        assert time.monotonic() - started < 3
