"""Login and logout, users, API tokens and the audit log: POST /auth/token (no bearer),
POST /auth/logout (any user token), the rest for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from hq_server.access.audit import AuditQuery, query
from hq_server.access.auth import list_api_tokens, revoke_api_token
from hq_server.access.users import (
    change_own_password,
    create_user,
    get_user,
    login,
    set_disabled,
    set_password,
    username_key,
)
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import (
    AdminDep,
    ClockDep,
    DbDep,
    Id,
    SettingsDep,
    ThrottleDep,
    ViewerDep,
    audit_note,
)
from hq_server.api.errors import ERROR_RESPONSES, body_errors, responses, throttled
from hq_server.api.schemas import ErrorOut
from hq_server.api.schemas_admin import (
    ApiTokenOut,
    AuditOut,
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    UserIn,
    UserOut,
    UserPatch,
)
from hq_server.api.schemas_config import Instant
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, LoginThrottled, PermissionDenied
from hq_server.store.models import User
from protocol.wire import API_PREFIX

router = APIRouter(prefix=API_PREFIX, route_class=BoundedBodyRoute, responses=body_errors())
_AUTH = {code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()}


@router.post(
    "/auth/token",
    tags=["auth"],
    response_model=LoginOut,
    responses={
        401: {"model": ErrorOut, "description": "Unknown user, wrong password, disabled"},
        **throttled(),
    },
    description="Trade a username and password for a new API token bound to the user. After "
    "`login_max_failures` failed logins for one user name or from one address within "
    "`login_failure_window`, logins for it are refused with 429 (the password is not checked) "
    "for `login_lockout`; a successful login resets the user name's count.",
)
def post_login(
    body: LoginIn,
    request: Request,
    db: DbDep,
    clock: ClockDep,
    throttle: ThrottleDep,
    settings: SettingsDep,
) -> LoginOut:
    """Trade a username and password for a new API token bound to the user."""
    request.state.audit_actor = body.username
    # The peer address, or the client named by a proxy listed in `trusted_proxies` (see
    # hq_server.api.forwarded): a reverse proxy must be listed there, or every user shares the
    # proxy's address and its count.
    client = request.client.host if request.client else None
    now = clock.now()
    try:
        # The throttle is left last, so a login counts as a success only once committed.
        # Names ignore case, so "Alice" and "alice" share one count.
        with (
            throttle.attempt(username_key(body.username), client, now),
            db.writer() as session,
            session.begin(),
        ):
            lifetime = settings.user_token_lifetime
            user, token = login(session, body.username, body.password, now, lifetime)
            audit_note(request, f"log in as {user.role}", user_id=user.id)
            return LoginOut(
                token=token, username=user.username, role=Role(user.role), expires_at=now + lifetime
            )
    except LoginThrottled as exc:
        audit_note(request, f"login refused, password not checked: {exc}")
        raise
    except AuthError as exc:  # never the password: only why it was refused
        audit_note(request, f"login failed: {exc}")
        raise


@router.post(
    "/auth/password",
    tags=["auth"],
    response_model=LoginOut,
    responses={**_AUTH, **throttled()},
    description="Change the calling user's own password (the current one is checked, and counts "
    "as a login attempt for the lock-out). Every API token of the user is revoked, the calling "
    "one too; the answer carries a new token for the caller, with a login's lifetime.",
)
def post_own_password(
    body: PasswordChangeIn,
    request: Request,
    user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    throttle: ThrottleDep,
    settings: SettingsDep,
) -> LoginOut:
    """Change one's own password; all one's tokens are revoked and a new one returned."""
    if user.user_id is None:
        raise PermissionDenied("a standalone API token belongs to no user: it has no password")
    client = request.client.host if request.client else None
    now = clock.now()
    lifetime = settings.user_token_lifetime
    try:
        with (
            throttle.attempt(username_key(user.name), client, now),
            db.writer() as session,
            session.begin(),
        ):
            row, token = change_own_password(
                session,
                user.user_id,
                body.current_password,
                body.new_password,
                now,
                lifetime=lifetime,
                min_length=settings.password_min_length,
            )
            audit_note(request, "change own password; all own API tokens revoked")
            return LoginOut(
                token=token, username=row.username, role=Role(row.role), expires_at=now + lifetime
            )
    except AuthError as exc:
        audit_note(request, f"password change refused: {exc}")
        raise


@router.post(
    "/auth/logout", tags=["auth"], status_code=204, response_class=Response, responses=_AUTH
)
def post_logout(request: Request, user: ViewerDep, db: DbDep, clock: ClockDep) -> Response:
    """Revoke the API token of this call: it is refused from the next request on."""
    with db.writer() as session, session.begin():
        revoke_api_token(session, user.token_id, clock.now())
    audit_note(request, f"log out: revoke own API token {user.token_id}", token_id=user.token_id)
    return Response(status_code=204)


@router.get("/users", tags=["admin"], response_model=list[UserOut], responses=_AUTH)
def list_users(_admin: AdminDep, db: DbDep) -> list[UserOut]:
    """All users, by name."""
    with db.session() as session:
        return [UserOut.of(u) for u in session.scalars(select(User).order_by(User.username))]


@router.post(
    "/users",
    tags=["admin"],
    response_model=UserOut,
    status_code=201,
    responses={**_AUTH, **responses(409)},
)
def post_user(
    body: UserIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> UserOut:
    """Create a user (the password policy applies to every role)."""
    with db.writer() as session, session.begin():
        user = create_user(
            session,
            body.username,
            body.role,
            body.password,
            clock.now(),
            min_length=settings.password_min_length,
        )
        audit_note(request, f"create user {user.username} ({user.role})", user_id=user.id)
        return UserOut.of(user)


@router.patch(
    "/users/{user_id}",
    tags=["admin"],
    response_model=UserOut,
    responses={**_AUTH, **responses(404)},
)
def patch_user(
    user_id: Id,
    body: UserPatch,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> UserOut:
    """Change a user's role, password or disabled flag (users are disabled, never deleted).
    A new password or disabling the user revokes all the user's API tokens."""
    now = clock.now()
    with db.writer() as session, session.begin():
        user = get_user(session, user_id, for_update=True)
        changed = []
        revoked = 0
        if body.role is not None:
            user.role = body.role.value
            changed.append(f"role={body.role.value}")
        if body.password is not None:
            revoked += set_password(
                session, user, body.password, now, min_length=settings.password_min_length
            )
            changed.append("password")
        if body.disabled is not None:
            revoked += set_disabled(session, user, body.disabled, now)
            changed.append(f"disabled={body.disabled}")
        summary = f"change user {user.username}: {', '.join(changed) or 'nothing'}"
        if revoked:
            summary += f"; {revoked} API tokens revoked"
        audit_note(request, summary, user_id=user.id)
        return UserOut.of(user)


