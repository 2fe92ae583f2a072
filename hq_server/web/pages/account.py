"""Logging in and out of the console, and choosing its language."""

from __future__ import annotations

import hmac
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hq_server.access import sessions
from hq_server.access.sessions import ConsoleUser
from hq_server.access.throttle import LoginThrottle
from hq_server.access.users import username_key
from hq_server.core.errors import AuthError, LoginThrottled
from hq_server.web import i18n
from hq_server.web.auth import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Anyone,
    Refused,
    Viewer,
    app_state,
    login_page,
    safe_next,
    set_cookie,
)
from hq_server.web.i18n import N_
from hq_server.web.render import render

router = APIRouter(include_in_schema=False)
# Hidden fields of the login form carrying a form posted after the session ended.
KEPT_PREFIX = "kept."
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
# How the fields of a kept form are named when it is shown again (others by their own name);
# fields that are not for reading (a ticket's version) are sent back but not shown.
FIELD_LABELS = {
    "seen": N_("What was seen"),
    "done": N_("What was done"),
    "time_spent_minutes": N_("Minutes spent"),
    "assignee": N_("Assignee"),
    "on_duty": N_("On duty"),
    "status": N_("New status"),
    "note": N_("Note"),
    "cause": N_("Cause"),
    "fix": N_("Fix"),
    "tested": N_("Tested"),
    "confirmed_by_customer": N_("Confirmed by the customer"),
    "faq": N_("Documented as FAQ"),
    "faq_text": N_("FAQ entry"),
    "reason": N_("Reason"),
}
NOT_SHOWN = frozenset({"version", "next"})


@router.get("/login")
async def get_login(request: Request, visit: Anyone, next: str = "/") -> Response:
    """The login form (or straight back, when already logged in)."""
    if visit.user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return login_page(request, visit.t, next_path=safe_next(next))


def _login_csrf_ok(request: Request, form: dict[str, str]) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = form.get(CSRF_FIELD, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), given.encode())


def _start(
    request: Request, username: str, password: str, previous: ConsoleUser | None
) -> tuple[str, ConsoleUser]:
    """Open a session; the one this browser had ends with it (no session outlives its cookie
    being replaced)."""
    db, clock, settings = app_state(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    client = request.client.host if request.client else ""
    now = clock.now()
    with (
        throttle.attempt(username_key(username), client or None, now),
        db.writer() as session,
        session.begin(),
    ):
        started = sessions.start(
            session,
            username,
            password,
            now,
            lifetime=settings.console_session_lifetime,
            client=client,
        )
        if previous is not None:
            sessions.end(session, previous.session_id)
        # Sessions past their end are of no use to anyone: gone at the next login.
        sessions.purge(session, now, settings.console_idle_timeout)
        return started


@router.post("/login")
async def post_login(request: Request, visit: Anyone) -> Response:
    """Check the password, open a session; back to the page, or to re-send a kept form."""
    form, t = visit.form, visit.t
    username = form.get("username", "")[:64]
    next_path = safe_next(form.get("next"))
    kept = {k[len(KEPT_PREFIX) :]: v for k, v in form.items() if k.startswith(KEPT_PREFIX)}
    if not _login_csrf_ok(request, form):
        request.state.audit_summary = "console login refused: no valid CSRF token"
        raise Refused(t, 403, N_("This form was refused: it did not carry its security token."))
    request.state.audit_actor = username
    try:
        cookie, user = await run_in_threadpool(
            _start, request, username, form.get("password", ""), visit.user
        )
    except LoginThrottled as exc:
        request.state.audit_summary = f"login refused, password not checked: {exc}"
        error = t.gettext(
            N_("Too many failed logins; try again in %(seconds)s seconds."),
            seconds=exc.retry_after_s,
        )
        return login_page(
            request,
            t,
            next_path=next_path,
            kept=kept,
            error=error,
            username=username,
            status_code=429,
        )
    except AuthError as exc:
        request.state.audit_summary = f"login failed: {exc}"
        error = t.gettext(N_("Unknown user, wrong password, or the user is disabled."))
        return login_page(
            request,
            t,
            next_path=next_path,
            kept=kept,
            error=error,
            username=username,
            status_code=401,
        )
    request.state.audit_summary = f"console log in as {user.role}"
    request.state.audit_targets = {"user_id": user.user_id}
    t = i18n.translator(user.language) if user.language else t
    if kept:
        response: Response = render(
            request,
            "resubmit.html",
            t,
            user,
            action=next_path,
            back=next_path.rsplit("/", 1)[0] or "/",
            kept=kept,
            shown=[
                (t.gettext(FIELD_LABELS[name]) if name in FIELD_LABELS else name, value)
                for name, value in kept.items()
                if name not in NOT_SHOWN
            ],
        )
    else:
        response = RedirectResponse(next_path, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout")
async def post_logout(request: Request, visit: Viewer) -> Response:
    """End the session."""
    db = app_state(request)[0]

    def end() -> None:
        with db.writer() as session, session.begin():
            sessions.end(session, visit.who.session_id)

    await run_in_threadpool(end)
    request.state.audit_summary = "console log out"
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def post_language(request: Request, visit: Anyone) -> Response:
    """Switch the console's language; remembered on the user (and in a cookie)."""
    form, t = visit.form, visit.t
    user = visit.user
    if user is not None:
        token_ok = sessions.csrf_matches(user.csrf_token, form.get(CSRF_FIELD))
    else:
        token_ok = _login_csrf_ok(request, form)
    if not token_ok and user is None and request.cookies.get(SESSION_COOKIE):
        # The page was left open past its session: log in again, nothing is switched.
        request.state.audit_summary = "refused: language switch after the session ended"
        login = f"/login?next={quote(safe_next(form.get('next')))}"
        return RedirectResponse(login, status_code=303)
    if not token_ok:
        request.state.audit_summary = "refused: form without a valid CSRF token"
        raise Refused(t, 403, N_("This form was refused: it did not carry its security token."))
    language = i18n.known(form.get("language"))
    if language is None:
        raise Refused(t, 422, N_("Unknown language."))
    if user is not None:
        db = app_state(request)[0]

        def remember() -> None:
            with db.writer() as session, session.begin():
                sessions.set_language(session, user.user_id, language)

        await run_in_threadpool(remember)
    request.state.audit_summary = f"console language {language}"
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    set_cookie(request, response, LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_AGE)
    return response
