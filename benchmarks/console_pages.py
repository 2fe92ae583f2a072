"""The console's overview and ticket list with 1,000 sites, 20,000 open alarms and 5,000 open
tickets, on SQLite and PostgreSQL: server time p50/p99 per page, and page weight.

The rows are written straight into a migrated database (one agent per site heard from a minute
ago, 20 active alarms and 5 open tickets per site, grades 1-5); the real app (create_app) then
serves each page in process through Starlette's TestClient, logged in as a viewer, so the time
is the server's (routing, session lookup, queries, templates), without a network. Each page is
fetched `--warmup` times, then timed `--requests` times one after another. Page weight is the
HTML as sent (no compression), and gzipped (what a proxy or the browser would carry with
compression on). Targets (issue 13): p99 under 300 ms and under 300 KB.

    .venv/bin/python -m benchmarks.console_pages [--backends sqlite,postgresql] [--requests 50]
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from hq_server.access.users import create_user
from hq_server.app import create_app
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.security import hash_token
from hq_server.core.settings import Settings
from hq_server.store.db import Database, upgrade
from hq_server.store.models import Agent, Alarm, Site, Ticket
from hq_server.tickets.records import fold

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
PASSWORD = "Correct-Horse-42-battery"  # noqa: S105 (a benchmark user)
ZONES = ["Asia/Shanghai", "Asia/Urumqi", "Europe/Berlin", "UTC"]
STATUSES = ["new", "acknowledged", "in_progress"]
ACK = {1: 10, 2: 30, 3: 120, 4: 480, 5: None}
RESTORE = {1: 240, 2: 1440, 3: 4320, 4: None, 5: None}
PAGES = {"overview": "/", "ticket list": "/tickets", "ticket list, grade 1": "/tickets?grade=1"}


def seed(db: Database, sites: int, alarms_per_site: int, tickets_per_site: int) -> None:
    """Sites, agents, active alarms and open tickets, written in bulk."""
    rng = random.Random(13)
    naive = NOW
    with db.writer() as session, session.begin():
        session.execute(
            insert(Site),
            [
                {
                    "id": i + 1,
                    "name": f"station-{i + 1:04d}",
                    "customer": f"Customer {i % 40}",
                    "contact": "",
                    "timezone": ZONES[i % len(ZONES)],
                    "created_at": naive,
                }
                for i in range(sites)
            ],
        )
        session.execute(
            insert(Agent),
            [
                {
                    "id": i + 1,
                    "site_id": i + 1,
                    "name": f"box-{i + 1}",
                    "token_hash": hash_token(f"bench-{i}"),
                    "version": "0.1.0",
                    "enrolled_at": naive,
                    "last_seen_at": NOW - timedelta(seconds=rng.choice([30, 60, 600])),
                    "last_seq": 0,
                    "reported_seq": 0,
                    "outbox_depth": rng.choice([0, 0, 0, 12]),
                    "dropped_events": 0,
                    "device_states": {},
                }
                for i in range(sites)
            ],
        )
        alarm_rows, ticket_rows = [], []
        alarm_id = 0
        for s in range(sites):
            for a in range(alarms_per_site):
                alarm_id += 1
                grade = rng.randint(1, 5)
                device, code = f"dev{a % 10}", f"fault_{a}"
                fault_key = f"{device}:{code}"
                title = f"{device}: fault {a} at station {s + 1}"
                raised = NOW - timedelta(minutes=rng.randint(1, 600))
                alarm_rows.append(
                    {
                        "id": alarm_id,
                        "site_id": s + 1,
                        "fault_key": fault_key,
                        "device_id": device,
                        "device_class": "transmitter",
                        "code": code,
                        "component": "",
                        "grade": grade,
                        "title": title,
                        "active": True,
                        "first_raised_at": raised,
                        "last_change_at": raised,
                        "raise_count": 1,
                        "last_agent_id": s + 1,
                        "last_event_seq": a,
                        "flapping": False,
                        "state_log": "1",
                    }
                )
                if a < tickets_per_site:
                    status = rng.choice(STATUSES)
                    ack, restore = ACK[grade], RESTORE[grade]
                    ticket_rows.append(
                        {
                            "number": f"SW-2026-{len(ticket_rows) + 1:06d}",
                            "site_id": s + 1,
                            "alarm_id": alarm_id,
                            "fault_key": fault_key,
                            "device_id": device,
                            "code": code,
                            "component": "",
                            "grade": grade,
                            "status": status,
                            "title": title,
                            "title_folded": fold(title),
                            "opened_at": raised,
                            "ack_due_at": raised + timedelta(minutes=ack) if ack else None,
                            "restore_due_at": (
                                raised + timedelta(minutes=restore) if restore else None
                            ),
                            "acknowledged_at": None if status == "new" else raised,
                            "alarm_active": True,
                            "updated_at": raised,
                            "symptom": "",
                            "on_duty": "",
                            "assignee": rng.choice(["", "Li Wei", "Zhang San"]),
                            "time_spent_minutes": 0,
                            "ack_escalation_level": 0,
                            "restore_escalation_level": 0,
                        }
                    )
        for start in range(0, len(alarm_rows), 5000):
            session.execute(insert(Alarm), alarm_rows[start : start + 5000])
        for start in range(0, len(ticket_rows), 5000):
            session.execute(insert(Ticket), ticket_rows[start : start + 5000])
        create_user(session, "viewer", Role.VIEWER, PASSWORD, NOW)
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            for table in ("sites", "agents", "alarms", "tickets"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
                conn.execute(text(f"ANALYZE {table}"))


def _login(client: Any) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    form = {"csrf_token": token[1], "username": "viewer", "password": PASSWORD, "next": "/"}
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text


def measure(url: str, data_dir: Path, warmup: int, requests: int) -> dict[str, dict[str, Any]]:
    """Per page: p50/p99 ms and the page's size."""
    settings = Settings(
        db_url=url,
        data_dir=data_dir,
        scheduler_enabled=False,
        job_schedules_enabled=False,
        heartbeat_timeout=timedelta(seconds=180),
    )
    app = create_app(settings, clock=ManualClock(NOW))
    results: dict[str, dict[str, Any]] = {}
    with TestClient(app) as client:
        _login(client)
        for name, path in PAGES.items():
            for _ in range(warmup):
                assert client.get(path).status_code == 200
            times = []
            body = b""
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:500]
                body = response.content
            times.sort()
            results[name] = {
                "p50_ms": statistics.median(times),
                "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
                "bytes": len(body),
                "gzip_bytes": len(gzip.compress(body, 6)),
                "rows": body.count(b"<tr>"),
            }
    return results


