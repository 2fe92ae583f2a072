"""Users with passwords and roles, login tokens, and the append-only audit log."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from hq_server.core.domain import Role
from hq_server.core.passwords import hash_password, verify_password
from hq_server.store.db import Database
from hq_server.store.models import ApiToken, AuditEntry, User
from tests.hq.conftest import HQ

CLI = [sys.executable, "-m", "hq_server.cli"]
PASSWORD = "s3cret-pass"


def _add_user(hq: HQ, admin: str, name: str, role: str, password: str = PASSWORD) -> int:
    response = hq.post(
        admin, "/api/v1/users", {"username": name, "role": role, "password": password}
    )
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


def _login(hq: HQ, name: str, password: str = PASSWORD) -> str:
    response = hq.post(None, "/api/v1/auth/token", {"username": name, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def test_password_hash_is_salted_scrypt_and_self_describing() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second
    assert re.fullmatch(r"scrypt\$n=16384,r=8,p=1\$[\w-]+\$[\w-]+", first)
    assert verify_password("correct horse", first)
    assert not verify_password("wrong horse", first)
    for broken in ("", "scrypt$x$y$z", "md5$n=2,r=1,p=1$aa$bb", "scrypt$n=99999999,r=8,p=1$aa$bb"):
        assert not verify_password("x", broken)


def test_login_gives_a_token_with_the_users_role(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    _add_user(hq, admin, "alice", "viewer")
    token = _login(hq, "alice")
    assert token.startswith("swu_")
    assert hq.get(token, "/api/v1/tickets").status_code == 200
    assert hq.post(token, "/api/v1/users", {}).status_code == 403
    with hq.db.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "alice")).one()
        assert row.user_id is not None
        stored = session.scalars(select(User.password_hash)).one()
    assert "s3cret-pass" not in stored


def test_wrong_password_unknown_user_and_disabled_user_are_refused(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    user_id = _add_user(hq, admin, "bob", "engineer")
    token = _login(hq, "bob")
    for name, password in (("bob", "wrong-password"), ("nobody", "s3cret-pass")):
        response = hq.post(None, "/api/v1/auth/token", {"username": name, "password": password})
        assert response.status_code == 401
        assert response.json()["detail"] == "unknown user or wrong password"
    response = hq.call("PATCH", admin, f"/api/v1/users/{user_id}", {"disabled": True})
    assert response.status_code == 200 and response.json()["disabled"] is True
    # Both new logins and tokens issued before are refused.
    assert (
        hq.post(
            None, "/api/v1/auth/token", {"username": "bob", "password": "s3cret-pass"}
        ).status_code
        == 401
    )
    assert hq.get(token, "/api/v1/tickets").status_code == 401


def test_role_change_applies_to_existing_tokens(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    user_id = _add_user(hq, admin, "carol", "viewer")
    token = _login(hq, "carol")
    assert hq.get(token, "/api/v1/users").status_code == 403
    hq.call("PATCH", admin, f"/api/v1/users/{user_id}", {"role": "admin"})
    assert hq.get(token, "/api/v1/users").status_code == 200


def test_only_admins_manage_users(hq: HQ) -> None:
    body = {"username": "dave", "role": "viewer", "password": "long-enough"}
    for role in (Role.VIEWER, Role.ENGINEER):
        assert hq.post(hq.user_token(role), "/api/v1/users", body).status_code == 403
    admin = hq.user_token(Role.ADMIN)
    assert hq.post(admin, "/api/v1/users", body).status_code == 201
    assert hq.post(admin, "/api/v1/users", body).status_code == 409
    short = {**body, "username": "eve", "password": "short"}
    assert hq.post(admin, "/api/v1/users", short).status_code == 422
    assert hq.call("PATCH", admin, "/api/v1/users/9999", {"role": "viewer"}).status_code == 404


def test_mutating_calls_are_audited_with_who_what_where_and_result(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    viewer = hq.user_token(Role.VIEWER, "watcher")
    agent = hq.enroll()
    hq.post_events(agent, [hq.event()])  # agent traffic: not audited
    hq.get(admin, "/api/v1/tickets")  # reads: not audited
    user_id = _add_user(hq, admin, "frank", "engineer")
    hq.post(viewer, "/api/v1/users", {"username": "x", "role": "admin", "password": "12345678"})
    hq.post(None, "/api/v1/auth/token", {"username": "frank", "password": "bad-password"})

    rows = hq.get(admin, "/api/v1/audit").json()
    assert [(r["actor"], r["method"], r["path"], r["status"]) for r in rows] == [
        ("frank", "POST", "/api/v1/auth/token", 401),
        ("watcher", "POST", "/api/v1/users", 403),
        ("root", "POST", "/api/v1/users", 201),
        ("anonymous", "POST", "/api/v1/enroll", 200),
    ]
    created = rows[2]
    assert created["target_ids"] == {"user_id": user_id}
    assert "create user frank" in created["summary"]
    assert created["client"] == "testclient"
    assert created["role"] == "admin"
    assert created["at"].startswith(hq.clock.now().isoformat()[:19])

    only_root = hq.get(admin, "/api/v1/audit", actor="root").json()
    assert [r["status"] for r in only_root] == [201]
    assert len(hq.get(admin, "/api/v1/audit", status=403).json()) == 1
    assert len(hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/users").json()) == 2
    assert hq.get(viewer, "/api/v1/audit").status_code == 403
    assert hq.get(admin, "/api/v1/audit", method="GET").status_code == 422


def test_audit_log_refuses_update_and_delete_in_the_database(database: Database) -> None:
    with database.writer() as session, session.begin():
        session.execute(
            text(
                "INSERT INTO audit_log (at, actor, role, method, path, summary, target_ids, "
                "client, status) VALUES (:at, 'a', '', 'POST', '/x', 's', '{}', 'c', 200)"
            ),
            {"at": "2026-01-01 00:00:00"},
        )
    for statement in (update(AuditEntry).values(actor="forged"), delete(AuditEntry)):
        with (
            pytest.raises(DBAPIError, match="append-only"),
            database.writer() as session,
            session.begin(),
        ):
            session.execute(statement)
    with database.session() as session:
        assert session.scalars(select(AuditEntry.actor)).all() == ["a"]


def test_cli_user_add_and_token_for_user(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {k: v for k, v in clean_env.items() if not k.startswith("STATIONWATCH_")}
    base = ["--data-dir", str(tmp_path)]
    upgraded = subprocess.run(
        [*CLI, "db", "upgrade", *base], env=env, capture_output=True, timeout=60, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    added = subprocess.run(
        [*CLI, "user", "add", "grace", "--role", "engineer", *base],
        input="a-long-password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    assert "grace" in added.stderr and added.stdout == ""
    token = subprocess.run(
        [*CLI, "token", "create", "--user", "grace", *base],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert token.returncode == 0, token.stderr
    assert re.fullmatch(r"swu_[\w-]{43}\n", token.stdout)
    missing = subprocess.run(
        [*CLI, "token", "create", "--user", "nobody", *base],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    db = Database(f"sqlite:///{tmp_path / 'hq.sqlite3'}")
    try:
        with db.session() as session:
            user = session.scalars(select(User)).one()
            assert (user.username, user.role) == ("grace", "engineer")
            assert verify_password("a-long-password", user.password_hash)
            assert session.scalars(select(ApiToken.user_id)).one() == user.id
    finally:
        db.dispose()
