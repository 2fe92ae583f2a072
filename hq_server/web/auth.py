"""Who is at the console: the session cookie, the request's language, roles as in the API, and
CSRF checks on every form.

A page declares what it needs with a dependency: `Anyone` (login page), `Viewer`, `Engineer`
or `Admin` (a `Visit`: the user and the request's translator). For a POST the dependency also
reads the form and refuses it (403 page) unless it carries the session's CSRF token. Without a
live session, a GET is sent to the login page and back; a POST is answered with the login page
keeping every field that was typed, so that nothing is lost (docs/console.md).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message

from hq_server.access import sessions
from hq_server.access.auth import UserPrincipal
from hq_server.access.sessions import ConsoleUser
from hq_server.core.clock import Clock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.store.db import Database
from hq_server.web import i18n
from hq_server.web.i18n import N_, ROLE_NAMES, Translator
from hq_server.web.render import render

SESSION_COOKIE = "sw_session"
LANGUAGE_COOKIE = "sw_lang"
# Double-submit token of the forms shown before login (login, language switch).
LOGIN_CSRF_COOKIE = "sw_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# The token_id of a console session's principal: no API token is involved.
CONSOLE_TOKEN_ID = 0
# A console form larger than this is refused before it is read.
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 200
# The values of Sec-Fetch-Site of a post the console accepts: its own pages ("same-origin"), or
# the user's own doing ("none"). "same-site" is refused too: another port of the same host
# shares the console's cookies (cookies do not separate ports) and counts as the same site.
OWN_POSTS = frozenset({"same-origin", "none"})
# Form fields never kept for a re-submission after login.
NEVER_KEPT = frozenset({CSRF_FIELD, "password"})


@dataclass(slots=True)
class Visit:
    """One request at the console: its user (None before login), translator and form."""

    user: ConsoleUser | None
    t: Translator
    form: dict[str, str] = field(default_factory=dict)
    now: datetime | None = None

    @property
    def who(self) -> ConsoleUser:
        """The logged-in user (pages that require a role have one)."""
        assert self.user is not None
        return self.user


class LoginRequired(Exception):
    """No live session: log in, then come back (with what was typed, for a POST)."""

    def __init__(self, t: Translator, kept: dict[str, str] | None = None) -> None:
        super().__init__("login required")
        self.t = t
        self.kept = kept or {}


class Refused(Exception):
    """Answer with the error page: a status and a message (marked with N_)."""

    def __init__(self, t: Translator, status: int, message: str, **values: object) -> None:
        super().__init__(message)
        self.t = t
        self.status = status
        self.message = message
        self.values = values


def app_state(request: Request) -> tuple[Database, Clock, Settings]:
    """The app's database, clock and settings."""
    state = request.app.state
    return state.db, state.clock, state.settings


def is_secure(request: Request) -> bool:
    """Whether the browser reached HQ over TLS (directly or through a trusted proxy)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, **extra: Any) -> None:
    """A console cookie: HttpOnly, SameSite=Lax, Secure over TLS, for the whole console."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=is_secure(request),
        path="/",
        **extra,
    )


def translator_for(request: Request, user: ConsoleUser | None) -> Translator:
    """The user's chosen language, else the language cookie, else Accept-Language's."""
    chosen = (user.language if user else None) or request.cookies.get(LANGUAGE_COOKIE)
    language = i18n.known(chosen) or i18n.negotiate(request.headers.get("accept-language"))
    return i18n.translator(language)


def _lookup(request: Request, cookie: str) -> ConsoleUser | None:
    db, clock, settings = app_state(request)
    now = clock.now()
    with db.session() as session:
        user = sessions.find(session, cookie, now, settings.console_idle_timeout)
    if user is not None and user.touch_due and not _watching(request):
        with db.writer() as session, session.begin():
            sessions.touch(session, user.session_id, now)
    return user


# Watching live updates is not "using" the console: it does not move the idle clock. Neither
# does a page part fetched again because the stream said it changed (console.js sends
# LIVE_REFRESH_HEADER with those), or an open page would keep its session for ever.
LIVE_PATH = "/live"
LIVE_REFRESH_HEADER = "x-sw-refresh"


def _watching(request: Request) -> bool:
    return request.url.path == LIVE_PATH or LIVE_REFRESH_HEADER in request.headers


async def current_user(request: Request) -> ConsoleUser | None:
    """The user of the request's live session, or None; remembered for the request."""
    if hasattr(request.state, "console_user"):
        found: ConsoleUser | None = request.state.console_user
        return found
    cookie = request.cookies.get(SESSION_COOKIE)
    user = await run_in_threadpool(_lookup, request, cookie) if cookie else None
    request.state.console_user = user
    if user is not None:  # read by the audit middleware (hq_server.api.audit)
        request.state.principal = UserPrincipal(
            token_id=CONSOLE_TOKEN_ID, name=user.username, role=user.role, user_id=user.user_id
        )
    return user


