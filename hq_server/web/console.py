"""The console's wiring: its pages' routers, the static files, and the handlers answering a
missing login or a refusal with a page. Called once by hq_server.app.create_app."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from hq_server.web import live
from hq_server.web.auth import (
    LoginRequired,
    Refused,
    current_user,
    on_login_required,
    on_refused,
    translator_for,
)
from hq_server.web.i18n import N_
from hq_server.web.pages import (
    account,
    admin,
    alarms,
    desk,
    devices,
    maintenance,
    oncall,
    overview,
    tickets,
)
from hq_server.web.render import STATIC_DIR, STATIC_PREFIX, render

# Page modules in the order their routes are tried (docs/console.md: adding a page).
PAGES = (account, overview, tickets, desk, oncall, alarms, devices, maintenance, admin)


def install_console(app: FastAPI) -> None:
    """Serve the console under / beside the API."""
    for page in PAGES:
        app.include_router(page.router)
    app.include_router(live.router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(LoginRequired, on_login_required)
    app.add_exception_handler(Refused, on_refused)
    app.add_exception_handler(HTTPException, on_http_error)


# Paths whose errors stay the API's JSON (or plain answers of static files).
NOT_PAGES = ("/api", "/healthz", "/docs", "/redoc", "/openapi.json", STATIC_PREFIX)
HTTP_MESSAGES = {
    404: N_("There is no such page."),
    405: N_("This page cannot be used that way."),
}


async def on_http_error(request: Request, exc: Exception) -> Response:
    """An unknown path, a wrong method, a malformed request at the console: the error page in
    the user's language (the API's own paths keep their JSON answers)."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(NOT_PAGES):
        return await http_exception_handler(request, exc)
    user = await current_user(request)
    t = translator_for(request, user)
    message = HTTP_MESSAGES.get(exc.status_code, N_("The request was refused."))
    return render(
        request,
        "error.html",
        t,
        user,
        status_code=exc.status_code,
        headers=exc.headers,
        message=t.gettext(message),
    )
