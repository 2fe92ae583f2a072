"""Maintenance windows (admins plan them, everyone reads them): matching alarms open no ticket
and escalate nothing until the window ends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import get_row
from hq_server.api.schemas.maintenance import WindowIn, WindowOut
from hq_server.store.models import MaintenanceWindow
from hq_server.tickets import maintenance
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["config"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


@router.get("/maintenance-windows", response_model=list[WindowOut])
def list_windows(
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    active: Annotated[
        bool | None, Query(description="Only windows running now (true) or not (false)")
    ] = None,
    site_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> list[WindowOut]:
    """Maintenance windows, latest start first."""
    with db.session() as session:
        rows = maintenance.list_windows(session, clock.now(), active=active, site_id=site_id)
        return [WindowOut.model_validate(r) for r in rows]


@router.get("/maintenance-windows/{window_id}", response_model=WindowOut, responses=errors(404))
def get_window(window_id: Id, _user: ViewerDep, db: DbDep) -> WindowOut:
    """One maintenance window."""
    with db.session() as session:
        return WindowOut.model_validate(
            get_row(session, MaintenanceWindow, window_id, "maintenance window")
        )


def _plan(body: WindowIn) -> maintenance.WindowPlan:
    return maintenance.WindowPlan(
        site_id=body.site_id,
        device_id=body.device_id,
        code=body.code,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        approval_ref=body.approval_ref,
    )


@router.post("/maintenance-windows", response_model=WindowOut, status_code=201)
def post_window(
    body: WindowIn, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> WindowOut:
    """Plan a maintenance window (the caller is its author)."""
    with db.writer() as session, session.begin():
        row = maintenance.plan_window(session, _plan(body), admin.name, clock.now())
        audit_note(request, f"plan maintenance window: {body.reason[:200]}", window_id=row.id)
        return WindowOut.model_validate(row)


@router.put("/maintenance-windows/{window_id}", response_model=WindowOut, responses=errors(404))
def put_window(
    window_id: Id, body: WindowIn, request: Request, _admin: AdminDep, db: DbDep
) -> WindowOut:
    """Change a window (matchers, times, reason, approval)."""
    with db.writer() as session, session.begin():
        row = get_row(session, MaintenanceWindow, window_id, "maintenance window")
        maintenance.change_window(session, row, _plan(body))
        audit_note(request, "change maintenance window")
        return WindowOut.model_validate(row)


_CANCELLED = {
    maintenance.WindowOutcome.DELETED: "delete planned maintenance window",
    maintenance.WindowOutcome.ENDED: "end running maintenance window now",
    maintenance.WindowOutcome.KEPT: "past maintenance window kept as a record",
}


@router.delete(
    "/maintenance-windows/{window_id}", status_code=204, response_model=None, responses=errors(404)
)
def delete_window(
    window_id: Id, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> None:
    """Cancel a window: one not started yet is deleted, a running one ends now (so the
    scheduler opens tickets for the alarms it held); a past one stays as a record."""
    with db.writer() as session, session.begin():
        row = get_row(session, MaintenanceWindow, window_id, "maintenance window")
        outcome = maintenance.cancel_window(session, row, clock.now())
        audit_note(request, _CANCELLED[outcome])
