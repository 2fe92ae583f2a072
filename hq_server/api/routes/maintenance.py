"""Maintenance windows (admins plan them, everyone reads them): matching alarms open no ticket
and escalate nothing until the window ends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import get_row
from hq_server.api.schemas.maintenance import WindowIn, WindowOut
from hq_server.core.errors import InvalidInput
from hq_server.store.models import MaintenanceWindow, Site
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
    stmt = select(MaintenanceWindow)
    if site_id is not None:
        stmt = stmt.where(MaintenanceWindow.site_id == site_id)
    if active is not None:
        now = clock.now()
        running = (MaintenanceWindow.starts_at <= now) & (MaintenanceWindow.ends_at > now)
        stmt = stmt.where(running if active else ~running)
    with db.session() as session:
        rows = session.scalars(stmt.order_by(MaintenanceWindow.starts_at.desc()))
        return [WindowOut.model_validate(r) for r in rows]


@router.get("/maintenance-windows/{window_id}", response_model=WindowOut, responses=errors(404))
def get_window(window_id: Id, _user: ViewerDep, db: DbDep) -> WindowOut:
    """One maintenance window."""
    with db.session() as session:
        return WindowOut.model_validate(
            get_row(session, MaintenanceWindow, window_id, "maintenance window")
        )


def _fill_window(session: Session, row: MaintenanceWindow, body: WindowIn) -> None:
    if body.site_id is not None and session.get(Site, body.site_id) is None:
        raise InvalidInput(f"no site {body.site_id}")
    row.site_id, row.device_id, row.code = body.site_id, body.device_id, body.code
    row.starts_at, row.ends_at = body.starts_at, body.ends_at
    row.reason, row.approval_ref = body.reason, body.approval_ref
    # A window moved to end later holds its alarms again until then.
    row.released_at = None


@router.post("/maintenance-windows", response_model=WindowOut, status_code=201)
def post_window(
    body: WindowIn, request: Request, admin: AdminDep, db: DbDep, clock: ClockDep
) -> WindowOut:
    """Plan a maintenance window (the caller is its author)."""
    with db.writer() as session, session.begin():
        row = MaintenanceWindow(author=admin.name, created_at=clock.now())
        _fill_window(session, row, body)
        session.add(row)
        session.flush()
        audit_note(request, f"plan maintenance window: {body.reason[:200]}", window_id=row.id)
        return WindowOut.model_validate(row)


@router.put("/maintenance-windows/{window_id}", response_model=WindowOut, responses=errors(404))
def put_window(
    window_id: Id, body: WindowIn, request: Request, _admin: AdminDep, db: DbDep
) -> WindowOut:
    """Change a window (matchers, times, reason, approval)."""
    with db.writer() as session, session.begin():
        row = get_row(session, MaintenanceWindow, window_id, "maintenance window")
        _fill_window(session, row, body)
        audit_note(request, "change maintenance window")
        return WindowOut.model_validate(row)


@router.delete(
    "/maintenance-windows/{window_id}", status_code=204, response_model=None, responses=errors(404)
)
def delete_window(
    window_id: Id, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> None:
    """Cancel a window: one not started yet is deleted, a running one ends now (so the
    scheduler opens tickets for the alarms it held); a past one stays as a record."""
    now = clock.now()
    with db.writer() as session, session.begin():
        row = get_row(session, MaintenanceWindow, window_id, "maintenance window")
        if row.starts_at > now:
            audit_note(request, "delete planned maintenance window")
            session.delete(row)
        elif row.ends_at > now:
            audit_note(request, "end running maintenance window now")
            session.execute(
                update(MaintenanceWindow)
                .where(MaintenanceWindow.id == row.id)
                .values(ends_at=now)
                .execution_options(synchronize_session=False)
            )
        else:
            audit_note(request, "past maintenance window kept as a record")