@router.get("/tokens", tags=["admin"], response_model=list[ApiTokenOut], responses=_AUTH)
def list_tokens(
    _admin: AdminDep,
    db: DbDep,
    revoked: Annotated[
        bool | None, Query(description="Only revoked (true) or unrevoked (false) tokens")
    ] = None,
    user_id: Annotated[
        int | None, Query(ge=1, le=2_147_483_647, description="Only this user's tokens")
    ] = None,
) -> list[ApiTokenOut]:
    """API tokens by id (never the token or its hash)."""
    with db.session() as session:
        return [
            ApiTokenOut.of(t) for t in list_api_tokens(session, revoked=revoked, user_id=user_id)
        ]


@router.post(
    "/tokens/{token_id}/revoke",
    tags=["admin"],
    response_model=ApiTokenOut,
    responses={**_AUTH, **responses(404)},
)
def post_revoke_token(
    token_id: Id, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> ApiTokenOut:
    """Revoke an API token: it is refused from the next request on. Idempotent (a revoked
    token keeps its first revocation time)."""
    with db.writer() as session, session.begin():
        info, newly = revoke_api_token(session, token_id, clock.now())
    owner = info.username or "standalone"
    state = "revoke" if newly else "already revoked:"
    audit_note(request, f"{state} API token {info.id} ({info.name}, {owner})")
    return ApiTokenOut.of(info)


@router.get("/audit", tags=["admin"], response_model=list[AuditOut], responses=_AUTH)
def list_audit(
    _admin: AdminDep,
    db: DbDep,
    actor: Annotated[str | None, Query(max_length=100, description="Only this caller")] = None,
    method: Annotated[
        str | None, Query(pattern="^(POST|PUT|PATCH|DELETE)$", description="Only this method")
    ] = None,
    path_prefix: Annotated[
        str | None, Query(max_length=500, description="Path starts with")
    ] = None,
    status: Annotated[int | None, Query(ge=100, le=599, description="Only this status")] = None,
    since: Annotated[Instant | None, Query(description="At or after")] = None,
    until: Annotated[Instant | None, Query(description="Before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    """The audit log, newest first."""
    stmt = query(
        AuditQuery(
            actor=actor,
            method=method,
            path_prefix=path_prefix,
            status=status,
            since=since,
            until=until,
            limit=limit,
        )
    )
    with db.session() as session:
        return [AuditOut.of(row) for row in session.scalars(stmt)]
