"""Devices as HQ knows them: HQ keeps no device table, it learns devices from the agents'
heartbeats (state; class and profile from agents that report them) and from alarms (class, the
count of active alarms); the last values it knows of a device are the readings of its latest
job that returned some (a poll, a check). Read by the API (GET /devices) and the console."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from hq_server.store.models import Agent, Alarm, JobItemRecord, Site

# HQ's own "site unreachable" alarm has this device class: it is not a device.
SITE_DEVICE_CLASS = "site"
# How many of a device's latest job items are looked at for values.
_VALUE_ITEMS = 20


@dataclass(slots=True)
class DeviceSummary:
    """A device at a site, as its agent last reported it, with its active alarm count."""

    site: str
    site_id: int
    device_id: str
    device_class: str | None = None
    profile: str | None = None
    state: str = "unknown"
    active_alarms: int = 0
    _classes: set[str] = field(default_factory=set, repr=False)


@dataclass(frozen=True, slots=True)
class LastValues:
    """The readings of a device's latest job that returned some."""

    at: datetime
    job_id: uuid.UUID
    item: str
    values: dict[str, Any]


def list_devices(
    session: Session, site: str | None = None, device_id: str | None = None
) -> list[DeviceSummary]:
    """Devices known at each site (or at one), by site name and device id."""
    devices: dict[tuple[str, str], DeviceSummary] = {}

    def entry(site_row: Site, dev: str) -> DeviceSummary:
        key = (site_row.name, dev)
        found = devices.get(key)
        if found is None:
            found = devices[key] = DeviceSummary(site_row.name, site_row.id, dev)
        return found

    agents = select(Agent, Site).join(Site, Site.id == Agent.site_id)
    # One row per device with alarms: its (smallest) class and how many are active.
    alarms = (
        select(
            Site,
            Alarm.device_id,
            func.min(Alarm.device_class),
            func.sum(case((Alarm.active.is_(True), 1), else_=0)),
        )
        .join(Site, Site.id == Alarm.site_id)
        .where(Alarm.device_class != SITE_DEVICE_CLASS)
        .group_by(Site.id, Alarm.device_id)
    )
    if site is not None:
        agents, alarms = agents.where(Site.name == site), alarms.where(Site.name == site)
    if device_id is not None:
        alarms = alarms.where(Alarm.device_id == device_id)
    for agent, site_row in session.execute(agents.where(Agent.revoked_at.is_(None))):
        info: dict[str, Any] = (agent.health or {}).get("device_info") or {}
        for dev, state in agent.device_states.items():
            if device_id is not None and dev != device_id:
                continue
            summary = entry(site_row, dev)
            summary.state = state
            known = info.get(dev)
            if isinstance(known, dict):
                summary.profile = known.get("profile") or None
                if known.get("device_class"):
                    summary._classes.add(str(known["device_class"]))
    for site_row, dev, device_class, active in session.execute(alarms):
        summary = entry(site_row, dev)
        summary._classes.add(device_class)
        summary.active_alarms += int(active or 0)
    result = []
    for key in sorted(devices):
        summary = devices[key]
        summary.device_class = min(summary._classes) if summary._classes else None
        result.append(summary)
    return result


def last_values(session: Session, site_id: int, device_id: str) -> LastValues | None:
    """The readings of the device's latest job item that carried some, if any."""
    stmt = (
        select(JobItemRecord)
        .where(JobItemRecord.site_id == site_id, JobItemRecord.device_id == device_id)
        .order_by(JobItemRecord.at.desc(), JobItemRecord.id.desc())
        .limit(_VALUE_ITEMS)
    )
    for item in session.scalars(stmt):
        if item.values:
            return LastValues(item.at, item.job_id, item.name, dict(item.values))
    return None
