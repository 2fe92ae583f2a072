"""Bearer authentication and roles: who may call what."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from hq_server.app import create_app
from hq_server.core.domain import Role
from hq_server.core.errors import SchemaOutOfDate
from hq_server.core.security import TokenKind, hash_token, new_token, token_kind
from hq_server.core.settings import Settings
from hq_server.store.models import ApiToken
from tests.hq.conftest import HQ, TestClient

USER_ENDPOINTS = ["/api/v1/alarms", "/api/v1/tickets", "/api/v1/tickets/1", "/api/v1/sites"]


def test_healthz_needs_no_token(hq: HQ) -> None:
    response = hq.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "db": "ok"}


def test_openapi_needs_no_token_and_lists_the_endpoints(hq: HQ) -> None:
    response = hq.client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/healthz",
        "/api/v1/enroll",
        "/api/v1/events",
        "/api/v1/heartbeat",
        *USER_ENDPOINTS[:2],
    ]:
        assert path in paths
    assert "/api/v1/tickets/{ticket_id}" in paths
    assert hq.client.get("/docs").status_code == 200


@pytest.mark.parametrize("path", USER_ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer swu_not-a-real-token", "Bearer garbage", "Basic dXNlcjpwYXNz"],
)
def test_user_endpoints_refuse_missing_or_bad_tokens(
    hq: HQ, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = hq.client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"]


def test_agent_endpoints_refuse_missing_or_bad_tokens(hq: HQ) -> None:
    for token in (None, "swa_unknown-token-value"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = hq.client.post("/api/v1/events", json={"events": []}, headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_revoked_user_token_is_refused(hq: HQ) -> None:
    token = hq.user_token()
    assert hq.get(token, "/api/v1/sites").status_code == 200
    with hq.db.writer() as session, session.begin():
        session.execute(update(ApiToken).values(revoked_at=hq.clock.now()))
    assert hq.get(token, "/api/v1/sites").status_code == 401


def test_enrollment_token_is_not_a_bearer_token(hq: HQ) -> None:
    token = hq.enrollment_token()
    response = hq.get(token, "/api/v1/sites")
    assert response.status_code == 401
    assert "enroll" in response.json()["detail"]


def test_agent_token_on_user_endpoint_is_forbidden(hq: HQ) -> None:
    agent = hq.enroll()
    for path in USER_ENDPOINTS:
        response = hq.get(agent, path)
        assert response.status_code == 403, path
        assert "agent" in response.json()["detail"]


@pytest.mark.parametrize("role", list(Role))
def test_user_token_on_agent_endpoints_is_forbidden(hq: HQ, role: Role) -> None:
    token = hq.user_token(role)
    headers = {"Authorization": f"Bearer {token}"}
    events = hq.client.post("/api/v1/events", json={"events": []}, headers=headers)
    assert events.status_code == 403
    heartbeat = hq.client.post(
        "/api/v1/heartbeat",
        json={
            "agent_version": "1",
            "sent_at": hq.clock.now().isoformat(),
            "outbox_depth": 0,
            "dropped_events": 0,
            "last_seq": 0,
        },
        headers=headers,
    )
    assert heartbeat.status_code == 403


@pytest.mark.parametrize("role", list(Role))
def test_every_role_may_read(hq: HQ, role: Role) -> None:
    token = hq.user_token(role)
    for path in ("/api/v1/alarms", "/api/v1/tickets", "/api/v1/sites"):
        assert hq.get(token, path).status_code == 200


def test_tokens_are_random_prefixed_and_stored_hashed(hq: HQ) -> None:
    token = hq.user_token(Role.ADMIN, name="ops")
    assert token.startswith("swu_") and len(token) > 40
    assert token_kind(new_token(TokenKind.AGENT)) is TokenKind.AGENT
    assert new_token(TokenKind.USER) != new_token(TokenKind.USER)
    with hq.db.session() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    assert stored == [hash_token(token)]
    assert token not in stored


def test_healthz_reports_an_unreachable_database(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=2"
    app = create_app(Settings(db_url=url, data_dir=tmp_path))
    client = TestClient(app)  # no lifespan: startup would refuse the database
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "db": "unavailable"}
    token = "swu_" + "x" * 43
    assert (
        client.get("/api/v1/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 503
    )
    app.state.db.dispose()


def test_startup_refuses_an_unmigrated_database(db_url: str, tmp_path: Path) -> None:
    app = create_app(Settings(db_url=db_url, data_dir=tmp_path))
    with pytest.raises(SchemaOutOfDate), TestClient(app):
        pass
    app.state.db.dispose()
