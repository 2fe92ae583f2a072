"""Real HQ / simulator / agent processes for end-to-end tests."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from agent.outbox import Outbox
from checks.tracker import FaultChange
from protocol.grades import Grade
from protocol.wire import EventKind
from tests.peers import free_port
from tests.procs import Procs


class Hq:
    """A real `stationwatch hq serve` process on its own SQLite data dir, or on the PostgreSQL
    database `db_url` (its key file still in the data dir)."""

    def __init__(
        self,
        procs: Procs,
        sw: list[str],
        env: dict[str, str],
        data_dir: Path,
        db_url: str | None = None,
    ) -> None:
        self.procs, self.sw, self.env, self.data_dir = procs, sw, env, data_dir
        self.db_url = db_url
        self.where = ["--data-dir", str(data_dir)] + (["--db-url", db_url] if db_url else [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.capture("db", "upgrade")
        self.admin = self.capture("token", "create", "--role", "admin", "--name", "e2e")
        self.api = httpx.Client(
            base_url=self.url,
            timeout=10,
            trust_env=False,
            headers={"Authorization": f"Bearer {self.admin}"},
        )

    def capture(self, *args: str) -> str:
        """Run an `hq` CLI command against this HQ's data dir; its stdout."""
        out = subprocess.run(
            [*self.sw, "hq", *args, *self.where],
            capture_output=True,
            text=True,
            env=self.env,
            check=True,
            timeout=60,
        )
        return out.stdout.strip()

    def enroll_token(self, site: str = "E2E station") -> str:
        """A one-time enrollment token for a (new) site."""
        return self.capture("site", "add", site)

    def up(self) -> bool:
        """Whether /healthz answers."""
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self) -> None:
        """Start serving and wait for /healthz."""
        self.procs.start(
            "hq",
            [*self.sw, "hq", "serve", "--port", str(self.port), *self.where],
        )
        self.procs.wait_for("HQ /healthz", self.up, 60)

    def stop(self) -> None:
        """Stop the server process (the data stays)."""
        self.procs.stop("hq")

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read HQ's database directly (read-only) to check exactly-once delivery; `?` marks
        the parameters on either database."""
        if self.db_url:
            engine = create_engine(self.db_url, poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    return [tuple(r) for r in conn.exec_driver_sql(sql.replace("?", "%s"), args)]
            finally:
                engine.dispose()
        db = sqlite3.connect(f"file:{self.data_dir / 'hq.sqlite3'}?mode=ro", uri=True)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def tickets(self, **filters: Any) -> list[dict[str, Any]]:
        """GET /api/v1/tickets (newest first) with optional filters, e.g. grade=1."""
        resp = self.api.get("/api/v1/tickets", params={"limit": 500} | filters)
        resp.raise_for_status()
        return list(resp.json())


@pytest.fixture
def procs(tmp_path: Path, clean_env: dict[str, str]) -> Iterator[Procs]:
    p = Procs(tmp_path, clean_env)
    try:
        yield p
    finally:
        p.stop_all()


@pytest.fixture
def hq(
    procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> Iterator[Hq]:
    h = Hq(procs, stationwatch_cmd, clean_env, tmp_path / "hq")
    yield h
    h.api.close()


def write_site(
    agent_dir: Path,
    hq_url: str,
    devices: list[dict[str, Any]] | None = None,
    creds: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """An agent site config (and 0600 credentials) under agent_dir."""
    agent_dir.mkdir(parents=True, exist_ok=True)
    creds_path = agent_dir / "credentials.yaml"
    creds_path.write_text(yaml.safe_dump(creds or {}))
    creds_path.chmod(0o600)
    config = {
        "site": "e2e",
        "hq": {"url": hq_url, "timeout_s": 2},
        "state_dir": "state",
        "credentials_file": "credentials.yaml",
        "intervals": {"poll_s": 1, "upload_s": 0.5, "heartbeat_s": 2},
        "devices": devices or [],
    } | extra
    path = agent_dir / "site.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def prefill(state_dir: Path, grades: list[int], prefix: str = "pre") -> None:
    """Put events in an agent's outbox before it starts (one fault key each)."""
    box = Outbox(state_dir / "outbox.sqlite", {"dev": "transmitter"})
    try:
        changes = [
            FaultChange(
                EventKind.RAISE,
                "dev",
                f"{prefix}_{i}",
                "",
                Grade(g),
                f"t{i}",
                "",
                1_700_000_000.0 + i,
            )
            for i, g in enumerate(grades)
        ]
        for start in range(0, len(changes), 1000):
            box.record(changes[start : start + 1000], {})
    finally:
        box.close()


def outbox_depth(state_dir: Path) -> int:
    """Events waiting in an agent's outbox (read-only, while the agent runs)."""
    db = sqlite3.connect(f"file:{state_dir / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        db.close()


def start_sim(procs: Procs, sw: list[str], workdir: Path) -> dict[str, Any]:
    """Start the simulated station on ephemeral ports; its manifest."""
    manifest = workdir / "manifest.json"
    procs.start(
        "sim",
        [
            *sw,
            "sim",
            "run",
            "--workdir",
            str(workdir),
            "--manifest",
            str(manifest),
            "--ephemeral-ports",
        ],
    )
    procs.wait_for("simulator manifest", manifest.exists, 60)
    return dict(json.loads(manifest.read_text()))
