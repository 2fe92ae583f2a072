"""Logging in and out: POST /auth/token (no bearer token), changing one's own password and
logging out (any user token)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from hq_server.access.auth import revoke_api_token
from hq_server.access.users import change_own_password, login, username_key
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import ClockDep, DbDep, SettingsDep, ThrottleDep, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, THROTTLED, error
from hq_server.api.schemas.users import LoginIn, LoginOut, PasswordChangeIn
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, LoginThrottled, PermissionDenied
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX, tags=["auth"], route_class=BoundedBodyRoute, responses=BODY_ERRORS
)


@router.post(
    "/auth/token",
    response_model=LoginOut,
    responses={**error(401, "Unknown user, wrong password, disabled"), **THROTTLED},
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
    response_model=LoginOut,
    responses={**AUTH_ERRORS, **THROTTLED},
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


@router.post("/auth/logout", status_code=204, response_class=Response, responses=AUTH_ERRORS)
def post_logout(request: Request, user: ViewerDep, db: DbDep, clock: ClockDep) -> Response:
    """Revoke the API token of this call: it is refused from the next request on."""
    with db.writer() as session, session.begin():
        revoke_api_token(session, user.token_id, clock.now())
    audit_note(request, f"log out: revoke own API token {user.token_id}", token_id=user.token_id)
    return Response(status_code=204)
