"""Fixtures for HQ tests: a real database per test (SQLite file or a fresh PostgreSQL schema),
the real app on it driven by TestClient, and a controllable clock."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from hq_server.access.auth import create_api_token
from hq_server.app import create_app
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.scheduler import StepReport
from hq_server.sites.enrollment import create_enrollment_token
from hq_server.sites.registry import ensure_site
from hq_server.store.db import Database, upgrade
from protocol.wire import EventKind
from tests.peers import missing_peer

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns once, at import, when it finds
    # httpx (the project's HTTP client); the client works the same with either.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

_pg_state: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    """None if PostgreSQL answers on 127.0.0.1:5432, else why not (checked once per session)."""
    if "reason" not in _pg_state:
        # NullPool: the probe connection is closed at once, not left for the GC to find.
        engine = create_engine(PG_SERVER, connect_args={"connect_timeout": 3}, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _pg_state["reason"] = None
        except OperationalError as exc:
            _pg_state["reason"] = str(exc.orig).strip().splitlines()[0]
        finally:
            engine.dispose()
    return _pg_state["reason"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a temp SQLite file, or a fresh schema in PostgreSQL's `test` database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hq.sqlite3'}"
        return
    with pg_schema("hq_test") as url:
        yield url


@contextmanager
def pg_schema(prefix: str) -> Iterator[str]:
    """The URL of a fresh schema `<prefix>_<random>` in PostgreSQL's `test` database, dropped
    afterwards (the test is skipped, or fails under STATIONWATCH_REQUIRE_PEERS, without one)."""
    reason = _pg_unavailable()
    if reason is not None:
        missing_peer(f"PostgreSQL on 127.0.0.1:5432 ({reason})")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_SERVER)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        # search_path makes every table (and alembic_version) live in the test's own schema.
        yield f"{PG_SERVER}?options=-csearch_path%3D{schema}"
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


# Migrating takes ~0.5 s per test; the result is the same every time, so it is made once per
# session and reproduced: SQLite by copying the migrated file, PostgreSQL by replaying the
# statements the migration ran (into the test's own schema, via search_path).
_template: dict[str, Any] = {}


def _record_migration(url: str) -> list[tuple[str, Any]]:
    """Migrate `url` and return every statement (with its parameters) the migration executed."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        upgrade(url)
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return statements


