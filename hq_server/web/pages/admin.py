"""Administration (admins only): users and their roles (create, change role, disable), API
tokens (create: the token is shown once; revoke), escalation chains and calendars as they are
set, and the audit log with filters. Through the services the API uses (access.users,
access.auth, access.audit, tickets.escalation, tickets.deadlines)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hq_server.access import audit, users
from hq_server.access.auth import create_api_token, list_api_tokens, revoke_api_token
from hq_server.core.domain import Role
from hq_server.core.errors import Conflict, InvalidInput, NotFound
from hq_server.tickets import deadlines, escalation
from hq_server.web.auth import Admin, Refused, Visit, app_state
from hq_server.web.i18n import N_
from hq_server.web.pages.maintenance import parse_local
from hq_server.web.render import navigation, render

router = APIRouter(include_in_schema=False)
navigation("/admin/users", N_("Administration"), 90, Role.ADMIN)

MAX_NAME = 64
MAX_TOKEN_DAYS = 3650
AUDIT_SHOWN = 200
ROLES = tuple(r.value for r in Role)
SECTIONS = (
    ("/admin/users", N_("Users")),
    ("/admin/tokens", N_("API tokens")),
    ("/admin/chains", N_("Escalation chains")),
    ("/admin/calendars", N_("Calendars")),
    ("/admin/audit", N_("Audit log")),
)


def _render(request: Request, visit: Visit, template: str, **values: Any) -> Response:
    return render(request, template, visit.t, visit.user, sections=SECTIONS, **values)


# --- users -----------------------------------------------------------------------------------


def _users_page(
    request: Request,
    visit: Visit,
    *,
    status_code: int = 200,
    form: str = "",
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        rows = users.list_users(session)
        return _render(
            request,
            visit,
            "admin/users.html",
            status_code=status_code,
            rows=rows,
            roles=ROLES,
            form=form,
            typed=typed or {},
            errors=errors or {},
        )


@router.get("/admin/users")
async def user_list(request: Request, visit: Admin) -> Response:
    """Users, by name, with the forms that manage them."""
    return await run_in_threadpool(_users_page, request, visit)


@router.post("/admin/users")
async def user_create(request: Request, visit: Admin) -> Response:
    """Create a user; a taken name or a weak password is shown next to its field."""
    t = visit.t
    typed = {k: visit.form.get(k, "") for k in ("username", "role")}
    username = visit.form.get("username", "").strip()
    password = visit.form.get("password", "")
    role = visit.form.get("role", "")
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = t.gettext(N_("Required."))
    elif len(username) > MAX_NAME:
        errors["username"] = t.gettext(N_("At most %(count)s characters."), count=MAX_NAME)
    if role not in ROLES:
        errors["role"] = t.gettext(N_("Unknown role."))
    if not password:
        errors["password"] = t.gettext(N_("Required."))
    db, clock, settings = app_state(request)

    def run() -> dict[str, str]:
        with db.writer() as session, session.begin():
            try:
                user = users.create_user(
                    session,
                    username,
                    Role(role),
                    password,
                    clock.now(),
                    min_length=settings.password_min_length,
                )
            except Conflict:
                return {"username": t.gettext(N_("A user of this name exists (case aside)."))}
            except InvalidInput as exc:
                name = str(exc.loc[0]) if exc.loc else "username"
                if name == "password":
                    message = t.gettext(
                        N_(
                            "The password is too weak: at least %(count)s characters, not "
                            "common, not containing the user name."
                        ),
                        count=settings.password_min_length,
                    )
                else:
                    message = t.gettext(N_("Letters, digits and . _ @ - only."))
                return {name: message}
            request.state.audit_summary = f"create user {user.username} ({user.role})"
            request.state.audit_targets = {"user_id": user.id}
            return {}

    if not errors:
        errors = await run_in_threadpool(run)
    if errors:
        request.state.audit_summary = f"refused user: bad {', '.join(errors)}"
        return await run_in_threadpool(
            lambda: _users_page(
                request, visit, status_code=422, form="create", typed=typed, errors=errors
            )
        )
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{user_id}/{change}")
async def user_change(request: Request, user_id: int, change: str, visit: Admin) -> Response:
    """Change a user's role, or disable or enable the user (disabling revokes its tokens)."""
    if change not in ("role", "disable", "enable"):
        raise Refused(visit.t, 404, N_("There is no such action."))
    role = visit.form.get("role", "")
    if change == "role" and role not in ROLES:
        errors = {f"role-{user_id}": visit.t.gettext(N_("Unknown role."))}
        return await run_in_threadpool(
            lambda: _users_page(request, visit, status_code=422, errors=errors)
        )
    db, clock, _settings = app_state(request)

    def run() -> None:
        with db.writer() as session, session.begin():
            try:
                user = users.get_user(session, user_id, for_update=True)
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such user.")) from None
            if change == "role":
                users.set_role(user, Role(role))
                summary = f"change user {user.username}: role={role}"
            else:
                revoked = users.set_disabled(session, user, change == "disable", clock.now())
                summary = f"change user {user.username}: disabled={change == 'disable'}"
                if revoked:
                    summary += f"; {revoked} API tokens revoked"
            request.state.audit_summary = summary
            request.state.audit_targets = {"user_id": user.id}

    await run_in_threadpool(run)
    return RedirectResponse("/admin/users", status_code=303)


# --- API tokens ------------------------------------------------------------------------------


