"""Enrollment tokens (admins): issue one for a site's agent (or to replace its box), list and
revoke pending ones."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.schemas.enrollment import (
    EnrollmentTokenIn,
    EnrollmentTokenOut,
    NewEnrollmentTokenOut,
)
from hq_server.core.errors import InvalidInput, NotFound
from hq_server.sites.enrollment import (
    create_enrollment_token,
    list_enrollment_tokens,
    new_site_token,
    reenrollment_target,
    revoke_enrollment_token,
)
from hq_server.store.models import Site
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.post(
    "/sites/{site_id}/enrollment-tokens",
    response_model=NewEnrollmentTokenOut,
    status_code=201,
    responses=errors(404, 409),
    description="A one-time enrollment token for an agent of the site, shown once. Refused "
    "(409) while the site has an active agent, unless `replace_agent` (the box was replaced: "
    "the old agent is retired when the new one enrolls) or `additional` (one more agent).",
)
def post_enrollment_token(
    site_id: Id,
    body: EnrollmentTokenIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> NewEnrollmentTokenOut:
    """Issue an enrollment (or re-enrollment) token for a site."""
    now = clock.now()
    ttl = timedelta(hours=body.ttl_hours)
    with db.writer() as session, session.begin():
        site = session.get(Site, site_id)
        if site is None:
            raise NotFound(f"no site {site_id}")
        replaced = None
        if body.replace_agent:
            replaced = reenrollment_target(session, site, body.agent_id)
            token = create_enrollment_token(session, site, now, ttl, replaces=replaced)
        else:
            if body.agent_id is not None:
                raise InvalidInput("agent_id: only with replace_agent", field="agent_id")
            token = new_site_token(session, site, now, ttl, additional=body.additional)
        what = f"re-enrollment token replacing agent {replaced.id}" if replaced else "token"
        audit_note(request, f"issue enrollment {what} for site {site.name}", site_id=site.id)
        return NewEnrollmentTokenOut(
            token=token,
            site_id=site.id,
            expires_at=now + ttl,
            replaces_agent_id=replaced.id if replaced else None,
        )


@router.get("/enrollment-tokens", response_model=list[EnrollmentTokenOut])
def get_enrollment_tokens(
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    all: Annotated[
        bool, Query(description="Used, expired and revoked ones too (default: pending only)")
    ] = False,
) -> list[EnrollmentTokenOut]:
    """Enrollment tokens by id (never the token or its hash)."""
    with db.session() as session:
        infos = list_enrollment_tokens(session, clock.now(), pending_only=not all)
        return [EnrollmentTokenOut.of(i) for i in infos]


@router.post(
    "/enrollment-tokens/{token_id}/revoke",
    response_model=EnrollmentTokenOut,
    responses=errors(404, 409),
    description="Revoke an unused enrollment token: it can no longer enroll an agent. 409 for a "
    "used one (revoke its agent instead). Idempotent.",
)
def post_revoke_enrollment_token(
    token_id: Id, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> EnrollmentTokenOut:
    """Revoke a pending enrollment token."""
    with db.writer() as session, session.begin():
        info, newly = revoke_enrollment_token(session, token_id, clock.now(), admin.name)
    state = "revoke" if newly else "already revoked:"
    audit_note(
        request,
        f"{state} enrollment token {info.id} of site {info.site_name}",
        site_id=info.site_id,
    )
    return EnrollmentTokenOut.of(info)
