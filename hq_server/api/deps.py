"""FastAPI dependencies: the database, the clock, settings, the login throttle, bearer
authentication with roles; and the path and query parameter types the routes share."""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from hq_server.access.auth import AgentPrincipal, Principal, UserPrincipal, authenticate
from hq_server.access.throttle import LoginThrottle, ThrottlePolicy
from hq_server.core.clock import Clock
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, PermissionDenied
from hq_server.core.settings import Settings
from hq_server.store.db import Database

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
SiteId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The site's id")]
ClockDep = Annotated[Clock, Depends(get_clock)]
# Query parameters the routes share.
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows")]
GradeFilter = Annotated[int | None, Query(ge=1, le=5, description="Only this grade")]
SiteFilter = Annotated[str | None, Query(description="Only this site (by name)")]
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
    # Read back by the audit middleware (hq_server.api.audit) to record who called, and by the
    # dependencies below when the route has already authenticated the call (see authorize).
    request.state.principal = principal
    return principal


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call a route: agent tokens, or user tokens with at least `role`."""

    agent: bool = False
    role: Role = Role.VIEWER

    def admit(self, principal: Principal) -> Principal:
        """The principal if it may call; PermissionDenied (403) otherwise."""
        if self.agent:
            if not isinstance(principal, AgentPrincipal):
                raise PermissionDenied("only agent tokens may call agent endpoints")
            return principal
        if not isinstance(principal, UserPrincipal):
            raise PermissionDenied("agent tokens may only call agent endpoints")
        principal.require(self.role)
        return principal


# The authentication dependencies and the access each one grants, so that a route can find
# (route_access) and check (authorize) who may call it before it reads the request body.
_ACCESS: dict[Callable[..., Any], Access] = {}

AuthDependency = Callable[[Request, HTTPAuthorizationCredentials | None, Database], Awaitable[Any]]


def _guard(access: Access) -> AuthDependency:
    async def dependency(request: Request, credentials: Credentials, db: DbDep) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # not authenticated by the route (see authorize)
            principal = await run_in_threadpool(_principal, request, credentials, db)
        return access.admit(principal)

    _ACCESS[dependency] = access
    return dependency


require_agent = _guard(Access(agent=True))
require_agent.__doc__ = "The calling agent; 401 without a valid token, 403 for a user token."


@functools.cache
def require_user(role: Role) -> AuthDependency:
    """A dependency admitting user tokens with at least `role` (403 for agents or lower roles)."""
    return _guard(Access(role=role))


def route_access(dependant: Dependant) -> tuple[Access, ...]:
    """The access checks among a route's dependencies (and theirs)."""
    found: list[Access] = []
    pending = [dependant]
    while pending:
        current = pending.pop()
        access = _ACCESS.get(current.call) if current.call is not None else None
        if access is not None and access not in found:
            found.append(access)
        pending.extend(current.dependencies)
    return tuple(found)


async def authorize(request: Request, checks: tuple[Access, ...]) -> Principal:
    """Authenticate the call and check its access, before its body is read: 401 / 403."""
    credentials = await _bearer(request)
    if credentials is None or not credentials.credentials:  # no worker thread for these
        raise AuthError("missing bearer token (Authorization: Bearer ...)")
    principal = await run_in_threadpool(_principal, request, credentials, get_db(request))
    for access in checks:
        access.admit(principal)
    return principal


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
