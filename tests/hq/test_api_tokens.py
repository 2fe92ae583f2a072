"""API tokens: admins list and revoke them, users log out (revoke their own); a revoked token
is refused at once; all of it audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.core.security import hash_token
from hq_server.store.models import ApiToken
from tests.hq.conftest import HQ, START

PASSWORD = "s3cret-pass"


def _add_user(hq: HQ, admin: str, name: str, role: str = "viewer") -> int:
    body = {"username": name, "role": role, "password": PASSWORD}
    response = hq.post(admin, "/api/v1/users", body)
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


def _login(hq: HQ, name: str) -> str:
    response = hq.post(None, "/api/v1/auth/token", {"username": name, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _tokens(hq: HQ, admin: str, **params: Any) -> list[dict[str, Any]]:
    response = hq.get(admin, "/api/v1/tokens", **params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_admins_list_tokens_without_the_tokens_or_their_hashes(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    script = hq.user_token(Role.ENGINEER, "backup-script")
    alice_id = _add_user(hq, admin, "alice")
    alice = _login(hq, "alice")

    response = hq.get(admin, "/api/v1/tokens")
    assert response.status_code == 200
    for secret in (admin, script, alice):
        assert secret not in response.text and hash_token(secret) not in response.text
    rows = response.json()
    assert [(r["name"], r["role"], r["user_id"], r["username"]) for r in rows] == [
        ("root", "admin", None, None),
        ("backup-script", "engineer", None, None),
        ("alice", "viewer", alice_id, "alice"),
    ]
    assert set(rows[0]) == {
        "id",
        "name",
        "role",
        "user_id",
        "username",
        "created_at",
        "revoked_at",
        "expires_at",
    }
    assert rows[2]["created_at"].startswith(START.isoformat()[:19])
    assert rows[2]["revoked_at"] is None

    # A user's token acts with the user's current role, and is listed with it.
    hq.call("PATCH", admin, f"/api/v1/users/{alice_id}", {"role": "engineer"})
    assert [r["role"] for r in _tokens(hq, admin, user_id=alice_id)] == ["engineer"]
    for role in (Role.VIEWER, Role.ENGINEER):
        assert hq.get(hq.user_token(role), "/api/v1/tokens").status_code == 403


def test_a_revoked_token_is_refused_at_once(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    script = hq.user_token(Role.ENGINEER, "backup-script")
    assert hq.get(script, "/api/v1/tickets").status_code == 200
    [row] = [r for r in _tokens(hq, admin) if r["name"] == "backup-script"]

    hq.clock.advance(timedelta(minutes=5))
    response = hq.post(admin, f"/api/v1/tokens/{row['id']}/revoke")
    assert response.status_code == 200, response.text
    revoked_at = response.json()["revoked_at"]
    assert revoked_at.startswith((START + timedelta(minutes=5)).isoformat()[:19])
    refused = hq.get(script, "/api/v1/tickets")
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"

    # Again: nothing changes, the first revocation time stays.
    hq.clock.advance(timedelta(minutes=5))
    again = hq.post(admin, f"/api/v1/tokens/{row['id']}/revoke")
    assert (again.status_code, again.json()["revoked_at"]) == (200, revoked_at)
    assert [r["name"] for r in _tokens(hq, admin, revoked=True)] == ["backup-script"]
    assert [r["name"] for r in _tokens(hq, admin, revoked=False)] == ["root"]
    assert hq.post(admin, "/api/v1/tokens/9999/revoke").status_code == 404
    engineer = hq.user_token(Role.ENGINEER)
    assert hq.post(engineer, f"/api/v1/tokens/{row['id']}/revoke").status_code == 403

    audit = hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/tokens").json()
    assert [(r["actor"], r["status"], str(r["target_ids"]["token_id"])) for r in audit] == [
        ("test", 403, str(row["id"])),
        ("root", 404, "9999"),
        ("root", 200, str(row["id"])),
        ("root", 200, str(row["id"])),
    ]
    assert audit[3]["summary"] == f"revoke API token {row['id']} (backup-script, standalone)"
    assert audit[2]["summary"].startswith("already revoked")


def test_logout_revokes_only_the_token_it_is_called_with(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    _add_user(hq, admin, "bob")
    laptop, phone = _login(hq, "bob"), _login(hq, "bob")

    response = hq.post(laptop, "/api/v1/auth/logout")
    assert response.status_code == 204 and response.content == b""
    assert hq.get(laptop, "/api/v1/tickets").status_code == 401
    assert hq.post(laptop, "/api/v1/auth/logout").status_code == 401
    assert hq.get(phone, "/api/v1/tickets").status_code == 200
    with hq.db.session() as session:
        rows = session.scalars(select(ApiToken).where(ApiToken.name == "bob")).all()
        revoked = {r.token_hash: r.revoked_at for r in rows}
    assert revoked[hash_token(laptop)] == hq.clock.now()
    assert revoked[hash_token(phone)] is None

    assert hq.post(None, "/api/v1/auth/logout").status_code == 401
    assert hq.post(hq.enroll(), "/api/v1/auth/logout").status_code == 403
    audit = hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/auth/logout").json()
    assert [(r["actor"], r["status"]) for r in audit] == [
        ("anonymous", 401),
        ("anonymous", 401),
        ("bob", 204),
    ]
    assert audit[2]["summary"].startswith("log out: revoke own API token")
