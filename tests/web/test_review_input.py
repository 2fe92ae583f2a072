"""Findings of the console's review (issue 13): input that made a page fail with a 500 or answer
with the API's English JSON instead of a page in the user's language. In-process against the
real app on SQLite and PostgreSQL (tests/web/console.py)."""

from __future__ import annotations

import pytest

from hq_server.core.domain import Role
from tests.web.console import Console, hidden_fields


@pytest.fixture
def engineer(console: Console) -> Console:
    """An engineer logged in, with one open ticket (id 1)."""
    hq = console.hq
    agent = hq.enroll()
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    return console.as_user("erin", Role.ENGINEER)


@pytest.mark.parametrize("grade", ["²", "9" * 5000])
def test_a_grade_that_only_looks_like_a_number_is_shown_next_to_its_field(
    engineer: Console, grade: str
) -> None:
    """str.isdigit() is true for "²" and for 5,000 digits, and int() refuses both: a 500."""
    response = engineer.get("/tickets", grade=grade)
    assert response.status_code == 422
    assert "A grade is a number from 1 to 5." in response.text


@pytest.mark.parametrize("page", ["²", "9" * 5000, "99999999999999999999"])
def test_any_page_number_gives_a_page(engineer: Console, page: str) -> None:
    """A page past the 64-bit range overflowed the database's OFFSET (a 500 or the API's
    JSON); a page that only looks like a number failed int()."""
    response = engineer.get("/tickets", page=page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


def test_minutes_that_only_look_like_a_number_are_shown_next_to_their_field(
    engineer: Console,
) -> None:
    response = engineer.post_form(
        "/tickets/1", "/tickets/1/comment", {"seen": "VSWR", "time_spent_minutes": "²"}
    )
    assert response.status_code == 422
    assert "A whole number of minutes from 0 to" in response.text


@pytest.mark.parametrize("ticket", ["99999999999999999999", "0"])
def test_a_ticket_number_out_of_range_is_no_such_ticket(engineer: Console, ticket: str) -> None:
    """The console page of an id past the database's integer: a page, not the API's JSON."""
    response = engineer.get(f"/tickets/{ticket}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


def test_console_errors_are_pages_in_the_users_language(engineer: Console) -> None:
    """An unknown console path, a wrong method and a malformed id answered with the API's
    English JSON ({"detail": "Not Found"}), outside the catalogues."""
    zh = {"Accept-Language": "zh-CN"}
    engineer.post_form("/", "/language", {"language": "zh_CN", "next": "/"})
    for path in ("/no-such-page", "/tickets/abc", "/logout"):
        response = engineer.client.get(path, headers=zh, follow_redirects=False)
        assert response.headers["content-type"].startswith("text/html"), (path, response.text)
        assert '<html lang="zh-CN">' in response.text, path
    # The API keeps its JSON.
    api = engineer.client.get("/api/v1/no-such-thing")
    assert api.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("field", ["q", "site", "assignee"])
def test_a_nul_character_in_a_filter_is_shown_next_to_its_field(
    engineer: Console, field: str
) -> None:
    """PostgreSQL refuses NUL in text: the filter reached the database and the console
    answered with the API's English JSON ("value refused by the database")."""
    response = engineer.get("/tickets", **{field: "tx\x00"})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")


def test_a_nul_character_in_a_user_name_is_a_failed_login(console: Console) -> None:
    """On PostgreSQL the login's user lookup failed in the database: JSON, and the attempt
    was not counted by the login throttle (an error that is not a wrong password)."""
    page = console.client.get("/login")
    fields = hidden_fields(page.text, "/login")
    fields.update(username="erin\x00", password="guess")
    response = console.client.post("/login", data=fields, follow_redirects=False)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    # The API's login shares the check (hq_server.access.users): a 401 there too.
    body = {"username": "erin\x00", "password": "guess"}
    assert console.hq.post(None, "/api/v1/auth/token", body).status_code == 401
