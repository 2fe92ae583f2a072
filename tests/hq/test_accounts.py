"""Sessions and passwords (issue 11, item 6): user tokens expire, agent tokens do not; a new
password or disabling a user revokes the user's tokens; one password policy for every role;
user names unique whatever their case."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from hq_server.access.auth import create_api_token
from hq_server.core.domain import Role
from hq_server.core.passwords import common_passwords, policy_problem
from hq_server.store.models import ApiToken
from tests.hq.conftest import HQ
from tests.hq.test_agent_revocation import _heartbeat

PASSWORD = "granite-Lantern-42"


def _add_user(hq: HQ, admin: str, name: str, role: str = "viewer", password: str = PASSWORD) -> Any:
    return hq.post(admin, "/api/v1/users", {"username": name, "role": role, "password": password})


def _login(hq: HQ, name: str, password: str = PASSWORD) -> Any:
    return hq.post(None, "/api/v1/auth/token", {"username": name, "password": password})


def _user_id(response: Any) -> int:
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


def test_login_tokens_expire_after_the_configured_lifetime(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    _user_id(_add_user(hq, admin, "alice"))
    login = _login(hq, "alice")
    assert login.status_code == 200, login.text
    token = login.json()["token"]
    expires = login.json()["expires_at"]
    assert expires.startswith((hq.clock.now() + timedelta(hours=12)).isoformat()[:19])
    hq.clock.advance(timedelta(hours=11, minutes=59))
    assert hq.get(token, "/api/v1/tickets").status_code == 200
    hq.clock.advance(timedelta(minutes=1))
    refused = hq.get(token, "/api/v1/tickets")
    assert refused.status_code == 401
    assert "expired" in refused.json()["detail"] and "log in again" in refused.json()["detail"]
    assert refused.headers["WWW-Authenticate"] == "Bearer"


def test_token_lifetime_is_a_setting_and_agent_tokens_never_expire(
    migrated_url: str, clock: Any, tmp_path: Any
) -> None:
    from tests.hq.conftest import start_hq

    with start_hq(migrated_url, clock, tmp_path, user_token_lifetime=timedelta(minutes=30)) as hq:
        with hq.db.writer() as session, session.begin():
            admin = create_api_token(session, "script", Role.ADMIN, hq.clock.now())
        agent = hq.enroll()
        _user_id(_add_user(hq, admin, "bob"))
        token = _login(hq, "bob").json()["token"]
        hq.clock.advance(timedelta(minutes=30))
        assert hq.get(token, "/api/v1/tickets").status_code == 401
        # Standalone tokens have their own lifetime (90 days unless given).
        assert hq.get(admin, "/api/v1/tickets").status_code == 200
        hq.clock.advance(timedelta(days=90) - timedelta(minutes=30))
        assert hq.get(admin, "/api/v1/tickets").status_code == 401
        assert _heartbeat(hq, agent).status_code == 200


def test_a_password_change_revokes_the_users_tokens(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    user_id = _user_id(_add_user(hq, admin, "carol", "engineer"))
    first, second = (_login(hq, "carol").json()["token"] for _ in range(2))
    changed = hq.call(
        "PATCH", admin, f"/api/v1/users/{user_id}", {"password": "another-Lantern-43"}
    )
    assert changed.status_code == 200, changed.text
    for token in (first, second):
        assert hq.get(token, "/api/v1/tickets").status_code == 401
    assert _login(hq, "carol").status_code == 401
    assert _login(hq, "carol", "another-Lantern-43").status_code == 200
    audit = hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/users/").json()
    assert audit[0]["summary"] == "change user carol: password; 2 API tokens revoked"


def test_disabling_revokes_tokens_so_enabling_does_not_bring_them_back(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    user_id = _user_id(_add_user(hq, admin, "dave"))
    token = _login(hq, "dave").json()["token"]
    hq.call("PATCH", admin, f"/api/v1/users/{user_id}", {"disabled": True})
    hq.call("PATCH", admin, f"/api/v1/users/{user_id}", {"disabled": False})
    assert hq.get(token, "/api/v1/tickets").status_code == 401
    with hq.db.session() as session:
        revoked = session.scalars(select(ApiToken.revoked_at).where(ApiToken.user_id == user_id))
        assert all(at is not None for at in revoked)
    assert _login(hq, "dave").status_code == 200


def test_own_password_change_replaces_the_calling_token(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    _user_id(_add_user(hq, admin, "erin"))
    caller = _login(hq, "erin").json()["token"]
    other_session = _login(hq, "erin").json()["token"]
    body = {"current_password": PASSWORD, "new_password": "quiet-Harbour-77"}
    wrong = hq.post(caller, "/api/v1/auth/password", {**body, "current_password": "nope"})
    assert wrong.status_code == 401
    weak = hq.post(caller, "/api/v1/auth/password", {**body, "new_password": "password123"})
    assert weak.status_code == 422
    assert weak.json()["detail"][0]["loc"] == ["body", "new_password"]
    changed = hq.post(caller, "/api/v1/auth/password", body)
    assert changed.status_code == 200, changed.text
    fresh = changed.json()["token"]
    assert hq.get(caller, "/api/v1/tickets").status_code == 401
    assert hq.get(other_session, "/api/v1/tickets").status_code == 401
    assert hq.get(fresh, "/api/v1/tickets").status_code == 200
    assert _login(hq, "erin", "quiet-Harbour-77").status_code == 200
    # A standalone token has no password to change.
    standalone = hq.post(admin, "/api/v1/auth/password", body)
    assert standalone.status_code == 403


@pytest.mark.parametrize("role", ["viewer", "engineer", "admin"])
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short-1", "at least 10 characters"),
        ("xx-Frank-xx-2026", "must not contain the user name"),
        ("password1234", "most common passwords"),
        ("Qwertyuiop", "most common passwords"),
    ],
)
def test_the_password_policy_applies_to_every_role(
    hq: HQ, role: str, password: str, reason: str
) -> None:
    admin = hq.user_token(Role.ADMIN)
    refused = _add_user(hq, admin, "frank", role, password)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert error["msg"].startswith("password: ") and reason in error["msg"]
    assert password not in refused.text.replace(f'"{password}"', "")  # not echoed back
    user_id = _user_id(_add_user(hq, admin, "frank", role))
    patched = hq.call("PATCH", admin, f"/api/v1/users/{user_id}", {"password": password})
    assert patched.status_code == 422


def test_the_common_password_list_ships_with_the_package() -> None:
    common = common_passwords()
    assert len(common) > 8000
    assert {"password", "12345678", "iloveyou"} <= common
    # Shorter ones fail any allowed minimum length, so they are left out.
    assert "123456" not in common and all(len(p) >= 8 for p in common)
    assert policy_problem("correct horse battery staple", "alice", 10) is None
    assert policy_problem("SunShine", "x", 8) is not None  # any case


def test_user_names_are_unique_whatever_their_case(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    _user_id(_add_user(hq, admin, "Grace"))
    clash = _add_user(hq, admin, "grace")
    assert clash.status_code == 409
    assert "'Grace' already exists" in clash.json()["detail"]
    # Logging in ignores the case too, and the token carries the stored name.
    login = _login(hq, "GRACE")
    assert login.status_code == 200 and login.json()["username"] == "Grace"


def test_a_refused_password_is_never_echoed(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    secret = "never-Echo-me-" + "x" * 1100  # over the length limit
    for path, body in (
        ("/api/v1/auth/token", {"username": "alice", "password": secret}),
        ("/api/v1/users", {"username": "alice", "role": "viewer", "password": secret}),
        ("/api/v1/users", {"role": "viewer", "password": "never-Echo-me"}),  # no username
        ("/api/v1/auth/password", {"current_password": "never-Echo-me"}),
    ):
        refused = hq.post(admin, path, body)
        assert refused.status_code == 422, refused.text
        assert "never-Echo-me" not in refused.text
        assert refused.json()["detail"][0]["loc"][0] == "body"
    # No body value is echoed at all (hq_server.api.errors), but the error names the field.
    other = hq.post(admin, "/api/v1/users", {"username": "a b", "role": "viewer", "password": "x"})
    first = other.json()["detail"][0]
    assert first["loc"] == ["body", "username"] and "input" not in first
