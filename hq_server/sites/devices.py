"""Devices as HQ knows them: HQ keeps no device table, it learns devices from the agents'
heartbeats (state; class and profile from agents that report them) and from alarms (class, the
count of active alarms); the last values it knows of a device are the readings of its latest
job that returned some (a poll, a check). Read by the API (GET /devices) and the console."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from hq_server.store.models import Agent, Alarm, JobItemRecord, Site

# HQ's own "site unreachable" alarm has this device class: it is not a device.
SITE_DEVICE_CLASS = "site"
# How many of a device's latest job items are looked at for values.
_VALUE_ITEMS = 20


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """A device at a site, as its agent last reported it, with its active alarm count."""

    site: str
    site_id: int
    device_id: str
    device_class: str | None = None
    profile: str | None = None
    state: str = "unknown"
    active_alarms: int = 0


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One page of devices, and how many there are in all."""

    total: int
    rows: list[DeviceSummary]


@dataclass(frozen=True, slots=True)
class LastValues:
    """The readings of a device's latest job that returned some."""

    at: datetime
    job_id: uuid.UUID
    item: str
    values: dict[str, Any]


_Key = tuple[str, str]  # (site name, device id)


def _queries(site: str | None, device_id: str | None) -> tuple[Any, Any]:
    agents = (
        select(Site.id, Site.name, Agent.device_states, Agent.health)
        .join(Site, Site.id == Agent.site_id)
        .where(Agent.revoked_at.is_(None))
    )
    # One row per device with alarms: its (smallest) class and how many are active.
    alarms = (
        select(
            Site.id,
            Site.name,
            Alarm.device_id,
            func.min(Alarm.device_class),
            func.sum(case((Alarm.active.is_(True), 1), else_=0)),
        )
        .join(Site, Site.id == Alarm.site_id)
        .where(Alarm.device_class != SITE_DEVICE_CLASS)
        .group_by(Site.id, Site.name, Alarm.device_id)
    )
    if site is not None:
        agents, alarms = agents.where(Site.name == site), alarms.where(Site.name == site)
    if device_id is not None:
        alarms = alarms.where(Alarm.device_id == device_id)
    return agents, alarms


def _devices(
    session: Session,
    site: str | None,
    device_id: str | None,
    page: slice | None = None,
) -> tuple[int, list[DeviceSummary]]:
    """How many devices there are, and those of `page` (all without one) by site and id.
    Read as plain rows, and only the page's devices are built: ten thousand devices are
    counted and sorted in tens of milliseconds."""
    agents_q, alarms_q = _queries(site, device_id)
    agents = session.execute(agents_q).all()
    alarms = session.execute(alarms_q).all()
    keys = {(name, dev) for _sid, name, states, _h in agents for dev in (states or {})}
    if device_id is not None:
        keys = {key for key in keys if key[1] == device_id}
    keys.update((name, dev) for _sid, name, dev, _c, _a in alarms)
    chosen = sorted(keys)[page] if page is not None else sorted(keys)
    wanted = set(chosen)
    sites = {name for name, _dev in chosen}
    # site id, state, profile, smallest class seen, active alarms
    facts: dict[_Key, list[Any]] = {key: [0, "unknown", None, None, 0] for key in chosen}

    def add_class(entry: list[Any], device_class: str | None) -> None:
        if device_class and (entry[3] is None or device_class < entry[3]):
            entry[3] = device_class

    for site_id, name, states, health in agents:
        if name not in sites:
            continue
        info: dict[str, Any] = (health or {}).get("device_info") or {}
        for dev, state in (states or {}).items():
            entry = facts.get((name, dev))
            if entry is None:
                continue
            entry[0], entry[1] = site_id, state
            known = info.get(dev)
            if isinstance(known, dict):
                entry[2] = known.get("profile") or None
                add_class(entry, known.get("device_class"))
    for site_id, name, dev, device_class, active in alarms:
        if (name, dev) in wanted:
            entry = facts[(name, dev)]
            entry[0] = site_id
            add_class(entry, device_class)
            entry[4] += int(active or 0)
    rows = [
        DeviceSummary(key[0], f[0], key[1], f[3], f[2], f[1], f[4])
        for key in chosen
        for f in (facts[key],)
    ]
    return len(keys), rows


def list_devices(
    session: Session, site: str | None = None, device_id: str | None = None
) -> list[DeviceSummary]:
    """Devices known at each site (or at one), by site name and device id."""
    return _devices(session, site, device_id)[1]


def page_devices(
    session: Session, site: str | None = None, *, limit: int, offset: int = 0
) -> DevicePage:
    """One page of list_devices, and how many there are in all."""
    total, rows = _devices(session, site, None, slice(offset, offset + limit))
    return DevicePage(total, rows)


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