def _tokens_page(
    request: Request,
    visit: Visit,
    *,
    status_code: int = 200,
    created: str | None = None,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    db, clock, _settings = app_state(request)
    now = clock.now()
    with db.session() as session:
        rows = list_api_tokens(session)
    return _render(
        request,
        visit,
        "admin/tokens.html",
        status_code=status_code,
        rows=[(r, r.state(now)) for r in reversed(rows)],
        roles=ROLES,
        created=created,
        typed=typed or {},
        errors=errors or {},
    )


@router.get("/admin/tokens")
async def token_list(request: Request, visit: Admin) -> Response:
    """API tokens, newest first, never showing a token."""
    return await run_in_threadpool(_tokens_page, request, visit)


@router.post("/admin/tokens")
async def token_create(request: Request, visit: Admin) -> Response:
    """A new API token, shown on this answer only (HQ keeps its hash)."""
    t = visit.t
    name = visit.form.get("name", "").strip()
    role = visit.form.get("role", "")
    days_text = visit.form.get("days", "").strip()
    typed = {"name": name, "role": role, "days": days_text}
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = t.gettext(N_("Required."))
    elif len(name) > 100:
        errors["name"] = t.gettext(N_("At most %(count)s characters."), count=100)
    if role not in ROLES:
        errors["role"] = t.gettext(N_("Unknown role."))
    if not days_text.isdigit() or not 1 <= int(days_text) <= MAX_TOKEN_DAYS:
        errors["days"] = t.gettext(
            N_("A whole number of days from 1 to %(max)s."), max=MAX_TOKEN_DAYS
        )
    if errors:
        request.state.audit_summary = f"refused API token: bad {', '.join(errors)}"
        return await run_in_threadpool(
            lambda: _tokens_page(request, visit, status_code=422, typed=typed, errors=errors)
        )
    db, clock, _settings = app_state(request)

    def run() -> str:
        with db.writer() as session, session.begin():
            token = create_api_token(
                session, name, Role(role), clock.now(), lifetime=timedelta(days=int(days_text))
            )
            request.state.audit_summary = f"create API token {name!r} ({role})"
            return token

    token = await run_in_threadpool(run)
    return await run_in_threadpool(lambda: _tokens_page(request, visit, created=token))


@router.post("/admin/tokens/{token_id}/revoke")
async def token_revoke(request: Request, token_id: int, visit: Admin) -> Response:
    """Revoke an API token (idempotent)."""
    db, clock, _settings = app_state(request)

    def run() -> None:
        with db.writer() as session, session.begin():
            try:
                info, newly = revoke_api_token(session, token_id, clock.now())
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such API token.")) from None
            request.state.audit_summary = f"revoke API token {info.id} ({info.name})" + (
                "" if newly else ": already"
            )
            request.state.audit_targets = {"token_id": info.id}

    await run_in_threadpool(run)
    return RedirectResponse("/admin/tokens", status_code=303)


# --- escalation chains and calendars (as set through the API) --------------------------------


@router.get("/admin/chains")
async def chain_list(request: Request, visit: Admin) -> Response:
    """Escalation chains: who is told at which level, by customer and grade."""
    db, _clock, _settings = app_state(request)

    def read() -> Response:
        with db.session() as session:
            return _render(
                request, visit, "admin/chains.html", rows=escalation.list_chains(session)
            )

    return await run_in_threadpool(read)


@router.get("/admin/calendars")
async def calendar_list(request: Request, visit: Admin) -> Response:
    """Working-time calendars: hours and holidays SLA deadlines are counted on."""
    db, _clock, _settings = app_state(request)

    def read() -> Response:
        with db.session() as session:
            rows = deadlines.list_calendars(session)
            return _render(request, visit, "admin/calendars.html", rows=rows)

    return await run_in_threadpool(read)


# --- the audit log ---------------------------------------------------------------------------


@router.get("/admin/audit")
async def audit_log(request: Request, visit: Admin) -> Response:
    """Who did what, newest first, filtered by actor, path, status and time (UTC)."""
    t = visit.t
    params = request.query_params
    values = {k: params.get(k, "").strip() for k in ("actor", "path", "status", "since", "until")}
    errors: dict[str, str] = {}
    status: int | None = None
    if values["status"]:
        if values["status"].isdigit() and 100 <= int(values["status"]) <= 599:
            status = int(values["status"])
        else:
            errors["status"] = t.gettext(N_("An HTTP status, such as 200 or 403."))
    times: dict[str, datetime | None] = {"since": None, "until": None}
    for name in times:
        if values[name]:
            times[name] = parse_local(values[name], "UTC")
            if times[name] is None:
                errors[name] = t.gettext(N_("A date and time, such as 2026-03-02 08:00."))
    for name in ("actor", "path"):
        if len(values[name]) > 200:
            errors[name] = t.gettext(N_("At most %(count)s characters."), count=200)
            values[name] = values[name][:200]
    query = audit.AuditQuery(
        actor=values["actor"] or None,
        path_prefix=values["path"] or None,
        status=status,
        since=times["since"],
        until=times["until"],
        limit=AUDIT_SHOWN,
    )
    db, _clock, _settings = app_state(request)

    def read() -> Response:
        with db.session() as session:
            rows = [] if errors else list(session.scalars(audit.query(query)))
            return _render(
                request,
                visit,
                "admin/audit.html",
                status_code=422 if errors else 200,
                rows=rows,
                values=values,
                errors=errors,
            )

    return await run_in_threadpool(read)
