"""A console-sized HQ database for the console benchmark (issue 13): 1,000 sites (one agent each,
20 devices each), 20,000 open alarms (each with its raise event) and 5,000 open tickets, on
SQLite or PostgreSQL, written through the store's bulk paths (`hq_server.store.rows`), so
seeding takes seconds, not the hours ingesting 20,000 events one batch at a time would.

The rows are what HQ itself would hold: bundled-profile fault codes with their English and
Chinese titles, grades 1-5 in a realistic mix, alarms flapping, agents online and offline with
their outbox depth and dropped events, tickets in every open status with acknowledge and restore
deadlines (counted on a 24x7 clock from the grade's policy, some already missed), assignees,
ticket numbers from the year's counter (so HQ's next ticket takes the next number). Random
choices come from a seeded generator: the same scale gives the same database.

As a module:

    from benchmarks.console_seed import Scale, seed
    seeded = seed(url, Scale(), users={"bench": "admin"}, password="...")  # migrated database

From the command line (migrates the database first; prints what it wrote and how long it took):

    .venv/bin/python -m benchmarks.console_seed --db-url sqlite:////tmp/console.sqlite3
    .venv/bin/python -m benchmarks.console_seed --db-url postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dconsole
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.access.users import create_user
from hq_server.core.domain import Role, TicketStatus
from hq_server.store import rows
from hq_server.store.db import Database, upgrade
from hq_server.store.models import Agent, Alarm, Event, Site, Ticket, TicketCounter
from hq_server.tickets.records import fold, format_number
from protocol.grades import DEFAULT_POLICIES, Grade

# Fault codes of the bundled profiles, with the device class raising them and both titles.
FAULTS: tuple[tuple[str, str, str, str], ...] = (
    ("off_air", "transmitter", "Transmitter off air", "发射机停播"),
    (
        "power_drop",
        "transmitter",
        "Forward power 3 dB or more below nominal",
        "正向功率低于标称值 3 dB 或以上",
    ),
    ("reflected_high", "transmitter", "Reflected power high", "反射功率过高"),
    ("tx_warning", "transmitter", "Transmitter warning", "发射机警告"),
    ("on_battery", "ups", "UPS on battery", "UPS 电池供电"),
    ("battery_low", "ups", "UPS battery low", "UPS 电池电量低"),
    ("port_down", "switch", "Port down", "端口中断"),
    ("fan_fault", "switch", "Fan fault", "风扇故障"),
    ("temp_high", "switch", "Temperature high", "温度过高"),
    ("trunk_down", "pbx", "Trunk down", "中继中断"),
    ("unreachable", "pbx", "Device unreachable", "设备不可达"),
    ("config_changed", "switch", "Configuration changed", "配置已更改"),
)
GRADE_WEIGHTS = {1: 4, 2: 12, 3: 40, 4: 34, 5: 10}
TIMEZONES = ("Asia/Shanghai", "Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Europe/London")
CUSTOMERS = tuple(f"customer-{i:02d}" for i in range(1, 21))
ASSIGNEES = ("", "", "li.wei", "wang.fang", "zhang.min", "chen.jie", "liu.yang")
OPEN = (
    TicketStatus.NEW,
    TicketStatus.NEW,
    TicketStatus.ACKNOWLEDGED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.PENDING_CUSTOMER,
)


@dataclass(frozen=True, slots=True)
class Scale:
    """How much to write; the defaults are issue 13's benchmark."""

    sites: int = 1000
    devices_per_site: int = 20
    alarms: int = 20_000
    tickets: int = 5_000
    offline_share: float = 0.05  # agents last heard from an hour ago
    flapping_share: float = 0.02
    seed: int = 13


@dataclass(slots=True)
class Seeded:
    """What `seed` wrote."""

    sites: int
    agents: int
    alarms: int
    events: int
    tickets: int
    users: list[str]
    seconds: float
    site_names: list[str] = field(default_factory=list)
    ticket_numbers: list[str] = field(default_factory=list)


def _columns(model: type[Any]) -> tuple[str, ...]:
    return tuple(c.key for c in rows.table_of(model).columns if c.key != "id")


def _default(column: Any) -> Any:
    """A column's Python-side scalar default (None when it has none): columns added by later
    revisions need not be named by the seed."""
    default = column.default
    return default.arg if default is not None and default.is_scalar else None


