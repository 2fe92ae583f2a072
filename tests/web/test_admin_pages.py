"""The administration pages, in-process on SQLite and PostgreSQL: users (create, a duplicate
name shown next to its field, change role, disable), API tokens (shown once, revoked), chains
and calendars, the audit log with filters; admins only."""

from __future__ import annotations

import re

from hq_server.access.users import list_users
from hq_server.core.domain import Role
from tests.web.console import PASSWORD, Console


def test_users_and_roles(console: Console) -> None:
    console.as_user("ada", Role.ADMIN)
    made = console.post_form(
        "/admin/users",
        "/admin/users",
        {"username": "li.wei", "role": "engineer", "password": PASSWORD},
    )
    assert made.status_code == 303
    page = console.get("/admin/users").text
    assert "li.wei" in page
    twice = console.post_form(
        "/admin/users",
        "/admin/users",
        {"username": "LI.WEI", "role": "viewer", "password": PASSWORD},
    )
    assert twice.status_code == 422 and 'id="e-username"' in twice.text
    weak = console.post_form(
        "/admin/users", "/admin/users", {"username": "wang", "role": "viewer", "password": "x"}
    )
    assert weak.status_code == 422 and 'id="e-password"' in weak.text
    assert "wang" not in re.sub(r'value="wang"', "", console.get("/admin/users").text)
    user_id = re.search(
        r'action="/admin/users/(\d+)/role"[^>]*>\s*<input[^>]*>\s*'
        r'<label for="role-\d+">[^<]*li\.wei',
        page,
    )
    assert user_id is not None
    role = console.post_form("/admin/users", f"/admin/users/{user_id[1]}/role", {"role": "admin"})
    assert role.status_code == 303
    disable = console.post_form("/admin/users", f"/admin/users/{user_id[1]}/disable")
    assert disable.status_code == 303
    users = console.get("/admin/users").text
    assert "Enable li.wei" in users and "Disable li.wei" not in users
    with console.hq.db.session() as session:
        [user] = [u for u in list_users(session) if u.username == "li.wei"]
        assert (user.role, user.disabled) == ("admin", True)


def test_api_tokens_are_shown_once_and_revoked(console: Console) -> None:
    console.as_user("ada", Role.ADMIN)
    made = console.post_form(
        "/admin/tokens", "/admin/tokens", {"name": "nms", "role": "viewer", "days": "30"}
    )
    assert made.status_code == 200
    token = re.search(r'id="new-token" readonly size="60" value="([^"]+)"', made.text)
    assert token is not None
    assert console.hq.get(token[1], "/api/v1/alarms").status_code == 200
    again = console.get("/admin/tokens").text
    assert token[1] not in again
    bad = console.post_form(
        "/admin/tokens", "/admin/tokens", {"name": "", "role": "x", "days": "0"}
    )
    assert bad.status_code == 422
    assert all(f'id="e-{f}"' in bad.text for f in ("name", "role", "days"))
    token_id = re.search(r'action="/admin/tokens/(\d+)/revoke"', again)
    assert token_id is not None
    assert (
        console.post_form("/admin/tokens", f"/admin/tokens/{token_id[1]}/revoke").status_code == 303
    )
    assert console.hq.get(token[1], "/api/v1/alarms").status_code == 401


def test_chains_calendars_and_the_audit_log(console: Console) -> None:
    console.as_user("ada", Role.ADMIN)
    assert console.get("/admin/chains").status_code == 200
    assert console.get("/admin/calendars").status_code == 200
    console.post_form(
        "/admin/tokens", "/admin/tokens", {"name": "nms", "role": "viewer", "days": "30"}
    )
    audit = console.client.get("/admin/audit", params={"actor": "ada", "path": "/admin/tokens"})
    assert audit.status_code == 200 and "create API token" in audit.text
    assert "create API token" not in console.get("/admin/audit", actor="nobody").text
    bad = console.get("/admin/audit", status="abc", since="yesterday")
    assert bad.status_code == 422 and 'id="e-status"' in bad.text and 'id="e-since"' in bad.text


def test_only_admins(console: Console) -> None:
    console.as_user("erin", Role.ENGINEER)
    assert console.get("/admin/users").status_code == 403
    assert "/admin/users" not in console.get("/alarms").text  # no menu entry
