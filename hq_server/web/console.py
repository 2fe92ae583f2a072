"""The console's wiring: its pages' routers, the static files, and the handlers answering a
missing login or a refusal with a page. Called once by hq_server.app.create_app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hq_server.web import live
from hq_server.web.auth import LoginRequired, Refused, on_login_required, on_refused
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
from hq_server.web.render import STATIC_DIR, STATIC_PREFIX

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
