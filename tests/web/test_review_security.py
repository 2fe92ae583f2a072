"""Findings of the console's security review (issue 13), each a test: sessions and the idle
clock, the live stream after a session ends, CSRF from another origin of the same host, form
bodies without a length, framing, and input that made pages fail. In-process against the real
app on SQLite and PostgreSQL (tests/web/console.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from sqlalchemy import func, select

from hq_server.core.domain import Role
from hq_server.store.models import AuditEntry, WebSession
from hq_server.web.auth import MAX_FORM_BYTES
from tests.web.console import PASSWORD, Console, hidden_fields

# What htmx sends when console.js refreshes a live part of a page (static/console.js).
LIVE_REFRESH = {"HX-Request": "true", "HX-Trigger": "overview-live", "X-SW-Refresh": "1"}


def _sessions(console: Console) -> int:
    with console.hq.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebSession)) or 0)


# --- sessions --------------------------------------------------------------------------------


def test_live_refreshes_do_not_keep_an_idle_session_open(console: Console) -> None:
    """A page left open refreshes its live parts at every change; that is not someone using
    the console, so the idle timeout must still end the session."""
    console.as_user("alice", Role.VIEWER)
    step = timedelta(minutes=30)
    for _ in range(5):  # 2.5 h of changes refreshing the overview, nobody at the keyboard
        console.hq.clock.advance(step)
        response = console.client.get("/", headers=LIVE_REFRESH, follow_redirects=False)
    assert response.status_code == 204  # the session ended: htmx is sent to the login page
    assert response.headers["HX-Redirect"].startswith("/login")


def test_a_login_ends_the_session_the_browser_had(console: Console) -> None:
    """Logging in again (another user at the same browser) leaves no older session alive
    behind the new cookie."""
    console.as_user("alice", Role.ENGINEER)
    old = console.client.cookies["sw_session"]
    console.add_user("bob", Role.VIEWER)
    # A login form shown before (another tab), posted while the browser has a session.
    console.client.cookies.delete("sw_session")
    fields = hidden_fields(console.client.get("/login").text, "/login")
    console.client.cookies.set("sw_session", old)
    fields.update(username="bob", password=PASSWORD, next="/")
    response = console.client.post("/login", data=fields, follow_redirects=False)
    assert response.status_code == 303
    assert response.cookies["sw_session"] != old
    assert _sessions(console) == 1
    console.client.cookies.clear()
    console.client.cookies.set("sw_session", old)
    assert console.get("/").status_code == 303  # alice's session is gone


# --- CSRF from another origin on the same host (another port on 127.0.0.1) --------------------


def test_a_login_posted_from_another_origin_is_refused(console: Console) -> None:
    """A page on another port of the same host shares the host's cookies (ports do not
    separate cookies) and is "same-site": it can toss its own sw_login_csrf cookie and post
    the matching token, logging the victim in as the attacker. The browser says where a post
    comes from (Sec-Fetch-Site, Origin); the console must believe only its own origin."""
    console.add_user("mallory", Role.VIEWER)
    console.client.cookies.set("sw_login_csrf", "tossed-by-mallory")
    response = console.client.post(
        "/login",
        data={
            "csrf_token": "tossed-by-mallory",
            "username": "mallory",
            "password": PASSWORD,
            "next": "/",
        },
        headers={"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "sw_session" not in console.client.cookies


def test_a_cross_site_post_is_not_turned_into_a_prefilled_form(console: Console) -> None:
    """A cross-site form post carries no SameSite=Lax cookie, so the console answered it with
    its login page keeping the attacker's fields; after the victim logs in they are offered
    again with a valid CSRF token, one click from being sent. Refuse foreign posts instead."""
    response = console.client.post(
        "/tickets/1/resolve",
        data={"cause": "attacker's cause", "fix": "attacker's fix", "version": "x"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "attacker&#39;s cause" not in response.text
    assert "kept." not in response.text


def test_same_origin_posts_still_work(console: Console) -> None:
    """The browser's own forms carry Sec-Fetch-Site: same-origin and the console's Origin."""
    console.add_user("alice", Role.VIEWER)
    page = console.client.get("/login")
    fields = hidden_fields(page.text, "/login")
    fields.update(username="alice", password=PASSWORD)
    origin = str(console.client.base_url).rstrip("/")
    response = console.client.post(
        "/login",
        data=fields,
        headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert response.status_code == 303


# --- bodies ----------------------------------------------------------------------------------


def test_a_form_body_without_a_length_is_bounded_too(console: Console) -> None:
    """read_form refused a large Content-Length, but a chunked body (no Content-Length) was read
    whole, before any login: anyone could make HQ hold any amount of memory."""
    chunk = b"a" * 65536

    def body() -> Iterator[bytes]:
        yield b"username="
        for _ in range(MAX_FORM_BYTES // len(chunk) + 2):
            yield chunk

    response = console.client.post(
        "/login",
        content=body(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert response.status_code == 413


# --- headers ---------------------------------------------------------------------------------


def test_pages_may_not_be_framed(console: Console) -> None:
    """Another port of 127.0.0.1 is same-site: its page could frame the console with the
    session cookie and have an engineer click a hidden "Acknowledge" (clickjacking)."""
    console.as_user("alice", Role.ENGINEER)
    for path in ("/", "/tickets", "/login"):
        response = console.client.get(path, follow_redirects=True)
        assert response.headers.get("X-Frame-Options") == "DENY", path
        assert "frame-ancestors 'none'" in response.headers.get("Content-Security-Policy", "")
        assert response.headers.get("X-Content-Type-Options") == "nosniff"


# --- escaping (checked, held: kept as a guard) -------------------------------------------------

PAYLOAD = "</script><script>alert(1)</script>\"'><img src=x onerror=alert(2)>{{7*7}}"


def test_text_from_agents_and_users_is_escaped_everywhere(console: Console) -> None:
    """A fault title from an agent, a site name, comments and an assignee typed by users, in
    text, attributes and the countdowns' data attributes: never markup."""
    hq = console.hq
    agent = hq.enroll(site="s<script>x</script>")
    assert hq.post_events(agent, [hq.event(title=PAYLOAD, component=PAYLOAD)]).status_code == 200
    console.as_user("erin", Role.ENGINEER)
    comment = {"seen": PAYLOAD, "done": PAYLOAD}
    assert console.post_form("/tickets/1", "/tickets/1/comment", comment).status_code == 303
    assign = {"assignee": PAYLOAD[:100]}
    assert console.post_form("/tickets/1", "/tickets/1/assign", assign).status_code == 303
    bad = {"seen": PAYLOAD, "time_spent_minutes": PAYLOAD}  # shown again with its error
    again = console.post_form("/tickets/1", "/tickets/1/comment", bad)
    assert again.status_code == 422
    pages = [console.get(p).text for p in ("/", "/tickets", "/tickets/1")]
    pages += [again.text, console.get("/tickets", q=PAYLOAD[:200], site=PAYLOAD[:100]).text]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "'><" not in html and "\"'>" not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in pages[2]  # shown, as text