def _insert(session: Session, model: type[Any], values: Sequence[dict[str, Any]]) -> None:
    """INSERT dicts (a column left out takes its default), in chunks (one executemany each)."""
    table = rows.table_of(model)
    given = values[0].keys() if values else ()
    # A column the seed leaves out is written with its Python default, or left to the database
    # when it has a server default.
    columns = tuple(
        c for c in _columns(model) if c in given or table.columns[c].server_default is None
    )
    defaults = {c: _default(table.columns[c]) for c in columns}
    for start in range(0, len(values), 5000):
        chunk = values[start : start + 5000]
        rows.insert_rows(
            session, table, columns, ([v.get(c, defaults[c]) for c in columns] for v in chunk)
        )


def _due(opened: datetime, grade: int, minutes_of: str) -> datetime | None:
    policy = DEFAULT_POLICIES[Grade(grade)]
    minutes = policy.ack_minutes if minutes_of == "ack" else policy.restore_minutes
    return None if minutes is None else opened + timedelta(minutes=minutes)


def seed(
    url: str,
    scale: Scale = Scale(),
    *,
    now: datetime | None = None,
    users: dict[str, str] | None = None,
    password: str = "",
) -> Seeded:
    """Write `scale`'s rows into the migrated, empty database at `url`; `users` (name -> role)
    are created with `password`."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    rnd = random.Random(scale.seed)
    db = Database(url)
    try:
        with db.writer() as session, session.begin():
            seeded = _seed(session, scale, now, rnd)
            for name, role in (users or {}).items():
                create_user(session, name, Role(role), password, now)
            seeded.users = sorted(users or {})
    finally:
        db.dispose()
    seeded.seconds = time.perf_counter() - started
    return seeded


def _seed(session: Session, scale: Scale, now: datetime, rnd: random.Random) -> Seeded:
    names = [f"site-{i:04d}" for i in range(1, scale.sites + 1)]
    _insert(
        session,
        Site,
        [
            {
                "name": name,
                "customer": CUSTOMERS[i % len(CUSTOMERS)],
                "contact": f"+86 10 5555 {i:04d}",
                "timezone": TIMEZONES[i % len(TIMEZONES)],
                "created_at": now - timedelta(days=400),
                "calendar_id": None,
            }
            for i, name in enumerate(names)
        ],
    )
    site_ids = {n: i for n, i in session.execute(select(Site.name, Site.id))}
    devices = [f"dev{d:02d}" for d in range(1, scale.devices_per_site + 1)]
    agents = []
    for i, name in enumerate(names):
        offline = rnd.random() < scale.offline_share
        seen = now - (timedelta(hours=1) if offline else timedelta(seconds=rnd.randint(1, 50)))
        states = {d: "ok" if rnd.random() > 0.05 else "unreachable" for d in devices}
        agents.append(
            {
                "site_id": site_ids[name],
                "name": f"box-{i:04d}",
                "token_hash": uuid.UUID(int=rnd.getrandbits(128)).hex * 2,
                "version": "0.1.0",
                "enrolled_at": now - timedelta(days=300),
                "revoked_at": None,
                "last_seen_at": seen,
                "last_seq": 1000,
                "reported_seq": 1000,
                "outbox_depth": rnd.choice((0, 0, 0, 0, 3, 120)) if not offline else 2500,
                "dropped_events": 0 if rnd.random() > 0.01 else rnd.randint(1, 40),
                "device_states": states,
                "revoked_by": None,
                "replaced_by_id": None,
                "health": {"set_aside_events": 0, "cpu_percent": round(rnd.uniform(1, 30), 1)},
                "health_at": seen,
            }
        )
    _insert(session, Agent, agents)
    agent_of = {s: i for s, i in session.execute(select(Agent.site_id, Agent.id))}

    # Alarms spread over the sites, each a distinct (device, code, component).
    grades = list(GRADE_WEIGHTS)
    weights = list(GRADE_WEIGHTS.values())
    alarms: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for n in range(scale.alarms):
        name = names[n % scale.sites]
        # The k-th alarm of its site: a distinct (device, code) while there are enough, then
        # the same ones on further components.
        k, site_index = divmod(n, scale.sites)
        device = devices[k % len(devices)]
        turn = k // len(devices)
        code, device_class, title, title_zh = FAULTS[(turn + site_index) % len(FAULTS)]
        component = "" if turn < len(FAULTS) else f"unit{turn // len(FAULTS)}"
        if code == "port_down":
            component = f"port{turn}"
        key = f"{device}:{code}:{component}" if component else f"{device}:{code}"
        grade = rnd.choices(grades, weights)[0]
        raised = now - timedelta(minutes=rnd.randint(1, 3 * 24 * 60))
        flapping = rnd.random() < scale.flapping_share
        site_id = site_ids[name]
        alarms.append(
            {
                "site_id": site_id,
                "fault_key": key,
                "device_id": device,
                "device_class": device_class,
                "code": code,
                "component": component,
                "grade": grade,
                "title": title,
                "title_zh": title_zh,
                "active": True,
                "first_raised_at": raised,
                "last_change_at": raised,
                "cleared_at": None,
                "raise_count": 7 if flapping else 1,
                "last_agent_id": agent_of[site_id],
                "last_event_seq": n + 1,
                "flapping": flapping,
                "state_log": "1010101" if flapping else "1",
            }
        )
        events.append(
            {
                "event_id": uuid.UUID(int=rnd.getrandbits(128)),
                "agent_id": agent_of[site_id],
                "site_id": site_id,
                "seq": n + 1,
                "kind": "raise",
                "fault_key": key,
                "device_id": device,
                "device_class": device_class,
                "code": code,
                "component": component,
                "grade": grade,
                "title": title,
                "detail": "",
                "observed_at": raised,
                "received_at": raised,
                "values": {},
                "applied": True,
            }
        )
    _insert(session, Alarm, alarms)
    _insert(session, Event, events)

    # Tickets for the first `tickets` alarms, spread over the sites like the alarms.
    alarm_ids = {
        (site_id, key): alarm_id
        for alarm_id, site_id, key in session.execute(
            select(Alarm.id, Alarm.site_id, Alarm.fault_key)
        )
    }
    year = now.year
    tickets: list[dict[str, Any]] = []
    numbers: list[str] = []
    for serial, alarm in enumerate(alarms[: scale.tickets], start=1):
        site_id = alarm["site_id"]
        alarm_id = alarm_ids[(site_id, alarm["fault_key"])]
        number = format_number(year, serial)
        numbers.append(number)
        status = rnd.choice(OPEN)
        opened = alarm["first_raised_at"]
        acked = status is not TicketStatus.NEW
        title = f"{alarm['device_id']}: {alarm['title']}"
        title_zh = f"{alarm['device_id']}: {alarm['title_zh']}"
        if alarm["component"]:
            title += f" ({alarm['component']})"
            title_zh += f" ({alarm['component']})"
        tickets.append(
            {
                "number": number,
                "site_id": site_id,
                "alarm_id": alarm_id,
                "fault_key": alarm["fault_key"],
                "device_id": alarm["device_id"],
                "code": alarm["code"],
                "component": alarm["component"],
                "grade": alarm["grade"],
                "status": status.value,
                "title": title,
                "opened_at": opened,
                "ack_due_at": _due(opened, alarm["grade"], "ack"),
                "restore_due_at": _due(opened, alarm["grade"], "restore"),
                "acknowledged_at": opened + timedelta(minutes=rnd.randint(1, 20))
                if acked
                else None,
                "resolved_at": None,
                "closed_at": None,
                "alarm_active": True,
                "updated_at": opened,
                "symptom": alarm["title"],
                "on_duty": "duty-desk",
                "assignee": rnd.choice(ASSIGNEES) if acked else "",
                "resolution": None,
                "time_spent_minutes": 0,
                "paused_since": opened if status is TicketStatus.PENDING_CUSTOMER else None,
                "pauses": None,
                "escalation": None,
                "ack_escalation_level": 0,
                "ack_escalation_at": None,
                "restore_escalation_level": 0,
                "restore_escalation_at": None,
                "title_folded": fold(f"{title}\n{title_zh}"),
                "title_zh": title_zh,
            }
        )
    _insert(session, Ticket, tickets)
    rows.insert_rows(
        session, rows.table_of(TicketCounter), ("year", "last_number"), [(year, len(tickets))]
    )
    return Seeded(
        sites=len(names),
        agents=len(agents),
        alarms=len(alarms),
        events=len(events),
        tickets=len(tickets),
        users=[],
        seconds=0.0,
        site_names=names,
        ticket_numbers=numbers,
    )


def main(argv: list[str] | None = None) -> int:
    """Migrate and seed a database; print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", required=True, help="an empty database (SQLAlchemy URL)")
    default = Scale()
    parser.add_argument("--sites", type=int, default=default.sites)
    parser.add_argument("--alarms", type=int, default=default.alarms)
    parser.add_argument("--tickets", type=int, default=default.tickets)
    parser.add_argument("--user", default="", help="also create this admin user")
    parser.add_argument("--password", default="", help="the user's password")
    args = parser.parse_args(argv)
    upgrade(args.db_url)
    scale = Scale(sites=args.sites, alarms=args.alarms, tickets=args.tickets)
    users = {args.user: Role.ADMIN.value} if args.user else None
    seeded = seed(args.db_url, scale, users=users, password=args.password)
    print(
        f"seeded {seeded.sites} sites, {seeded.agents} agents, {seeded.alarms} open alarms "
        f"({seeded.events} events), {seeded.tickets} open tickets in {seeded.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
