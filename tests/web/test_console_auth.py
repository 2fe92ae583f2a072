"""The console's logins, sessions, CSRF tokens, roles and languages, in-process against the real
app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.store.models import AuditEntry, User, WebSession
from tests.hq.conftest import HQ
from tests.web.console import PASSWORD, Console, hidden_fields


def _audit(hq: HQ) -> list[AuditEntry]:
    with hq.db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_pages_need_a_login_and_come_back_after_it(console: Console) -> None:
    response = console.get("/tickets", grade="1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/tickets%3Fgrade%3D1"
    console.add_user("alice", Role.ENGINEER)
    login = console.login("alice", next_path="/tickets?grade=1")
    assert login.status_code == 303
    assert login.headers["location"] == "/tickets?grade=1"
    cookie = login.headers["set-cookie"]
    assert "sw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert console.get("/tickets").status_code == 200


def test_session_cookie_is_secure_over_tls(hq: HQ) -> None:
    hq.client.base_url = hq.client.base_url.copy_with(scheme="https")
    console = Console(hq)
    console.add_user("alice", Role.VIEWER)
    response = console.login("alice")
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_audited_without_the_password(console: Console) -> None:
    console.add_user("alice", Role.VIEWER)
    response = console.login("alice", "not-the-password")
    assert response.status_code == 401
    assert "wrong password" in response.text
    assert "sw_session" not in response.headers.get("set-cookie", "")
    rows = _audit(console.hq)
    assert rows[-1].actor == "alice" and rows[-1].status == 401
    assert "not-the-password" not in rows[-1].summary
    assert rows[-1].path == "/login"


def test_login_is_throttled_like_the_api(console: Console) -> None:
    console.add_user("alice", Role.VIEWER)
    for _ in range(5):  # login_max_failures
        assert console.login("alice", "wrong").status_code == 401
    response = console.login("alice")  # the right password, not even checked
    assert response.status_code == 429
    # The API shares the count: the same user is locked out there too.
    api = console.hq.post(None, "/api/v1/auth/token", {"username": "alice", "password": PASSWORD})
    assert api.status_code == 429


def test_the_login_form_needs_its_csrf_token(console: Console) -> None:
    console.add_user("alice", Role.VIEWER)
    console.get("/login")
    response = console.client.post(
        "/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False
    )
    assert response.status_code == 403
    assert "security token" in response.text


def test_a_form_without_its_csrf_token_is_refused(console: Console) -> None:
    console.as_user("alice", Role.ENGINEER)
    response = console.post_form("/", "/logout", csrf=False)
    assert response.status_code == 403
    assert "security token" in response.text
    assert console.get("/").status_code == 200  # still logged in
    forged = console.client.post("/logout", data={"csrf_token": "forged"}, follow_redirects=False)
    assert forged.status_code == 403
    assert _audit(console.hq)[-1].summary == "refused: form without a valid CSRF token"


def test_logout_ends_the_session_server_side(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    cookie = console.client.cookies["sw_session"]
    response = console.post_form("/", "/logout")
    assert response.status_code == 303
    with console.hq.db.session() as session:
        assert session.scalars(select(WebSession)).all() == []
    # The old cookie, replayed, opens nothing.
    console.client.cookies.set("sw_session", cookie)
    assert console.get("/").status_code == 303
    assert _audit(console.hq)[-1].summary == "console log out"


def test_idle_sessions_end_and_use_keeps_them(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    idle = timedelta(hours=2)  # console_idle_timeout
    console.hq.clock.advance(idle - timedelta(minutes=1))
    assert console.get("/").status_code == 200  # used: the idle clock starts again
    console.hq.clock.advance(idle - timedelta(minutes=1))
    assert console.get("/").status_code == 200
    console.hq.clock.advance(idle)
    assert console.get("/").status_code == 303


def test_a_disabled_user_or_new_password_ends_the_sessions(console: Console) -> None:
    console.as_user("alice", Role.ENGINEER)
    admin = console.hq.user_token(Role.ADMIN)
    with console.hq.db.session() as session:
        user_id = session.scalars(select(User.id)).one()
    response = console.hq.call(
        "PATCH", admin, f"/api/v1/users/{user_id}", {"password": "Another-Horse-43-battery"}
    )
    assert response.status_code == 200, response.text
    assert console.get("/").status_code == 303


def test_language_follows_the_browser_then_the_users_choice(console: Console) -> None:
    console.as_user("alice", Role.VIEWER)
    zh = console.client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    assert '<html lang="zh-CN">' in zh.text and "总览" in zh.text
    en = console.client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in en.text and "Overview" in en.text
    # Chosen: remembered on the user, whatever the browser says, after logging in again.
    response = console.post_form("/", "/language", {"language": "zh_CN", "next": "/tickets"})
    assert response.status_code == 303 and response.headers["location"] == "/tickets"
    console.client.cookies.clear()
    console.login("alice")
    page = console.client.get("/", headers={"Accept-Language": "en"})
    assert "总览" in page.text
    with console.hq.db.session() as session:
        assert session.scalars(select(User.language)).one() == "zh_CN"


def test_the_language_can_be_switched_before_login(console: Console) -> None:
    page = console.client.get("/login", headers={"Accept-Language": "en"})
    assert "Log in to StationWatch" in page.text
    fields = hidden_fields(page.text, "/language")
    fields.update(language="zh_CN", next="/login")
    response = console.client.post("/language", data=fields, follow_redirects=False)
    assert response.status_code == 303
    assert "登录 StationWatch" in console.client.get("/login").text
    assert console.client.cookies["sw_lang"] == "zh_CN"


def test_an_expired_session_keeps_what_was_typed(console: Console) -> None:
    console.as_user("alice", Role.ENGINEER)
    page = console.get("/")
    form = hidden_fields(page.text, "/logout")
    console.hq.clock.advance(timedelta(hours=13))  # past console_session_lifetime
    typed = {**form, "seen": "VSWR alarm on tx1", "done": "reseated the connector"}
    response = console.client.post("/tickets/1/comment", data=typed, follow_redirects=False)
    assert response.status_code == 401
    kept = hidden_fields(response.text, "/login")
    assert kept["kept.seen"] == "VSWR alarm on tx1"
    assert kept["kept.done"] == "reseated the connector"
    assert "kept.csrf_token" not in kept and kept["next"] == "/tickets/1/comment"
    # Logging in offers to send it again, with a fresh token, to the same place.
    kept.update(username="alice", password=PASSWORD)
    again = console.client.post("/login", data=kept, follow_redirects=False)
    assert again.status_code == 200
    resend = hidden_fields(again.text, "/tickets/1/comment")
    assert resend["seen"] == "VSWR alarm on tx1" and resend["csrf_token"]
    assert "password" not in resend


def test_a_viewer_sees_no_action_and_a_forged_post_is_refused(console: Console) -> None:
    hq = console.hq
    agent = hq.enroll()
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    console.as_user("vera", Role.VIEWER)
    page = console.get("/tickets/1")
    assert page.status_code == 200
    assert "/tickets/1/acknowledge" not in page.text
    assert "<form" in page.text  # the language switch, the logout
    token = hidden_fields(page.text, "/logout")["csrf_token"]
    forged = console.client.post(
        "/tickets/1/acknowledge", data={"csrf_token": token}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert "engineer" in forged.text
    assert hq.tickets(hq.user_token())[0]["status"] == "new"
    row = _audit(hq)[-1]
    assert (row.actor, row.role, row.status) == ("vera", "viewer", 403)