def _replay(url: str, statements: list[tuple[str, Any]]) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement, parameters in statements:
                if parameters:
                    conn.exec_driver_sql(statement, parameters)
                else:
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.fixture
def migrated_url(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database of `db_url`, migrated to head."""
    if db_url.startswith("sqlite"):
        template = _template.get("sqlite")
        if template is None:
            template = tmp_path_factory.mktemp("template") / "hq.sqlite3"
            upgrade(f"sqlite:///{template}")
            _template["sqlite"] = template
        shutil.copyfile(template, db_url.removeprefix("sqlite:///"))
        return db_url
    if "postgresql" not in _template:
        _template["postgresql"] = _record_migration(db_url)
    else:
        _replay(db_url, _template["postgresql"])
    return db_url


@pytest.fixture
def clock() -> ManualClock:
    """A clock that only moves when the test says so."""
    return ManualClock(START)


@pytest.fixture
def database(migrated_url: str) -> Iterator[Database]:
    """A Database on the migrated test database."""
    db = Database(migrated_url)
    yield db
    db.dispose()


@dataclass
class HQ:
    """The real app on a real database, plus helpers to act as admin, agent and user."""

    client: TestClient
    db: Database
    clock: ManualClock
    _seq: dict[str, int] = field(default_factory=dict)

    def user_token(self, role: Role = Role.VIEWER, name: str = "test") -> str:
        """A new API token with `role`, valid for ten years (tests move the clock far)."""
        with self.db.writer() as session, session.begin():
            return create_api_token(
                session, name, role, self.clock.now(), lifetime=timedelta(days=3650)
            )

    def enrollment_token(self, site: str = "site-a", ttl: timedelta = timedelta(hours=24)) -> str:
        """A new enrollment token for `site` (created if missing)."""
        with self.db.writer() as session, session.begin():
            row, _ = ensure_site(session, site, self.clock.now())
            return create_enrollment_token(session, row, self.clock.now(), ttl)

    def enroll(self, site: str = "site-a", hostname: str = "box1") -> str:
        """Enroll a new agent at `site` through the API; returns its token."""
        body = {
            "enrollment_token": self.enrollment_token(site),
            "hostname": hostname,
            "agent_version": "0.1.0",
        }
        response = self.client.post("/api/v1/enroll", json=body)
        assert response.status_code == 200, response.text
        token: str = response.json()["agent_token"]
        return token

    def event(
        self,
        kind: EventKind | str = EventKind.RAISE,
        *,
        agent: str = "default",
        device_id: str = "tx1",
        code: str = "off_air",
        component: str = "",
        grade: int = 1,
        title: str = "Transmitter off air",
        title_zh: str | None = None,
        observed_at: datetime | None = None,
        seq: int | None = None,
    ) -> dict[str, Any]:
        """A FaultEvent as JSON, with the next seq of `agent` unless given."""
        if seq is None:
            seq = self._seq.get(agent, 0) + 1
        self._seq[agent] = max(seq, self._seq.get(agent, 0))
        event = {
            "event_id": str(uuid.uuid4()),
            "seq": seq,
            "kind": str(EventKind(kind)),
            "device_id": device_id,
            "device_class": "transmitter",
            "code": code,
            "component": component,
            "grade": grade,
            "title": title,
            "detail": "",
            "observed_at": (observed_at or self.clock.now()).isoformat(),
            "values": {"forward_power_w": 0.0},
        }
        if title_zh is not None:  # left out otherwise, as agents before the field send it
            event["title_zh"] = title_zh
        return event

    def post_events(
        self, token: str, events: list[dict[str, Any]], *, compress: bool = True
    ) -> httpx.Response:
        """POST a batch, gzip-compressed by default, as the agent's uplink does."""
        raw = json.dumps({"events": events}).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if compress:
            raw = gzip.compress(raw)
            headers["Content-Encoding"] = "gzip"
        response: httpx.Response = self.client.post("/api/v1/events", content=raw, headers=headers)
        return response

    def get(self, token: str, path: str, **params: Any) -> httpx.Response:
        """GET a user endpoint with a bearer token."""
        headers = {"Authorization": f"Bearer {token}"}
        response: httpx.Response = self.client.get(path, params=params, headers=headers)
        return response

    def call(
        self, method: str, token: str | None, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        """Any request with an optional bearer token and JSON body."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response: httpx.Response = self.client.request(
            method, path, json=body, params=params, headers=headers
        )
        return response

    def post(self, token: str | None, path: str, body: Any = None) -> httpx.Response:
        """POST a JSON body with a bearer token."""
        return self.call("POST", token, path, body)

    def step(self) -> StepReport:
        """One step of the app's scheduler (escalations, notifications, dead man, windows)."""
        report: StepReport = self.client.app.state.scheduler.step()  # type: ignore[attr-defined]
        return report

    def tickets(self, token: str, **params: Any) -> list[dict[str, Any]]:
        """GET /api/v1/tickets, asserting success."""
        response = self.get(token, "/api/v1/tickets", **params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result

    def alarms(self, token: str, **params: Any) -> list[dict[str, Any]]:
        """GET /api/v1/alarms, asserting success."""
        response = self.get(token, "/api/v1/alarms", **params)
        assert response.status_code == 200, response.text
        result: list[dict[str, Any]] = response.json()
        return result


@contextmanager
def start_hq(url: str, clock: ManualClock, tmp_path: Path, **overrides: Any) -> Iterator[HQ]:
    """The HQ app on a migrated database, started (lifespan) and driven by TestClient."""
    # The scheduler loop stays off: tests call its step function themselves (no sleeps).
    values: dict[str, Any] = {
        "db_url": url,
        "data_dir": tmp_path,
        "max_body_bytes": 1024 * 1024,
        "scheduler_enabled": False,
        # Tests send no heartbeats; the dead man's switch has its own tests.
        "heartbeat_timeout": timedelta(days=3650),
        **overrides,
    }
    app = create_app(Settings(**values), clock=clock)
    with TestClient(app) as client:
        yield HQ(client=client, db=app.state.db, clock=clock)


@pytest.fixture
def hq(migrated_url: str, clock: ManualClock, tmp_path: Path) -> Iterator[HQ]:
    """The HQ app on a migrated database, started (lifespan) and driven by TestClient."""
    with start_hq(migrated_url, clock, tmp_path) as started:
        yield started


__all__ = ["HQ", "START", "TestClient", "start_hq"]
