"""Agents and enrollment tokens can be revoked; a replaced box is re-enrolled and its old agent
retired (issue 11, item 3)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.core.errors import InvalidInput
from hq_server.jobs.queue import NOTIFIER
from hq_server.sites.registry import ensure_site
from hq_server.store.models import Site
from tests.hq.conftest import HQ
from tests.hq.test_backups import CONFIG_V1, backup, upload
from tests.hq.test_jobs import auth, get_job, poll, queued, result_body, site_id, wait_for


def _heartbeat(hq: HQ, token: str, **fields: Any) -> Any:
    body = {
        "agent_version": "0.1.0",
        "sent_at": hq.clock.now().isoformat(),
        "outbox_depth": 0,
        "dropped_events": 0,
        "last_seq": 0,
        "devices": {"tx1": "ok"},
        **fields,
    }
    return hq.post(token, "/api/v1/heartbeat", body)


def _agents(hq: HQ, admin: str, **params: Any) -> list[dict[str, Any]]:
    response = hq.get(admin, "/api/v1/agents", **params)
    assert response.status_code == 200, response.text
    agents: list[dict[str, Any]] = response.json()
    return agents


def _agent_id(hq: HQ, admin: str, hostname: str) -> int:
    return next(a["id"] for a in _agents(hq, admin) if a["name"] == hostname)


def test_a_revoked_agent_is_refused_everywhere_at_once(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    engineer = hq.user_token(Role.ENGINEER)
    token = hq.enroll(hostname="stolen-box")
    site = site_id(hq)
    held = queued(hq, engineer, site, kind="poll_device", device_id="tx1")
    assert [j["job_id"] for j in poll(hq, token)["jobs"]] == [held["id"]]
    assert _heartbeat(hq, token).status_code == 200
    agent_id = _agent_id(hq, admin, "stolen-box")

    response = hq.post(admin, f"/api/v1/agents/{agent_id}/revoke")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["revoked"], body["revoked_by"]) == ("revoked", True, "root")

    assert hq.post_events(token, [hq.event()]).status_code == 401
    assert _heartbeat(hq, token).status_code == 401
    jobs = hq.client.get("/api/v1/jobs/next", params={"wait": 0}, headers=auth(token))
    assert jobs.status_code == 401
    result = hq.client.post(
        f"/api/v1/jobs/{held['id']}/result", json=result_body(held["id"]), headers=auth(token)
    )
    assert result.status_code == 401
    assert upload(hq, token, backup(CONFIG_V1)).status_code == 401
    # The job it held is cancelled: it can never report it.
    assert get_job(hq, engineer, held["id"])["status"] == "cancelled"
    # Idempotent; listed as revoked, not among the active ones.
    again = hq.post(admin, f"/api/v1/agents/{agent_id}/revoke").json()
    assert again["revoked_at"] == body["revoked_at"]
    assert _agents(hq, admin, active=True) == []
    assert [a["state"] for a in _agents(hq, admin, active=False)] == ["revoked"]
    audit = hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/agents").json()
    assert audit[-1]["summary"].startswith(f"revoke agent {agent_id} (stolen-box)")


def test_jobs_queued_for_a_revoked_agent_are_not_handed_out(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    engineer = hq.user_token(Role.ENGINEER)
    stolen = hq.enroll(hostname="box1")
    other = hq.enroll(hostname="box2")  # a second agent of the same site
    site = site_id(hq)
    box1 = _agent_id(hq, admin, "box1")
    targeted = queued(hq, engineer, site, agent_id=box1)
    assert hq.post(admin, f"/api/v1/agents/{box1}/revoke").status_code == 200
    assert get_job(hq, engineer, targeted["id"])["status"] == "cancelled"
    assert poll(hq, other)["jobs"] == []
    assert hq.client.get("/api/v1/jobs/next", headers=auth(stolen)).status_code == 401
    # New jobs cannot name it either.
    refused = hq.post(
        engineer,
        f"/api/v1/sites/{site}/jobs",
        {"kind": "poll_device", "device_id": "tx1", "agent_id": box1},
    )
    assert refused.status_code == 422


def test_an_agent_revoked_during_its_long_poll_gets_no_job(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    engineer = hq.user_token(Role.ENGINEER)
    token = hq.enroll(hostname="box1")
    site = site_id(hq)
    agent_id = _agent_id(hq, admin, "box1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(
            hq.client.get, "/api/v1/jobs/next", params={"wait": 20}, headers=auth(token)
        )
        wait_for(lambda: NOTIFIER.waiting(site) == 1)  # authenticated, now waiting
        assert hq.post(admin, f"/api/v1/agents/{agent_id}/revoke").status_code == 200
        job = queued(hq, engineer, site)  # wakes the poll
        answer = waiting.result(timeout=15)
    assert answer.status_code == 401, answer.text
    assert get_job(hq, engineer, job["id"])["status"] == "queued"


def test_reenrollment_retires_the_old_agent_and_keeps_the_sites_alarms(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    engineer = hq.user_token(Role.ENGINEER)
    old = hq.enroll(hostname="old-box")
    assert hq.post_events(old, [hq.event()]).status_code == 200
    site = site_id(hq)
    old_id = _agent_id(hq, admin, "old-box")
    meant_for_old = queued(hq, engineer, site, agent_id=old_id)

    # A plain new token is refused while the site has an active agent.
    plain = hq.post(admin, f"/api/v1/sites/{site}/enrollment-tokens", {})
    assert plain.status_code == 409
    assert "reenroll" in plain.json()["detail"]
    issued = hq.post(admin, f"/api/v1/sites/{site}/enrollment-tokens", {"replace_agent": True})
    assert issued.status_code == 201, issued.text
    assert issued.json()["replaces_agent_id"] == old_id
    # Until it is used, the old agent works.
    assert _heartbeat(hq, old).status_code == 200

    enrolled = hq.client.post(
        "/api/v1/enroll",
        json={
            "enrollment_token": issued.json()["token"],
            "hostname": "new-box",
            "agent_version": "0.2.0",
        },
    )
    assert enrolled.status_code == 200, enrolled.text
    new = enrolled.json()["agent_token"]
    new_id = enrolled.json()["agent_id"]

    assert hq.post_events(old, [hq.event(agent="old")]).status_code == 401
    assert _heartbeat(hq, old).status_code == 401
    assert _heartbeat(hq, new).status_code == 200
    agents = {a["id"]: a for a in _agents(hq, admin)}
    assert (agents[old_id]["state"], agents[old_id]["replaced_by"]) == ("replaced", new_id)
    assert agents[old_id]["revoked_by"] == f"replaced by agent {new_id}"
    assert agents[new_id]["state"] == "active"
    # The site keeps its alarm and ticket; the job meant for the old box goes to the new one.
    assert [a["device_id"] for a in hq.alarms(engineer, active=True)] == ["tx1"]
    assert len(hq.tickets(engineer, open=True)) == 1
    assert [j["job_id"] for j in poll(hq, new)["jobs"]] == [meant_for_old["id"]]
    sites = hq.get(engineer, "/api/v1/sites").json()
    assert [(a["id"], a["state"]) for a in sites[0]["agents"]] == [
        (old_id, "replaced"),
        (new_id, "active"),
    ]


def test_enrollment_tokens_are_listed_and_revoked(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    token = hq.enrollment_token("site-a")
    listed = hq.get(admin, "/api/v1/enrollment-tokens").json()
    assert [(t["site"], t["state"]) for t in listed] == [("site-a", "pending")]
    assert token not in str(listed)
    token_id = listed[0]["id"]
    revoked = hq.post(admin, f"/api/v1/enrollment-tokens/{token_id}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["state"], revoked.json()["revoked_by"]) == ("revoked", "root")
    enroll = {"enrollment_token": token, "hostname": "b", "agent_version": "1"}
    refused = hq.client.post("/api/v1/enroll", json=enroll)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert hq.get(admin, "/api/v1/enrollment-tokens").json() == []
    everything = hq.get(admin, "/api/v1/enrollment-tokens", all=True).json()
    assert [t["state"] for t in everything] == ["revoked"]

    # A used token cannot be revoked (its agent can); an expired one is not pending.
    used = hq.enrollment_token("site-b")
    assert hq.client.post("/api/v1/enroll", json={**enroll, "enrollment_token": used}).is_success
    used_id = hq.get(admin, "/api/v1/enrollment-tokens", all=True).json()[-1]["id"]
    assert hq.post(admin, f"/api/v1/enrollment-tokens/{used_id}/revoke").status_code == 409
    hq.enrollment_token("site-c", ttl=timedelta(minutes=5))
    hq.clock.advance(timedelta(minutes=6))
    assert hq.get(admin, "/api/v1/enrollment-tokens").json() == []
    assert hq.post(admin, "/api/v1/enrollment-tokens/999/revoke").status_code == 404


def test_only_admins_manage_agents_and_enrollment(hq: HQ) -> None:
    hq.enroll()
    for role in (Role.VIEWER, Role.ENGINEER):
        token = hq.user_token(role)
        assert hq.get(token, "/api/v1/agents").status_code == 403
        assert hq.post(token, "/api/v1/agents/1/revoke").status_code == 403
        assert hq.get(token, "/api/v1/enrollment-tokens").status_code == 403
        assert hq.post(token, "/api/v1/enrollment-tokens/1/revoke").status_code == 403
        assert hq.post(token, "/api/v1/sites", {"name": "x"}).status_code == 403
    admin = hq.user_token(Role.ADMIN)
    assert hq.post(admin, "/api/v1/agents/999/revoke").status_code == 404
    assert hq.get(admin, "/api/v1/agents/999").status_code == 404


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tx\x00north", "U+0000"),  # PostgreSQL cannot store it, SQLite would: refused on both
        ("", "must not be empty"),
        ("  \u3000 ", "must not be empty"),  # ideographic space too
        ("tx\nnorth", "U+000A"),
        ("x" * 101, "at most 100 characters"),
    ],
)
def test_site_names_are_checked_the_same_on_both_databases(hq: HQ, name: str, message: str) -> None:
    admin = hq.user_token(Role.ADMIN)
    refused = hq.post(admin, "/api/v1/sites", {"name": name})
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "name"] and message in error["msg"]
    with hq.db.session() as session:
        assert session.scalars(select(Site)).all() == []
    with pytest.raises(InvalidInput, match=re.escape(message)), hq.db.writer() as session:
        ensure_site(session, name, hq.clock.now())


def test_sites_are_created_by_admins_and_get_enrollment_tokens(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    created = hq.post(
        admin, "/api/v1/sites", {"name": "  北京发射台 No.2 ", "timezone": "Asia/Shanghai"}
    )
    assert created.status_code == 201, created.text
    site = created.json()
    assert (site["name"], site["timezone"], site["agents"]) == (
        "北京发射台 No.2",
        "Asia/Shanghai",
        [],
    )
    assert hq.post(admin, "/api/v1/sites", {"name": "北京发射台 No.2"}).status_code == 409
    bad_zone = hq.post(admin, "/api/v1/sites", {"name": "x", "timezone": "Mars/Olympus"})
    assert bad_zone.status_code == 422
    issued = hq.post(admin, f"/api/v1/sites/{site['id']}/enrollment-tokens", {"ttl_hours": 2})
    assert issued.status_code == 201, issued.text
    enroll = {"enrollment_token": issued.json()["token"], "hostname": "b", "agent_version": "1"}
    assert hq.client.post("/api/v1/enroll", json=enroll).json()["site_name"] == "北京发射台 No.2"
    # Nothing to replace at a site without agents; a second agent only when asked for.
    assert hq.post(admin, "/api/v1/sites/999/enrollment-tokens", {}).status_code == 404
    url = f"/api/v1/sites/{site['id']}/enrollment-tokens"
    assert hq.post(admin, url, {"additional": True}).status_code == 201