def test_a_refused_language_switch_is_audited_as_refused(console: Console) -> None:
    """Every other form refused for its token says so in the audit log; the language switch
    left the route's name ("post_language"), as if it had been done."""
    console.as_user("alice", Role.VIEWER)
    response = console.post_form("/", "/language", {"language": "zh_CN"}, csrf=False)
    assert response.status_code == 403
    with console.hq.db.session() as session:
        row = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert row is not None and row.path == "/language"
    assert row.summary == "refused: form without a valid CSRF token"


def test_ended_sessions_do_not_pile_up(console: Console) -> None:
    """sessions.purge existed but nothing called it: every session that idled out or reached
    its end stayed in web_sessions for ever."""
    console.as_user("alice", Role.VIEWER)
    console.client.cookies.clear()
    console.hq.clock.advance(timedelta(hours=3))  # past console_idle_timeout
    console.as_user("bob", Role.VIEWER)
    assert _sessions(console) == 1


def test_without_sec_fetch_site_the_origin_decides(console: Console) -> None:
    """Browsers without Sec-Fetch-Site still send Origin with a form post."""
    console.add_user("alice", Role.VIEWER)
    fields = hidden_fields(console.client.get("/login").text, "/login")
    fields.update(username="alice", password=PASSWORD)
    foreign = {"Origin": "http://127.0.0.1:9999"}
    refused = console.client.post("/login", data=fields, headers=foreign, follow_redirects=False)
    assert refused.status_code == 403
    own = {"Origin": "http://testserver"}  # TestClient's Host
    response = console.client.post("/login", data=fields, headers=own, follow_redirects=False)
    assert response.status_code == 303
