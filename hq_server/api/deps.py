"""FastAPI dependencies: the database, the clock, and bearer authentication with roles."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hq_server.auth import AgentPrincipal, Principal, UserPrincipal, authenticate
from hq_server.clock import Clock
from hq_server.db import Database
from hq_server.domain import Role
from hq_server.errors import AuthError, PermissionDenied
from hq_server.login_throttle import LoginThrottle, ThrottlePolicy
from hq_server.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="swa_... (agent) or swu_... (user) token")


def get_db(request: Request) -> Database:
    """The app's Database."""
    db: Database = request.app.state.db
    return db


def get_clock(request: Request) -> Clock:
    """The app's clock."""
    clock: Clock = request.app.state.clock
    return clock


def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


_throttle_lock = threading.Lock()


def get_login_throttle(request: Request) -> LoginThrottle:
    """The app's login throttle, made on first use from the settings (one per app, in memory)."""
    state = request.app.state
    with _throttle_lock:  # two first logins at once must not make two throttles
        throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
        if throttle is None:
            settings: Settings = state.settings
            throttle = LoginThrottle(
                ThrottlePolicy(
                    max_failures=settings.login_max_failures,
                    window=settings.login_failure_window,
                    lockout=settings.login_lockout,
                )
            )
            state.login_throttle = throttle
        return throttle


DbDep = Annotated[Database, Depends(get_db)]
# Row ids in paths: a positive 32-bit integer (larger ones could not name a row anyway and
# would overflow the database's integer types).
Id = Annotated[int, Path(ge=1, le=2_147_483_647)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None, db: Database
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthError("missing bearer token (Authorization: Bearer ...)")
    clock: Clock = request.app.state.clock
    with db.session() as session:
        principal = authenticate(session, credentials.credentials, clock.now())
    # Read back by the audit middleware (hq_server.api.audit) to record who called.
    request.state.principal = principal
    return principal


def require_agent(request: Request, credentials: Credentials, db: DbDep) -> AgentPrincipal:
    """The calling agent; 401 without a valid token, 403 for a user token."""
    principal = _principal(request, credentials, db)
    if not isinstance(principal, AgentPrincipal):
        raise PermissionDenied("only agent tokens may call agent endpoints")
    return principal


def require_user(
    role: Role,
) -> Callable[[Request, HTTPAuthorizationCredentials | None, Database], UserPrincipal]:
    """A dependency admitting user tokens with at least `role` (403 for agents or lower roles)."""

    def dependency(request: Request, credentials: Credentials, db: DbDep) -> UserPrincipal:
        principal = _principal(request, credentials, db)
        if not isinstance(principal, UserPrincipal):
            raise PermissionDenied("agent tokens may only call agent endpoints")
        principal.require(role)
        return principal

    return dependency


AgentDep = Annotated[AgentPrincipal, Depends(require_agent)]
ViewerDep = Annotated[UserPrincipal, Depends(require_user(Role.VIEWER))]
EngineerDep = Annotated[UserPrincipal, Depends(require_user(Role.ENGINEER))]
AdminDep = Annotated[UserPrincipal, Depends(require_user(Role.ADMIN))]


def query_instant(value: datetime) -> datetime:
    """A query parameter's instant; one without a zone is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def audit_note(request: Request, summary: str | None = None, **targets: object) -> None:
    """Add a summary and target ids to the audit record of this call (see api.audit)."""
    if summary is not None:
        request.state.audit_summary = summary
    existing: dict[str, object] = getattr(request.state, "audit_targets", {})
    request.state.audit_targets = {**existing, **targets}
