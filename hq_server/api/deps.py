"""FastAPI dependencies: the database, the clock, and bearer authentication with roles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hq_server.auth import AgentPrincipal, Principal, UserPrincipal, authenticate
from hq_server.clock import Clock
from hq_server.db import Database
from hq_server.domain import Role
from hq_server.errors import AuthError, PermissionDenied
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


DbDep = Annotated[Database, Depends(get_db)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _principal(credentials: HTTPAuthorizationCredentials | None, db: Database) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthError("missing bearer token (Authorization: Bearer ...)")
    with db.session() as session:
        return authenticate(session, credentials.credentials)


def require_agent(credentials: Credentials, db: DbDep) -> AgentPrincipal:
    """The calling agent; 401 without a valid token, 403 for a user token."""
    principal = _principal(credentials, db)
    if not isinstance(principal, AgentPrincipal):
        raise PermissionDenied("only agent tokens may call agent endpoints")
    return principal


def require_user(
    role: Role,
) -> Callable[[HTTPAuthorizationCredentials | None, Database], UserPrincipal]:
    """A dependency admitting user tokens with at least `role` (403 for agents or lower roles)."""

    def dependency(credentials: Credentials, db: DbDep) -> UserPrincipal:
        principal = _principal(credentials, db)
        if not isinstance(principal, UserPrincipal):
            raise PermissionDenied("agent tokens may only call agent endpoints")
        principal.require(role)
        return principal

    return dependency


AgentDep = Annotated[AgentPrincipal, Depends(require_agent)]
ViewerDep = Annotated[UserPrincipal, Depends(require_user(Role.VIEWER))]
