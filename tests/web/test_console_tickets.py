"""The overview, the ticket list and a ticket's page with its actions, in-process on SQLite and
PostgreSQL: what is shown, what is saved (through the same services as the API), what is
refused and how."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from hq_server.core.changes import Topic, feed
from hq_server.core.domain import Role
from hq_server.store.models import AuditEntry, Ticket
from tests.hq.conftest import HQ
from tests.web.console import Console, hidden_fields


def _fault(hq: HQ, **kw: object) -> str:
    agent = hq.enroll(site=str(kw.pop("site", "site-a")), hostname=str(kw.pop("host", "box1")))
    response = hq.post_events(agent, [hq.event(**kw)])  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return agent


def _ticket(hq: HQ) -> Ticket:
    with hq.db.session() as session:
        return session.scalars(select(Ticket).order_by(Ticket.id)).first()  # type: ignore[return-value]


def test_overview_shows_sites_grades_and_deadlines(console: Console) -> None:
    hq = console.hq
    _fault(hq, site="Shanghai TX", grade=1, title="Transmitter off air")
    _fault(hq, site="Beijing PBX", host="box2", grade=3, code="fan", title="Fan slow")
    console.as_user("vera", Role.VIEWER)
    page = console.get("/")
    assert page.status_code == 200
    html = page.text
    # Sites with the worst grade first, grade as text (not only colour).
    assert html.index("Shanghai TX") < html.index("Beijing PBX")
    assert '<span class="badge g1">1 Major</span>' in html
    assert '<span class="badge g3">3 General</span>' in html
    # The grade-1 ticket must be acknowledged within 10 minutes: counting down from there.
    assert 'data-deadline="2026-03-02T08:10:00+00:00"' in html
    assert "left 10 minutes" in html
    assert 'data-live="alarms tickets sites"' in html


def test_ticket_list_filters_and_pages(console: Console) -> None:
    hq = console.hq
    agent = hq.enroll()
    events = [hq.event(code=f"c{i}", grade=1 + i % 5, title=f"Fault {i}") for i in range(60)]
    assert hq.post_events(agent, events).status_code == 200
    console.as_user("vera", Role.VIEWER)
    first = console.get("/tickets")
    assert "60 tickets" in first.text and "Page 1 of 2" in first.text
    assert first.text.count('<tr><td><a href="/tickets/') == 50
    second = console.get("/tickets", page="2")
    assert second.text.count('<tr><td><a href="/tickets/') == 10
    graded = console.get("/tickets", grade="2")
    assert "12 tickets" in graded.text
    text = console.get("/tickets", q="fault 7")
    assert "1 tickets" in text.text and "Fault 7" in text.text
    hq.clock.advance(timedelta(minutes=11))
    overdue = console.get("/tickets", overdue="1")  # grade 1 (10 min) and 2 (30 min)
    assert "12 tickets" in overdue.text
    bad = console.get("/tickets", grade="9")
    assert bad.status_code == 422
    assert 'aria-invalid="true" aria-describedby="e-grade"' in bad.text
    assert "A grade is a number from 1 to 5." in bad.text


def test_acknowledge_comment_resolve_close_reopen_through_the_forms(console: Console) -> None:
    hq = console.hq
    _fault(hq)
    console.as_user("erin", Role.ENGINEER)
    ticket = _ticket(hq)
    page = f"/tickets/{ticket.id}"
    assert "data-deadline" in console.get(page).text.split('id="ack-clock"')[1].split("</dd>")[0]

    assert console.post_form(page, f"{page}/acknowledge").status_code == 303
    after = console.get(page).text
    ack_clock = after.split('id="ack-clock"')[1].split("</dd>")[0]
    assert "data-deadline" not in ack_clock and "acknowledged" in ack_clock  # the clock stopped

    typed = {"seen": "VSWR 3.2 on tx1", "done": "reseated feeder", "time_spent_minutes": "25"}
    assert console.post_form(page, f"{page}/comment", typed).status_code == 303
    timeline = console.get(page).text.split('id="timeline"')[1]
    assert "seen: VSWR 3.2 on tx1; done: reseated feeder; 25 minutes" in timeline
    zh = console.client.get(page, headers={"Accept-Language": "zh-CN"}).text
    assert "现象：VSWR 3.2 on tx1; 处理：reseated feeder; 25 分钟" in zh  # noqa: RUF001
    resolution = {
        "cause": "loose feeder connector",
        "fix": "reseated and torqued",
        "tested": "1",
        "confirmed_by_customer": "1",
        "faq": "1",
        "faq_text": "Check the feeder first.",
        "time_spent_minutes": "5",
    }
    assert console.post_form(page, f"{page}/resolve", resolution).status_code == 303
    assert console.post_form(page, f"{page}/close").status_code == 303
    api = hq.get(hq.user_token(), f"/api/v1/tickets/{ticket.id}").json()
    assert api["status"] == "closed" and api["time_spent_minutes"] == 30
    assert api["resolution"] == {
        "cause": "loose feeder connector",
        "fix": "reseated and torqued",
        "tested": True,
        "confirmed_by_customer": True,
        "faq": True,
        "faq_text": "Check the feeder first.",
    }
    assert [h["who"] for h in api["history"][-4:]] == ["erin"] * 4
    assert console.post_form(page, f"{page}/reopen", {"reason": "came back"}).status_code == 303
    assert hq.get(hq.user_token(), f"/api/v1/tickets/{ticket.id}").json()["status"] == (
        "in_progress"
    )
    # Audited like the API calls: the user, the console path, the API's summary.
    with hq.db.session() as session:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.path.like("/tickets/%")).order_by(AuditEntry.id)
        ).all()
    assert [(r.summary, r.actor, r.role, r.status) for r in rows] == [
        (f"{s} {ticket.number}", "erin", "engineer", 303)
        for s in ("acknowledge", "comment on", "resolve", "close", "reopen")
    ]


def test_bad_input_is_shown_next_to_its_field_and_nothing_is_saved(console: Console) -> None:
    hq = console.hq
    _fault(hq)
    console.as_user("erin", Role.ENGINEER)
    ticket = _ticket(hq)
    page = f"/tickets/{ticket.id}"
    typed = {"cause": "", "fix": "x" * 4001, "faq": "1", "time_spent_minutes": "ten"}
    response = console.post_form(page, f"{page}/resolve", typed)
    assert response.status_code == 422
    html = response.text
    assert '<span id="e-resolve-cause" class="field-error">Required.</span>' in html
    assert '<span id="e-resolve-fix" class="field-error">At most 4000 characters.</span>' in html
    assert "e-resolve-faq_text" in html and "e-resolve-time_spent_minutes" in html
    assert "x" * 4001 in html  # what was typed is still there
    assert _ticket(hq).status == "new"
    # In Chinese too.
    console.client.headers["Accept-Language"] = "zh-CN"
    response = console.post_form(page, f"{page}/comment", {"seen": "", "done": ""})
    assert response.status_code == 422
    assert "请填写看到的现象或所做的处理。" in response.text


def test_a_stale_edit_is_refused_with_what_was_typed(console: Console) -> None:
    hq = console.hq
    _fault(hq)
    console.as_user("erin", Role.ENGINEER)
    ticket = _ticket(hq)
    page = f"/tickets/{ticket.id}"
    form = hidden_fields(console.get(page).text, f"{page}/assign")
    # Someone acknowledges through the API meanwhile.
    hq.clock.advance(timedelta(seconds=5))
    api = hq.post(hq.user_token(Role.ENGINEER), f"/api/v1/tickets/{ticket.id}/acknowledge")
    assert api.status_code == 200
    typed = {**form, "assignee": "Li Wei", "on_duty": "Zhang San"}
    response = console.client.post(f"{page}/assign", data=typed, follow_redirects=False)
    assert response.status_code == 409
    assert "Someone changed this ticket after you opened it" in response.text
    assert 'value="Li Wei"' in response.text
    assert _ticket(hq).assignee == ""
    # Sent again from the page as it is now, it goes through.
    retry = hidden_fields(response.text, f"{page}/assign")
    retry.update(assignee="Li Wei")
    again = console.client.post(f"{page}/assign", data=retry, follow_redirects=False)
    assert again.status_code == 303
    assert _ticket(hq).assignee == "Li Wei"


def test_an_action_the_status_forbids_is_refused_in_the_users_language(console: Console) -> None:
    hq = console.hq
    _fault(hq)
    console.as_user("erin", Role.ENGINEER)
    ticket = _ticket(hq)
    page = f"/tickets/{ticket.id}"
    form = hidden_fields(console.get(page).text, f"{page}/acknowledge")
    assert console.client.post(f"{page}/acknowledge", data=form).status_code == 200  # followed
    form = hidden_fields(console.get(page).text, f"{page}/assign")
    console.client.headers["Accept-Language"] = "zh-CN"
    twice = console.client.post(f"{page}/acknowledge", data=form, follow_redirects=False)
    assert twice.status_code == 409
    assert "工单当前状态下不能执行此操作。" in twice.text


def test_ticket_page_timeline_and_unknown_ticket(console: Console) -> None:
    hq = console.hq
    site = {"name": "Shanghai TX", "timezone": "Asia/Shanghai"}
    assert hq.post(hq.user_token(Role.ADMIN), "/api/v1/sites", site).status_code == 201
    agent = _fault(hq, site="Shanghai TX")
    hq.clock.advance(timedelta(minutes=3))
    assert hq.post_events(agent, [hq.event("clear")]).status_code == 200
    console.as_user("vera", Role.VIEWER)
    html = console.get(f"/tickets/{_ticket(hq).id}").text
    timeline = html.split('id="timeline"')[1]
    assert (
        timeline.index("alarm raised") < timeline.index("opened") < timeline.index("alarm cleared")
    )
    # In the site's zone, named.
    assert "Mar 2, 2026, 4:03:00\u202fPM Asia/Shanghai</time>" in timeline
    missing = console.get("/tickets/999")
    assert missing.status_code == 404 and "There is no such ticket." in missing.text


async def test_services_publish_changes_once_committed(hq: HQ) -> None:
    sub = feed.subscribe()
    try:
        _fault(hq)  # the app publishes from its own thread, onto this test's loop
        wanted = {Topic.ALARMS, Topic.TICKETS, Topic.SITES}
        topics: set[Topic] = set()
        while not wanted <= topics:
            change = await asyncio.wait_for(sub.queue.get(), timeout=10)
            assert change is not None  # None: the feed closed
            topics.add(change.topic)
    finally:
        feed.unsubscribe(sub)
