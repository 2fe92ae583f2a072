"""Reports of a site: the inspection report (checklist results per device and category)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import ClockDep, DbDep, SiteId, ViewerDep, query_instant
from hq_server.api.errors import AUTH_ERRORS, INVALID, JOB_NOT_FOUND
from hq_server.jobs.inspections import InspectionReportOut, inspection_report, to_markdown
from protocol.wire import API_PREFIX, ID_PATTERN

REPORT_MAX_SPAN = timedelta(days=366)

router = APIRouter(
    prefix=API_PREFIX, tags=["jobs"], route_class=BoundedBodyRoute, responses=AUTH_ERRORS
)


@router.get(
    "/sites/{site_id}/reports/inspections",
    response_model=InspectionReportOut,
    responses={
        **JOB_NOT_FOUND,
        **INVALID,
        200: {"content": {"text/markdown": {"schema": {"type": "string"}}}},
    },
    description="Checklist results of the site in [from, to) (default: the last 7 days), "
    "per device and category; `format=md` answers Markdown.",
)
def get_inspection_report(
    site_id: SiteId,
    _user: ViewerDep,
    db: DbDep,
    clock: ClockDep,
    from_: Annotated[datetime | None, Query(alias="from", description="Start (inclusive)")] = None,
    to: Annotated[datetime | None, Query(description="End (exclusive); default now")] = None,
    device_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only this device's items")
    ] = None,
    format: Annotated[Literal["json", "md"], Query(description="json or md")] = "json",
) -> InspectionReportOut | Response:
    """The inspection report of a site."""
    end = query_instant(to) if to is not None else clock.now()
    try:
        start = query_instant(from_) if from_ is not None else end - timedelta(days=7)
    except OverflowError:
        raise HTTPException(status_code=422, detail="`to` is too early") from None
    if start >= end:
        raise HTTPException(status_code=422, detail="`from` must be before `to`")
    if end - start > REPORT_MAX_SPAN:
        raise HTTPException(status_code=422, detail="a report spans at most 366 days")
    with db.session() as session:
        report = inspection_report(session, site_id, start, end, device_id)
    if format == "md":
        return Response(to_markdown(report), media_type="text/markdown; charset=utf-8")
    return report
