"""`python -m hq_server.cli` (= `stationwatch hq`) as real subprocesses on a temp data dir."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select

from hq_server.access.auth import create_api_token
from hq_server.core.domain import Role
from hq_server.core.errors import EnrollmentTokenInvalid
from hq_server.core.security import hash_token
from hq_server.sites.enrollment import enroll
from hq_server.store.db import Database
from hq_server.store.models import Agent, ApiToken, Customer, EnrollmentToken, Site
from protocol.wire import EnrollRequest
from tests.peers import free_port

CLI = [sys.executable, "-m", "hq_server.cli"]
TOKEN_LINE = r"(sw[eau]_[A-Za-z0-9_\-]{43})\n"


@pytest.fixture
def env(clean_env: dict[str, str]) -> dict[str, str]:
    """The child environment, without STATIONWATCH_* settings from the developer's shell."""
    return {k: v for k, v in clean_env.items() if not k.startswith("STATIONWATCH_")}


def hq(
    args: list[str],
    env: dict[str, str],
    timeout: float = 60,
    *,
    cwd: Path | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to completion."""
    return subprocess.run(
        [*CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        input=input,
    )


def _db(data_dir: Path) -> Database:
    return Database(f"sqlite:///{data_dir / 'hq.sqlite3'}")


def _upgraded(data_dir: Path, env: dict[str, str]) -> list[str]:
    """Create HQ's database in `data_dir` (only `db upgrade` and `serve` do); its options."""
    result = hq(["db", "upgrade", "--data-dir", str(data_dir)], env)
    assert result.returncode == 0, result.stderr
    return ["--data-dir", str(data_dir)]


def test_token_create_prints_only_the_token(tmp_path: Path, env: dict[str, str]) -> None:
    _upgraded(tmp_path, env)
    result = hq(
        ["token", "create", "--role", "engineer", "--name", "ops", "--data-dir", str(tmp_path)], env
    )
    assert result.returncode == 0, result.stderr
    match = re.fullmatch(TOKEN_LINE, result.stdout)
    assert match and match.group(1).startswith("swu_")
    token = match.group(1)
    assert token not in result.stderr
    db = _db(tmp_path)
    try:
        with db.session() as session:
            row = session.scalars(select(ApiToken)).one()
        assert (row.name, row.role, row.token_hash) == ("ops", "engineer", hash_token(token))
    finally:
        db.dispose()


def test_token_list_and_revoke(tmp_path: Path, env: dict[str, str]) -> None:
    data = _upgraded(tmp_path, env)
    tokens = [
        hq(["token", "create", "--role", role, "--name", name, *data], env).stdout.strip()
        for role, name in [("admin", "ops-admin"), ("viewer", "wallboard")]
    ]
    listed = hq(["token", "list", *data], env)
    assert listed.returncode == 0, listed.stderr
    assert "ops-admin" in listed.stdout and "wallboard" in listed.stdout
    assert not any(t in listed.stdout + listed.stderr for t in tokens)
    db = _db(tmp_path)
    try:
        with db.session() as session:
            wallboard = session.scalars(select(ApiToken).where(ApiToken.name == "wallboard")).one()
        revoked = hq(["token", "revoke", str(wallboard.id), *data], env)
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked" in revoked.stderr
        with db.session() as session:
            assert session.get_one(ApiToken, wallboard.id).revoked_at is not None
    finally:
        db.dispose()
    # Listed only with --all now; an unknown id is a clear error.
    assert "wallboard" not in hq(["token", "list", *data], env).stdout
    assert "wallboard" in hq(["token", "list", "--all", *data], env).stdout
    unknown = hq(["token", "revoke", "999", *data], env)
    assert unknown.returncode == 1 and "no API token 999" in unknown.stderr


def test_site_add_creates_once_and_prints_a_new_enrollment_token(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "nested" / "hq"  # created on demand by db upgrade
    _upgraded(data, env)
    env = {**env, "STATIONWATCH_DATA_DIR": str(data)}
    args = ["site", "add", "tx-north", "--customer", "ACME", "--timezone", "Asia/Shanghai"]
    first = hq(args, env)
    assert first.returncode == 0, first.stderr
    assert re.fullmatch(TOKEN_LINE, first.stdout) and first.stdout.startswith("swe_")
    assert "created" in first.stderr
    second = hq(args, env)
    assert second.returncode == 0, second.stderr
    assert "exists" in second.stderr
    assert second.stdout != first.stdout
    db = _db(data)
    try:
        with db.session() as session:
            site = session.scalars(select(Site)).one()
            assert (site.name, site.customer, site.timezone) == (
                "tx-north",
                "ACME",
                "Asia/Shanghai",
            )
            tokens = session.scalars(select(EnrollmentToken)).all()
        assert {t.token_hash for t in tokens} == {
            hash_token(first.stdout.strip()),
            hash_token(second.stdout.strip()),
        }
        expiry = tokens[0].expires_at - tokens[0].created_at
        assert expiry.total_seconds() == 24 * 3600
    finally:
        db.dispose()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["token", "create", "--role", "boss"], 2, "invalid choice"),
        (["site", "add", "x", "--timezone", "Mars/Olympus"], 1, "unknown timezone"),
        (["db", "upgrade", "--db-url", "not a url"], 1, "cannot parse database URL"),
        (["db", "upgrade", "--db-url", "mysql://u@h/db"], 1, "unsupported database"),
        (["db", "upgrade", "--db-url", "postgresql+pg8000://u@h/db"], 1, "no driver"),
        (
            ["db", "upgrade", "--db-url", "postgresql+psycopg://postgres@127.0.0.1:1/x"],
            1,
            "cannot use database",
        ),
        (["db", "upgrade", "--db-url", "sqlite:////nonexistent/dir/x.db"], 1, "does not exist"),
        (["serve", "--host", "0.0.0.0"], 2, "--allow-remote"),
        (["frobnicate"], 2, "invalid choice"),
    ],
)
def test_clear_errors_without_traceback(
    tmp_path: Path, env: dict[str, str], args: list[str], code: int, message: str
) -> None:
    result = hq([*args, "--data-dir", str(tmp_path)] if args[0] != "frobnicate" else args, env)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_db_upgrade_on_either_database(migrated_url: str, db_url: str, env: dict[str, str]) -> None:
    # Already migrated by the fixture: upgrading again is a no-op that succeeds.
    result = hq(["db", "upgrade", "--db-url", db_url], env)
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stderr


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_dir_and_database_files_are_private_whatever_the_umask(
    tmp_path: Path, env: dict[str, str], umask: int
) -> None:
    data_dir = tmp_path / "var" / "hq"
    result = subprocess.run(
        [*CLI, "db", "upgrade", "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        umask=umask,
    )
    assert result.returncode == 0, result.stderr
    assert _mode(data_dir) == 0o700
    database = data_dir / "hq.sqlite3"
    assert _mode(database) == 0o600
    # SQLite makes the -wal and -shm files while a connection is open, with the database's mode.
    db = _db(data_dir)
    try:
        with db.writer() as session, session.begin():
            session.add(Site(name="s", timezone="UTC", created_at=datetime.now(UTC)))
        assert _mode(data_dir / "hq.sqlite3-wal") == 0o600
        assert _mode(data_dir / "hq.sqlite3-shm") == 0o600
    finally:
        db.dispose()


def test_a_database_file_hq_creates_is_private_under_umask_0(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        db = Database(f"sqlite:///{tmp_path / 'new.sqlite3'}")
        try:
            with db.engine.begin() as conn:
                conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            modes = {p.name: _mode(p) for p in tmp_path.iterdir()}
        finally:
            db.dispose()
    finally:
        os.umask(previous)
    assert modes == {"new.sqlite3": 0o600, "new.sqlite3-wal": 0o600, "new.sqlite3-shm": 0o600}


def test_db_url_from_environment(tmp_path: Path, env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}"
    env = {**env, "STATIONWATCH_DB_URL": url}
    assert hq(["db", "upgrade"], env).returncode == 0
    result = hq(["token", "create", "--role", "viewer"], env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "elsewhere.sqlite3").exists()


@pytest.fixture
def server(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """`serve` running as a subprocess on a free loopback port; yields its base URL."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                try:
                    proc.wait(timeout=0.1)  # doubles as the poll interval
                except subprocess.TimeoutExpired:
                    pass
                else:
                    pytest.fail(
                        f"serve exited {proc.returncode}: {(tmp_path / 'serve.log').read_text()}"
                    )
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"serve not healthy in 30 s: {(tmp_path / 'serve.log').read_text()}"
                    )
        yield base, tmp_path
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the parent sees why it ended
        # (systemd counts that as a clean stop).
        assert proc.wait(timeout=20) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_serve_answers_health_openapi_and_the_agent_flow(
    server: tuple[str, Path], env: dict[str, str]
) -> None:
    base, data_dir = server
    enrollment = hq(["site", "add", "tx-north", "--data-dir", str(data_dir)], env).stdout.strip()
    admin = hq(
        ["token", "create", "--role", "admin", "--data-dir", str(data_dir)], env
    ).stdout.strip()

    with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok", "db": "ok"}
        spec = client.get("/openapi.json").json()
        assert spec["info"]["title"] == "StationWatch HQ"
        for path in (
            "/healthz",
            "/api/v1/enroll",
            "/api/v1/events",
            "/api/v1/heartbeat",
            "/api/v1/alarms",
            "/api/v1/tickets",
            "/api/v1/tickets/{ticket_id}",
            "/api/v1/sites",
        ):
            assert path in spec["paths"], path
        events_op = spec["paths"]["/api/v1/events"]["post"]
        assert events_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/EventBatch"
        )
        assert events_op["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/BatchAck")

        enrolled = client.post(
            "/api/v1/enroll",
            json={"enrollment_token": enrollment, "hostname": "box1", "agent_version": "0.1.0"},
        )
        assert enrolled.status_code == 200, enrolled.text
        agent = enrolled.json()["agent_token"]
        event = {
            "event_id": str(uuid.uuid4()),
            "seq": 1,
            "kind": "raise",
            "device_id": "tx1",
            "device_class": "transmitter",
            "code": "off_air",
            "grade": 1,
            "title": "Transmitter off air",
            "observed_at": datetime.now(UTC).isoformat(),
        }
        posted = client.post(
            "/api/v1/events",
            content=gzip.compress(json.dumps({"events": [event]}).encode()),
            headers={
                "Authorization": f"Bearer {agent}",
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
            },
        )
        assert posted.status_code == 200, posted.text
        assert posted.json()["stored"] == [event["event_id"]]
        tickets = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {admin}"})
        assert [t["grade"] for t in tickets.json()] == [1]


def test_serve_on_a_busy_port_fails_cleanly(tmp_path: Path, env: dict[str, str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = hq(["serve", "--port", str(port), "--data-dir", str(tmp_path)], env)
    assert result.returncode != 0
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


# ---- issue 11: no database, closed pipes, agents, enrollment tokens, site names ------------

NEEDS_DATABASE = [
    ["token", "create", "--role", "admin"],
    ["token", "list"],
    ["token", "revoke", "1"],
    ["user", "add", "someone", "--role", "viewer"],
    ["user", "passwd", "someone"],
    ["site", "add", "tx-north"],
    ["site", "reenroll", "tx-north"],
    ["agent", "list"],
    ["agent", "revoke", "1"],
    ["enrollment", "list"],
    ["enrollment", "revoke", "1"],
    ["db", "unseal"],
    ["db", "downgrade", "0006"],
]


@pytest.mark.parametrize("args", NEEDS_DATABASE, ids=" ".join)
def test_commands_refuse_a_missing_database_and_create_nothing(
    tmp_path: Path, env: dict[str, str], args: list[str]
) -> None:
    data = tmp_path / "typo"
    result = hq([*args, "--data-dir", str(data)], env)
    assert result.returncode == 2, result.stderr
    assert f"no HQ database at {data / 'hq.sqlite3'}" in result.stderr
    assert "--data-dir" in result.stderr and "hq db upgrade" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not data.exists()


def test_token_create_in_another_folder_makes_no_new_database(
    tmp_path: Path, env: dict[str, str]
) -> None:
    # Without --data-dir, HQ's default is ./var/hq of wherever the command runs.
    result = hq(["token", "create", "--role", "admin"], env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"no HQ database at {tmp_path / 'var' / 'hq' / 'hq.sqlite3'}" in result.stderr
    assert result.stdout == ""  # no token the running HQ would reject
    assert list(tmp_path.iterdir()) == []


def test_a_database_without_hq_schema_is_refused(db_url: str, env: dict[str, str]) -> None:
    # SQLite: an empty file someone created; PostgreSQL: a schema never migrated.
    if db_url.startswith("sqlite"):
        Path(db_url.removeprefix("sqlite:///")).touch()
    result = hq(["token", "create", "--role", "admin", "--db-url", db_url], env)
    assert result.returncode == 2, result.stderr
    assert "holds no HQ schema" in result.stderr and "hq db upgrade" in result.stderr
    db = Database(db_url)
    try:
        with db.engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
    finally:
        db.dispose()


def test_a_closed_pipe_ends_the_output_quietly(tmp_path: Path, env: dict[str, str]) -> None:
    _upgraded(tmp_path, env)
    db = _db(tmp_path)
    try:  # far more than a pipe buffers, so the writer meets the closed pipe for sure
        with db.writer() as session, session.begin():
            now = datetime.now(UTC)
            for i in range(3000):
                create_api_token(session, f"wallboard-{i}", Role.VIEWER, now)
    finally:
        db.dispose()
    command = " ".join([*CLI, "token", "list", "--data-dir", str(tmp_path)])
    for shell in (f"{command} | head -1", f"{command} 2>&1 | head -1"):
        result = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {shell}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.stdout.startswith("   id  role"), result.stdout
        assert result.stdout.count("\n") == 1
        assert result.stderr == ""
        assert result.returncode == 141  # like any tool killed by SIGPIPE


def _enroll(data_dir: Path, token: str, hostname: str) -> int:
    """Enroll an agent with `token`, as POST /api/v1/enroll does; its id."""
    db = _db(data_dir)
    try:
        with db.writer() as session, session.begin():
            request = EnrollRequest(enrollment_token=token, hostname=hostname, agent_version="1")
            return enroll(session, request, datetime.now(UTC)).agent_id
    finally:
        db.dispose()


def test_agents_are_listed_revoked_and_replaced(tmp_path: Path, env: dict[str, str]) -> None:
    data = _upgraded(tmp_path, env)
    first = hq(["site", "add", "北京 transmitter", *data], env)
    assert first.returncode == 0, first.stderr
    old = _enroll(tmp_path, first.stdout.strip(), "old-box")
    listed = hq(["agent", "list", *data], env)
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        rf"^\s+{old}\s+北京 transmitter\s+old-box\s+1\s+.*\bactive$", listed.stdout, re.M
    )

    # A second `site add` would enroll a second agent: refused, pointing at reenroll.
    again = hq(["site", "add", "北京 transmitter", *data], env)
    assert again.returncode == 1 and again.stdout == ""
    assert "already has an active agent" in again.stderr and "site reenroll" in again.stderr
    replacement = hq(["site", "reenroll", "北京 transmitter", *data], env)
    assert replacement.returncode == 0, replacement.stderr
    assert re.fullmatch(TOKEN_LINE, replacement.stdout)
    assert f"agent {old} (old-box) is retired" in replacement.stderr
    pending = hq(["enrollment", "list", *data], env).stdout
    assert re.search(rf"北京 transmitter .* pending\s+{old}$", pending, re.M), pending
    new = _enroll(tmp_path, replacement.stdout.strip(), "new-box")

    everything = hq(["agent", "list", "--all", *data], env).stdout
    assert re.search(rf"old-box .* replaced by {new}$", everything, re.M), everything
    assert "old-box" not in hq(["agent", "list", *data], env).stdout
    revoked = hq(["agent", "revoke", str(new), *data], env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stderr
    db = _db(tmp_path)
    try:
        with db.session() as session:
            agent = session.get_one(Agent, new)
            assert agent.revoked_at is not None and "(command line)" in (agent.revoked_by or "")
    finally:
        db.dispose()
    assert hq(["agent", "revoke", "999", *data], env).returncode == 1


def test_enrollment_tokens_are_listed_and_revoked(tmp_path: Path, env: dict[str, str]) -> None:
    data = _upgraded(tmp_path, env)
    token = hq(["site", "add", "tx-north", *data], env).stdout.strip()
    listed = hq(["enrollment", "list", *data], env)
    assert token not in listed.stdout
    [token_id] = re.findall(r"^\s+(\d+)\s+tx-north .* pending", listed.stdout, re.M)
    revoked = hq(["enrollment", "revoke", token_id, *data], env)
    assert revoked.returncode == 0, revoked.stderr
    assert "tx-north" not in hq(["enrollment", "list", *data], env).stdout
    assert "revoked" in hq(["enrollment", "list", "--all", *data], env).stdout
    with pytest.raises(EnrollmentTokenInvalid, match="revoked"):
        _enroll(tmp_path, token, "box")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("tx\tnorth", "U+0009"),
        ("tx\u202enorth", "U+202E"),  # right-to-left override: displays as another name
        ("x" * 101, "at most 100 characters"),
    ],
)
def test_bad_site_names_are_refused(
    tmp_path: Path, env: dict[str, str], name: str, message: str
) -> None:
    data = _upgraded(tmp_path, env)
    result = hq(["site", "add", name, *data], env)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: site name: ") and message in result.stderr
    assert result.stdout == ""


def test_token_lifetime_in_days(tmp_path: Path, env: dict[str, str]) -> None:
    data = _upgraded(tmp_path, env)
    made = hq(["token", "create", "--role", "viewer", "--days", "2", *data], env)
    assert made.returncode == 0, made.stderr
    db = _db(tmp_path)
    try:
        with db.session() as session:
            row = session.scalars(select(ApiToken)).one()
        assert row.expires_at - row.created_at == timedelta(days=2)
    finally:
        db.dispose()
    for days in ("0", "-1", "3651"):
        refused = hq(["token", "create", "--role", "viewer", "--days", days, *data], env)
        assert refused.returncode == 1 and "--days" in refused.stderr


def test_user_passwd_applies_the_policy_and_revokes_tokens(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = _upgraded(tmp_path, env)
    weak = hq(["user", "add", "root", "--role", "admin", *data], env, input="password123\n")
    assert weak.returncode == 1 and "password: is one of the most common" in weak.stderr
    added = hq(["user", "add", "root", "--role", "admin", *data], env, input="lime-Orbit-905\n")
    assert added.returncode == 0, added.stderr
    assert hq(["token", "create", "--user", "ROOT", *data], env).returncode == 0
    changed = hq(["user", "passwd", "root", *data], env, input="kelp-Signal-311\n")
    assert changed.returncode == 0, changed.stderr
    assert "1 API tokens of the user revoked" in changed.stderr
    db = _db(tmp_path)
    try:
        with db.session() as session:
            assert session.scalars(select(ApiToken.revoked_at)).one() is not None
    finally:
        db.dispose()


def test_site_customer_puts_a_site_under_a_customer_record(
    tmp_path: Path, env: dict[str, str]
) -> None:
    data = tmp_path / "hq"
    _upgraded(data, env)
    env = {**env, "STATIONWATCH_DATA_DIR": str(data)}
    db = _db(data)
    try:
        with db.writer() as session, session.begin():
            now = datetime.now(UTC)
            session.add(
                Customer(
                    name="Hebei TV",
                    contract_number="",
                    language="zh",
                    timezone="Asia/Shanghai",
                    notify_acknowledged=False,
                    notify_resolved=False,
                    created_at=now,
                    updated_at=now,
                )
            )
        # A site created for a customer with a record is under it at once.
        created = hq(["site", "add", "tx-south", "--customer", "Hebei TV"], env)
        assert created.returncode == 0, created.stderr
        assert hq(["site", "add", "tx-north"], env).returncode == 0
        unknown = hq(["site", "customer", "tx-north", "Nobody"], env)
        assert unknown.returncode == 1 and "no customer 'Nobody'" in unknown.stderr
        under = hq(["site", "customer", "tx-north", "Hebei TV"], env)
        assert under.returncode == 0, under.stderr
        assert "under customer 'Hebei TV'" in under.stderr
        with db.session() as session:
            sites = {s.name: (s.customer, s.customer_id) for s in session.scalars(select(Site))}
        assert sites == {"tx-north": ("Hebei TV", 1), "tx-south": ("Hebei TV", 1)}
        assert hq(["site", "customer", "tx-north"], env).returncode == 0
        with db.session() as session:
            site = session.scalars(select(Site).where(Site.name == "tx-north")).one()
            assert (site.customer, site.customer_id) == ("", None)
    finally:
        db.dispose()