def run_backend(backend: str, args: argparse.Namespace) -> dict[str, dict[str, Any]] | None:
    """Seed a fresh database of `backend`, measure, clean up."""
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'hq.sqlite3'}"
            schema = None
        else:
            schema = f"bench_console_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_SERVER, poolclass=NullPool)
            try:
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            except OperationalError as exc:
                print(f"PostgreSQL unavailable, skipped: {exc.orig}", file=sys.stderr)
                return None
            url = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        try:
            upgrade(url)
            db = Database(url)
            try:
                started = time.perf_counter()
                seed(db, args.sites, args.alarms // args.sites, args.tickets // args.sites)
                seconds = time.perf_counter() - started
                print(f"{backend}: seeded in {seconds:.1f} s", file=sys.stderr)
            finally:
                db.dispose()
            return measure(url, Path(tmp), args.warmup, args.requests)
        finally:
            if schema is not None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()


def main() -> None:
    """Run the backends and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--alarms", type=int, default=20_000)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    everything: dict[str, Any] = {}
    print(
        f"{args.sites} sites, {args.alarms} open alarms, {args.tickets} open tickets; "
        f"{args.requests} requests per page after {args.warmup} warm-up requests"
    )
    print()
    print("| backend | page | p50 | p99 | rows | size | gzipped |")
    print("|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        results = run_backend(backend, args)
        if results is None:
            continue
        everything[backend] = results
        for page, r in results.items():
            print(
                f"| {backend} | {page} | {r['p50_ms']:.0f} ms | {r['p99_ms']:.0f} ms | "
                f"{r['rows']} | {r['bytes'] / 1024:.0f} KB | {r['gzip_bytes'] / 1024:.0f} KB |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))


if __name__ == "__main__":
    main()
