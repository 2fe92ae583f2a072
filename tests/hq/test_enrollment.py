"""Enrollment: a one-time, expiring token traded for an agent identity."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.core.security import hash_token
from hq_server.store.models import Agent, EnrollmentToken
from tests.hq.conftest import HQ


def _enroll(hq: HQ, token: str, hostname: str = "box1") -> tuple[int, dict[str, object]]:
    response = hq.client.post(
        "/api/v1/enroll",
        json={"enrollment_token": token, "hostname": hostname, "agent_version": "0.1.0"},
    )
    body: dict[str, object] = response.json()
    return response.status_code, body


def test_enrollment_gives_an_agent_token_for_the_site(hq: HQ) -> None:
    token = hq.enrollment_token("tx-north")
    status, body = _enroll(hq, token)
    assert status == 200
    assert body["site_name"] == "tx-north"
    agent_token = body["agent_token"]
    assert isinstance(agent_token, str) and agent_token.startswith("swa_")
    with hq.db.session() as session:
        agent = session.get_one(Agent, body["agent_id"])
        assert agent.name == "box1"
        assert agent.site.name == "tx-north"
        assert agent.token_hash == hash_token(agent_token)
        row = session.scalars(select(EnrollmentToken)).one()
        assert row.used_at == hq.clock.now()
        assert row.agent_id == agent.id
    sites = hq.get(hq.user_token(), "/api/v1/sites").json()
    assert [a["name"] for a in sites[0]["agents"]] == ["box1"]


def test_enrollment_token_works_once(hq: HQ) -> None:
    token = hq.enrollment_token()
    assert _enroll(hq, token)[0] == 200
    status, body = _enroll(hq, token, hostname="box2")
    assert status == 409
    assert "already used" in str(body["detail"])
    with hq.db.session() as session:
        assert len(session.scalars(select(Agent)).all()) == 1


def test_expired_enrollment_token_is_refused(hq: HQ) -> None:
    token = hq.enrollment_token(ttl=timedelta(hours=24))
    hq.clock.advance(timedelta(hours=24, seconds=1))
    status, body = _enroll(hq, token)
    assert status == 401
    assert "expired" in str(body["detail"])


def test_unknown_enrollment_token_is_refused(hq: HQ) -> None:
    status, body = _enroll(hq, "swe_" + "x" * 43)
    assert status == 401
    assert "unknown" in str(body["detail"])
    status, body = _enroll(hq, "swu_" + "x" * 43)
    assert status == 401


def test_enrollment_body_is_validated(hq: HQ) -> None:
    response = hq.client.post("/api/v1/enroll", json={"enrollment_token": "short"})
    assert response.status_code == 422
    locations = {tuple(e["loc"]) for e in response.json()["detail"]}
    assert ("body", "hostname") in locations


def test_tokens_never_reach_the_logs(hq: HQ, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    user = hq.user_token(Role.ADMIN)
    enrollment = hq.enrollment_token()
    status, body = _enroll(hq, enrollment)
    assert status == 200
    assert _enroll(hq, enrollment)[0] == 409
    agent = str(body["agent_token"])
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    assert hq.get(user, "/api/v1/tickets").status_code == 200
    assert "enrolled agent" in caplog.text
    for token in (user, enrollment, agent):
        assert token not in caplog.text
        assert token[4:] not in caplog.text
