"""Rendering console pages: the Jinja2 environment over hq_server/web/templates, the context
every page gets (translator, user, permissions, CSRF token, navigation), and the navigation
entries pages add (see docs/console.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hq_server.access.sessions import ConsoleUser
from hq_server.core.domain import Role
from hq_server.web.i18n import GRADE_NAMES, LANGUAGE_NAMES, LANGUAGES, ROLE_NAMES, Translator
from hq_server.web.titles import fault_title

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"

# Every page: never cached, never framed by another site, scripts and styles only from HQ
# itself (the console has no inline script; htmx's inline indicator style is turned off in
# base.html), forms posted only to HQ.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Never inside another page's frame (also for browsers without frame-ancestors): another
    # port of the same host shares the session cookie and could overlay the console's buttons.
    "X-Frame-Options": "DENY",
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def template_globals(**values: Any) -> None:
    """Names every template sees (a page module's tables that other pages' templates include,
    e.g. the service desk's sections of the ticket page)."""
    _env.globals.update(values)


@dataclass(frozen=True, slots=True)
class NavItem:
    """An entry of the navigation bar: where, its label (marked with N_), who sees it."""

    path: str
    label: str
    order: int
    role: Role = Role.VIEWER


# Entries in bar order; a page module adds its own with `navigation(...)` (docs/console.md).
_NAV: list[NavItem] = []


def navigation(path: str, label: str, order: int, role: Role = Role.VIEWER) -> None:
    """Add a navigation entry (label marked with i18n.N_); lower `order` comes first."""
    if any(item.path == path for item in _NAV):
        return
    _NAV.append(NavItem(path, label, order, role))
    _NAV.sort(key=lambda item: item.order)


def context(
    request: Request, t: Translator, user: ConsoleUser | None, **values: Any
) -> dict[str, Any]:
    """What every template sees, plus the page's own `values`."""
    path = request.url.path
    return {
        "request": request,
        "t": t,
        "_": t.gettext,
        "lang": t.language,
        "languages": [(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        "user": user,
        "can_work": user is not None and user.allows(Role.ENGINEER),
        "is_admin": user is not None and user.allows(Role.ADMIN),
        "csrf_token": user.csrf_token if user is not None else "",
        "nav": [i for i in _NAV if user is not None and user.allows(i.role)],
        "path": path,
        "here": path + (f"?{request.url.query}" if request.url.query else ""),
        "static": STATIC_PREFIX,
        "grade_names": GRADE_NAMES,
        "role_names": ROLE_NAMES,
        # A fault's title in the reader's language (the profile's title_zh in Chinese).
        "fault_title": lambda row: fault_title(t, row),
        **values,
    }


def render(
    request: Request,
    template: str,
    t: Translator,
    user: ConsoleUser | None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page rendered from `template` with the common context."""
    html = _env.get_template(template).render(context(request, t, user, **values))
    response = HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