async def read_form(request: Request, t: Translator) -> dict[str, str]:
    """The posted form's text fields (413 page when too large, with or without a length)."""
    length = request.headers.get("content-length")
    too_large = Refused(t, 413, N_("The form is too large."))
    declared = length is None or (length.isascii() and length.isdigit() and len(length) <= 12)
    if not declared or (length is not None and int(length) > MAX_FORM_BYTES):
        raise too_large
    # Counted as it arrives: a chunked body has no length to refuse up front, and Starlette's
    # parsers would keep all of it.
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > MAX_FORM_BYTES:
                raise too_large
        return message

    form = await Request(request.scope, counted).form(max_files=0, max_fields=MAX_FORM_FIELDS)
    return {key: value for key, value in form.items() if isinstance(value, str)}


def from_here(request: Request) -> bool:
    """Whether a post comes from the console's own pages, as far as the browser says: its
    Sec-Fetch-Site, else its Origin (compared with the Host it was sent to). Neither header
    (an older browser, a script): the CSRF token decides alone."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() in OWN_POSTS
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin.strip().lower() in (f"http://{host}".lower(), f"https://{host}".lower())


def csrf_given(request: Request, form: dict[str, str]) -> str | None:
    """The CSRF token a request carries (form field, or header for scripted posts)."""
    return form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)


def _visit(role: Role | None) -> Callable[[Request], Awaitable[Visit]]:
    async def dependency(request: Request) -> Visit:
        user = await current_user(request)
        t = translator_for(request, user)
        posted = request.method not in ("GET", "HEAD")
        if posted and not from_here(request):
            request.state.audit_summary = "refused: form posted from another site"
            raise Refused(t, 403, N_("This form was refused: it did not carry its security token."))
        form = await read_form(request, t) if posted else {}
        visit = Visit(user=user, t=t, form=form, now=app_state(request)[1].now())
        if role is None:
            return visit
        if user is None:
            raise LoginRequired(
                t, {k: v for k, v in form.items() if k not in NEVER_KEPT} if posted else None
            )
        if posted and not sessions.csrf_matches(user.csrf_token, csrf_given(request, form)):
            request.state.audit_summary = "refused: form without a valid CSRF token"
            raise Refused(t, 403, N_("This form was refused: it did not carry its security token."))
        if not user.allows(role):
            request.state.audit_summary = f"refused: needs the {role.value} role"
            raise Refused(
                t,
                403,
                N_("You may not do this: it needs the %(role)s role."),
                role=t.gettext(ROLE_NAMES[role.value]),
            )
        return visit

    return dependency


Anyone = Annotated[Visit, Depends(_visit(None))]
Viewer = Annotated[Visit, Depends(_visit(Role.VIEWER))]
Engineer = Annotated[Visit, Depends(_visit(Role.ENGINEER))]
Admin = Annotated[Visit, Depends(_visit(Role.ADMIN))]


def safe_next(target: str | None) -> str:
    """A path on this console to return to (never another site): "/" unless `target` is one."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if target.startswith(("/api/", "/login", "/logout", "/live")):
        return "/"
    return target


def login_csrf(request: Request) -> str:
    """The pre-login CSRF token of this browser (made when missing; see LOGIN_CSRF_COOKIE)."""
    existing = request.cookies.get(LOGIN_CSRF_COOKIE)
    token: str | None = getattr(request.state, "login_csrf", None) or existing
    if not token:
        token = secrets.token_urlsafe(32)
    request.state.login_csrf = token
    return token


def login_page(
    request: Request,
    t: Translator,
    *,
    next_path: str,
    kept: dict[str, str] | None = None,
    error: str | None = None,
    username: str = "",
    status_code: int = 200,
) -> Response:
    """The login form; `kept`: fields of a form posted after the session ended."""
    token = login_csrf(request)
    response = render(
        request,
        "login.html",
        t,
        None,
        status_code=status_code,
        next_path=next_path,
        kept=kept or {},
        error=error,
        username=username,
        login_csrf=token,
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


async def on_login_required(request: Request, exc: Exception) -> Response:
    """GET: to the login page and back. POST: the login page keeping the typed fields."""
    assert isinstance(exc, LoginRequired)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.url.path == LIVE_PATH:  # 204 tells EventSource to stop; the page reloads
        return Response(status_code=204)
    if request.method in ("GET", "HEAD"):
        if request.headers.get("hx-request"):  # a fragment: the whole page must go to login
            return Response(status_code=204, headers={"HX-Redirect": f"/login?next={quote(here)}"})
        return RedirectResponse(f"/login?next={quote(here)}", status_code=303)
    message = N_("Your session has ended. Log in again to send what you typed.")
    return login_page(
        request,
        exc.t,
        next_path=here,
        kept=exc.kept,
        error=exc.t.gettext(message),
        status_code=401,
    )


async def on_refused(request: Request, exc: Exception) -> Response:
    """The error page with its status."""
    assert isinstance(exc, Refused)
    user: ConsoleUser | None = getattr(request.state, "console_user", None)
    return render(
        request,
        "error.html",
        exc.t,
        user,
        status_code=exc.status,
        message=exc.t.gettext(exc.message, **exc.values),
    )
