"""The audit log (admins): one row per mutating API call, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from hq_server.access.audit import AuditQuery, query
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, DbDep
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS
from hq_server.api.schemas.audit import AuditOut
from hq_server.api.schemas.common import Instant
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["admin"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.get("/audit", response_model=list[AuditOut])
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
        return [AuditOut.model_validate(row) for row in session.scalars(stmt)]
