"""Driving the console in-process (TestClient on the real app and database): users, logging
in through the login form, posting forms with their CSRF token, reading pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from hq_server.access.users import create_user
from hq_server.core.domain import Role
from tests.hq.conftest import HQ

PASSWORD = "Correct-Horse-42-battery"
_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[^"]+)" value="(?P<value>[^"]*)"')


def hidden_fields(html: str, action: str | None = None) -> dict[str, str]:
    """The hidden inputs of the form posting to `action` (or of the whole page)."""
    if action is not None:
        start = html.index(f'action="{action}"')
        html = html[start : html.index("</form>", start)]
    return {m["name"]: m["value"].replace("&amp;", "&") for m in _HIDDEN.finditer(html)}


@dataclass
class Console:
    """A browser's view of the console: the HQ app, a cookie jar, and the user logged in."""

    hq: HQ
    username: str = ""

    @property
    def client(self) -> Any:
        """The TestClient (keeps cookies)."""
        return self.hq.client

    def add_user(self, username: str, role: Role, password: str = PASSWORD) -> None:
        """Create an HQ user."""
        with self.hq.db.writer() as session, session.begin():
            create_user(session, username, role, password, self.hq.clock.now())

    def login(
        self, username: str, password: str = PASSWORD, next_path: str = "/"
    ) -> httpx.Response:
        """Log in through the login form (not following the redirect)."""
        page = self.client.get("/login", params={"next": next_path})
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text, "/login")
        fields.update(username=username, password=password)
        response: httpx.Response = self.client.post("/login", data=fields, follow_redirects=False)
        if response.status_code == 303:
            self.username = username
        return response

    def as_user(self, username: str, role: Role) -> Console:
        """Create the user and log in."""
        self.add_user(username, role)
        response = self.login(username)
        assert response.status_code == 303, response.text
        return self

    def get(self, path: str, **params: Any) -> httpx.Response:
        """GET a page (redirects not followed)."""
        response: httpx.Response = self.client.get(path, params=params, follow_redirects=False)
        return response

    def post_form(
        self, page: str, action: str, fields: dict[str, str] | None = None, *, csrf: bool = True
    ) -> httpx.Response:
        """Post the form of `page` that goes to `action`, with its hidden fields (the CSRF
        token among them unless csrf=False) and `fields` typed in."""
        html = self.get(page).text
        data = hidden_fields(html, action)
        if not csrf:
            data.pop("csrf_token", None)
        data.update(fields or {})
        response: httpx.Response = self.client.post(action, data=data, follow_redirects=False)
        return response
