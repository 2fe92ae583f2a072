"""The ticket timeline's history entries the services write (an escalation step, a regrade, a
page) are shown in the user's language, built from their data, with none of the English
detail the API keeps. In-process against the real app on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from hq_server.core.domain import Role
from tests.hq.test_paging import add_users, make_team
from tests.web.console import Console


def test_escalation_regrade_and_page_entries_are_shown_in_chinese(console: Console) -> None:
    hq = console.hq
    admin = hq.user_token(Role.ADMIN)
    add_users(hq, "li")
    make_team(hq, admin, ["li"])
    agent = hq.enroll("site-a")
    assert hq.post_events(agent, [hq.event(grade=3)]).status_code == 200
    engineer = hq.user_token(Role.ENGINEER, name="wang")
    body = {"grade": 1, "reason": "客户反映全部中断"}
    assert hq.post(engineer, "/api/v1/tickets/1/regrade", body).status_code == 200
    hq.clock.advance(timedelta(hours=1))  # past the grade-1 acknowledge deadline
    assert hq.step().escalated >= 1
    history = hq.get(engineer, "/api/v1/tickets/1").json()["history"]
    english = [h["detail"] for h in history if h["what"] in ("escalated", "grade_changed", "paged")]
    assert {h["what"] for h in history} >= {"escalated", "grade_changed", "paged"}, history

    console.as_user("erin", Role.VIEWER)
    console.post_form("/", "/language", {"language": "zh_CN", "next": "/"})
    page = console.get("/tickets/1").text
    for detail in english:  # what the API keeps, in English
        assert detail not in page, detail
    for sentence in ("escalated to", "grade 3 ->", "deadlines count from", "paged li", "not ack"):
        assert sentence not in page, sentence
    assert "前确认：已升级到第 1 级（值班工程师）：无联系人" in page  # noqa: RUF001
    assert "等级 3 一般 → 1 重大（1）：客户反映全部中断；时限自" in page  # noqa: RUF001
    assert "工单已创建：已呼叫 li" in page  # noqa: RUF001
