"""Users (admins): list, create, change (role, password, disabled; never deleted)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hq_server.access.users import (
    create_user,
    get_user,
    set_disabled,
    set_password,
    set_role,
)
from hq_server.access.users import (
    list_users as all_users,
)
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, SettingsDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.schemas.users import UserIn, UserOut, UserPatch
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.get("/users", response_model=list[UserOut])
def list_users(_admin: AdminDep, db: DbDep) -> list[UserOut]:
    """All users, by name."""
    with db.session() as session:
        return [UserOut.model_validate(u) for u in all_users(session)]


@router.post(
    "/users",
    response_model=UserOut,
    status_code=201,
    responses=errors(409),
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
        return UserOut.model_validate(user)


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=errors(404),
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
            set_role(user, body.role)
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
        return UserOut.model_validate(user)
