"""The on-call page, in-process on SQLite and PostgreSQL: who is on duty now and next, the gaps
of a rota shown as faults (on the overview too), rotations and overrides, unreachable contacts;
in both languages."""

from __future__ import annotations

from datetime import datetime, timedelta

from hq_server.core.domain import Role
from hq_server.web.i18n import translator
from tests.hq.conftest import HQ
from tests.web.console import Console


def _team(hq: HQ, admin: str, members: list[str], starts_on: str) -> dict[str, object]:
    team = hq.post(admin, "/api/v1/oncall/teams", {"name": "north", "timezone": "Asia/Shanghai"})
    assert team.status_code == 201, team.text
    body = {"period": "daily", "handover": "00:00", "starts_on": starts_on, "members": members}
    response = hq.call(
        "PUT", admin, f"/api/v1/oncall/teams/{team.json()['id']}/rotations/primary", body
    )
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_oncall_page_shows_duty_now_next_gaps_and_overrides(console: Console) -> None:
    hq = console.hq
    console.add_user("li", Role.ENGINEER)
    console.add_user("wang", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    # The rotation starts in two days: until then nobody is on duty, a gap.
    team = _team(hq, admin, ["li", "wang"], "2026-03-04")
    now = hq.clock.now()
    cover = {
        "username": "wang",
        "starts_at": (now + timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=3)).isoformat(),
        "reason": "covers the evening",
    }
    assert hq.post(admin, f"/api/v1/oncall/teams/{team['id']}/overrides", cover).status_code == 201
    console.as_user("vera", Role.VIEWER)
    html = console.get("/oncall").text
    assert "north" in html and "Asia/Shanghai" in html
    assert "Nobody on duty (next 14 days):" in html
    assert "li, wang" in html  # the members in turn
    assert "covers the evening" in html
    assert 'href="/oncall"' in html  # in the navigation

    # In Chinese (the browser's language; the user chose none).
    zh = console.client.get("/oncall", headers={"Accept-Language": "zh-CN"}).text
    assert "当前值班" in zh and "无人值班时段" in zh


def test_overview_shows_the_gaps_of_a_rota(console: Console) -> None:
    hq = console.hq
    console.add_user("li", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    # Now is 2 March 2026, 16:00 in Shanghai; the rotation starts on 4 March: a gap until then.
    team = _team(hq, admin, ["li"], "2026-03-04")
    [gaps] = hq.get(admin, "/api/v1/oncall/gaps").json()
    [gap] = gaps["gaps"]
    console.as_user("vera", Role.VIEWER)
    html = console.get("/").text
    assert "On-call gaps" in html and "Nobody on duty (next 14 days):" in html
    assert '<a href="/oncall">Open the on-call page</a>' in html
    # The same gap as the API's, in the team's zone, the zone named, formatted like the page's
    # other times.
    en = translator("en")
    start = datetime.fromisoformat(gap["starts_at"])
    end = datetime.fromisoformat(gap["ends_at"])
    assert end == datetime.fromisoformat("2026-03-03T16:00:00+00:00")  # midnight in Shanghai
    shown = f"<b>north</b> {en.when(start, 'Asia/Shanghai')} to {en.when(end, 'Asia/Shanghai')}"
    assert shown in html and "Asia/Shanghai" in en.when(end, "Asia/Shanghai")
    assert team["gaps"]  # flagged when saved, too

    zh = console.client.get("/", headers={"Accept-Language": "zh-CN"}).text
    assert "值班空缺" in zh and "打开值班页面" in zh
    assert translator("zh_CN").when(end, "Asia/Shanghai") in zh


def test_overview_shows_no_gaps_when_every_time_is_covered(console: Console) -> None:
    hq = console.hq
    console.as_user("vera", Role.VIEWER)
    assert "On-call gaps" not in console.get("/").text  # no team at all
    console.add_user("li", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    team = _team(hq, admin, ["li"], "2026-03-01")  # on duty from before now, every day
    assert team["gaps"] == []
    html = console.get("/").text
    assert "On-call gaps" not in html and "Nobody on duty" not in html
    assert "Open the on-call page" not in html


def test_oncall_page_lists_unreachable_contacts(console: Console) -> None:
    hq = console.hq
    console.add_user("li", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    _team(hq, admin, ["li"], "2026-03-01")
    with hq.db.writer() as session, session.begin():
        from hq_server.access.users import find_user
        from hq_server.store.models import EngineerContact

        user = find_user(session, "li")
        assert user is not None
        session.add(
            EngineerContact(
                user_id=user.id, language="en", channels_sealed="x",
                channels_shown={"channels": [{"kind": "webhook", "target": "http://h/hook"}]},
                failures={"0": 5}, last_error="webhook: connection refused",
                updated_at=hq.clock.now(),
            )
        )  # fmt: skip
    console.as_user("vera", Role.VIEWER)
    html = console.get("/oncall").text
    assert "Unreachable contacts" in html and "connection refused" in html


def test_ticket_page_lists_the_notifications_sent(console: Console) -> None:
    hq = console.hq
    console.add_user("li", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    _team(hq, admin, ["li"], "2026-03-01")
    agent = hq.enroll("site-a")
    assert hq.post_events(agent, [hq.event(grade=1)]).status_code == 200
    [ticket] = hq.tickets(admin)
    console.as_user("vera", Role.VIEWER)
    html = console.get(f"/tickets/{ticket['id']}").text
    # li has no contact methods: the page is queued, and fails when the outbox sends it.
    assert "Notifications sent" in html and "new fault" in html and "li" in html
    hq.step()
    html = console.get(f"/tickets/{ticket['id']}").text
    assert "notification pending" in html and "no contact methods" in html  # retried later


def test_an_engineer_covers_a_shift_through_the_form(console: Console) -> None:
    hq = console.hq
    console.add_user("li", Role.ENGINEER)
    admin = hq.user_token(Role.ADMIN)
    team = _team(hq, admin, ["li"], "2026-03-01")
    console.as_user("wang", Role.ENGINEER)
    action = f"/oncall/{team['id']}/overrides"
    # Tuesday night, 3 March 2026, 18:00 to 08:00 in Shanghai (10:00 to 00:00 UTC).
    typed = {"username": "wang", "role": "primary", "starts_at": "2026-03-03T18:00",
             "ends_at": "2026-03-04T08:00", "reason": "I cover Tuesday night"}  # fmt: skip
    bad = console.post_form("/oncall", action, typed | {"ends_at": "2026-03-03T17:00"})
    assert bad.status_code == 422
    assert "The end must come after the start." in bad.text
    assert 'value="I cover Tuesday night"' in bad.text  # what was typed is kept
    nobody = console.post_form("/oncall", action, typed | {"username": "zhao"})
    assert nobody.status_code == 422 and "There is no HQ user of that name." in nobody.text
    no_csrf = console.post_form("/oncall", action, typed, csrf=False)
    assert no_csrf.status_code == 403
    done = console.post_form("/oncall", action, typed)
    assert done.status_code == 303, done.text
    duty = hq.get(admin, "/api/v1/oncall/duty", at="2026-03-03T12:00:00Z").json()
    primary = next(d for d in duty if d["role"] == "primary")
    assert primary["now"] == "wang" and primary["next"] == "li"
    assert "I cover Tuesday night" in console.get("/oncall").text
    # A viewer sees no form.
    console.client.cookies.clear()
    console.as_user("vera", Role.VIEWER)
    assert f'action="{action}"' not in console.get("/oncall").text
