"""API tokens (admins): list them (never the token or its hash), revoke one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from hq_server.access.auth import list_api_tokens, revoke_api_token
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.schemas.tokens import ApiTokenOut
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.get("/tokens", response_model=list[ApiTokenOut])
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
            ApiTokenOut.model_validate(t)
            for t in list_api_tokens(session, revoked=revoked, user_id=user_id)
        ]


@router.post(
    "/tokens/{token_id}/revoke",
    response_model=ApiTokenOut,
    responses=errors(404),
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
    return ApiTokenOut.model_validate(info)
