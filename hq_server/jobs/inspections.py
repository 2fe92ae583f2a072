"""Inspection reports: the results of run_checklist jobs of a site over a period.

Items are grouped by device (the item's device, else the job's; "(site)" for site-wide items)
and by category (software / hardware / environment, "other" when the agent gave none), with
pass/fail counts and the failed items listed.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hq_server.core.errors import NotFound
from hq_server.store.models import JobItemRecord, JobRecord, Site
from protocol.wire import JobKind

SITE_WIDE = "(site)"
CATEGORIES = ("software", "hardware", "environment")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FailedItemOut(_Out):
    """A checklist item that failed."""

    job_id: uuid.UUID
    checklist: str
    name: str
    detail: str
    at: datetime


class CategoryOut(_Out):
    """Pass/fail counts of one category of one device."""

    category: str
    passed: int
    failed: int
    failed_items: list[FailedItemOut]


class DeviceInspectionOut(_Out):
    """The inspection results of one device (or the site itself)."""

    device_id: str
    passed: int
    failed: int
    categories: list[CategoryOut]


class InspectionReportOut(_Out):
    """Checklist results of a site in [from, to): per device and category."""

    site_id: int
    site: str
    from_: datetime = Field(serialization_alias="from", description="Start (inclusive)")
    to: datetime = Field(description="End (exclusive)")
    checklist_runs: int
    runs_by_status: dict[str, int]
    passed: int
    failed: int
    devices: list[DeviceInspectionOut]


def inspection_report(
    session: Session,
    site_id: int,
    start: datetime,
    end: datetime,
    device_id: str | None = None,
) -> InspectionReportOut:
    """The report of run_checklist results stored in [start, end) (of one device if given)."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"no site {site_id}")
    runs = dict(
        session.execute(
            select(JobRecord.result_status, func.count())
            .where(
                JobRecord.site_id == site_id,
                JobRecord.kind == JobKind.RUN_CHECKLIST.value,
                JobRecord.result_status.is_not(None),
                JobRecord.finished_at >= start,
                JobRecord.finished_at < end,
            )
            .group_by(JobRecord.result_status)
        ).all()
    )
    items = (
        select(JobItemRecord, JobRecord.item)
        .join(JobRecord, JobRecord.id == JobItemRecord.job_id)
        .where(
            JobItemRecord.site_id == site_id,
            JobItemRecord.at >= start,
            JobItemRecord.at < end,
            JobRecord.kind == JobKind.RUN_CHECKLIST.value,
        )
        .order_by(JobItemRecord.at, JobItemRecord.id)
    )
    if device_id is not None:
        items = items.where(JobItemRecord.device_id == device_id)
    rows = session.execute(items).all()
    counts: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    failures: dict[tuple[str, str], list[FailedItemOut]] = defaultdict(list)
    for item, checklist in rows:
        device = item.device_id or SITE_WIDE
        category = item.category.lower() or "other"
        tally = counts[device][category]
        if item.passed:
            tally[0] += 1
        else:
            tally[1] += 1
            failures[(device, category)].append(
                FailedItemOut(
                    job_id=item.job_id,
                    checklist=checklist,
                    name=item.name,
                    detail=item.detail,
                    at=item.at,
                )
            )
    devices = []
    for device in sorted(counts):
        order = sorted(
            counts[device], key=lambda c: (CATEGORIES.index(c) if c in CATEGORIES else 9, c)
        )
        categories = [
            CategoryOut(
                category=c,
                passed=counts[device][c][0],
                failed=counts[device][c][1],
                failed_items=failures[(device, c)],
            )
            for c in order
        ]
        devices.append(
            DeviceInspectionOut(
                device_id=device,
                passed=sum(c.passed for c in categories),
                failed=sum(c.failed for c in categories),
                categories=categories,
            )
        )
    return InspectionReportOut(
        site_id=site.id,
        site=site.name,
        from_=start,
        to=end,
        checklist_runs=sum(runs.values()),
        runs_by_status={str(k): v for k, v in runs.items()},
        passed=sum(d.passed for d in devices),
        failed=sum(d.failed for d in devices),
        devices=devices,
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def to_markdown(report: InspectionReportOut) -> str:
    """The report as Markdown (for mail, tickets and printing)."""
    out = [
        f"# Inspection report: {_cell(report.site)}",
        "",
        f"Period: {report.from_.isoformat()} to {report.to.isoformat()}  ",
        f"Checklist runs: {report.checklist_runs}"
        + (
            " (" + ", ".join(f"{k}: {v}" for k, v in sorted(report.runs_by_status.items())) + ")"
            if report.runs_by_status
            else ""
        )
        + "  ",
        f"Items: {report.passed} passed, {report.failed} failed",
        "",
    ]
    if not report.devices:
        out.append("No checklist results in this period.")
    for device in report.devices:
        out += [
            f"## {_cell(device.device_id)}",
            "",
            "| category | passed | failed |",
            "|---|---:|---:|",
        ]
        out += [f"| {_cell(c.category)} | {c.passed} | {c.failed} |" for c in device.categories]
        failed = [(c.category, f) for c in device.categories for f in c.failed_items]
        if failed:
            out += ["", "Failed items:", ""]
            out += [
                f"- {f.at.isoformat()} [{_cell(cat)}] {_cell(f.name)}"
                + (f": {_cell(f.detail)}" if f.detail else "")
                for cat, f in failed
            ]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
