"""Webhook signing keys are not stored in the notification outbox: a row names where its key is
found and the key is looked up when sending; signatures still verify; a key gone by then fails
the attempt instead of sending unsigned. Revision 0004 moves existing rows over."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, delete, insert, inspect, select, text, update
from sqlalchemy.pool import NullPool

from hq_server import cli
from hq_server.access.secretbox import (
    KEY_FACT,
    KEY_FILE_NAME,
    SEALED,
    _create_key,
    box_for,
    seal_stored,
)
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.errors import ConfigError
from hq_server.core.settings import Settings
from hq_server.store.db import Database, alembic_config, upgrade
from hq_server.store.models import EscalationChain, HqFact, Notification, Site, Ticket
from hq_server.tickets.notify import IDEMPOTENCY_HEADER, SIGNATURE_HEADER
from tests.hq.conftest import HQ, START
from tests.hq.conftest import start_hq as _start_hq
from tests.hq.receivers import Captured, WebhookReceiver, webhook

__all__ = ["webhook"]  # fixture

CONTACT_KEY = "contact-key-4f1a9c"
URL_KEY = "url-key-7d2e5b"


def start_hq(
    url: str, clock: ManualClock, tmp_path: Path, **overrides: Any
) -> AbstractContextManager[HQ]:
    """HQ that may send webhooks to the loopback receivers (by default it refuses them)."""
    return _start_hq(url, clock, tmp_path, allow_private_webhooks=True, **overrides)


def _signed_with(key: str, request: Captured) -> bool:
    expected = "sha256=" + hmac.new(key.encode(), request.body, hashlib.sha256).hexdigest()
    return request.headers.get(SIGNATURE_HEADER.lower()) == expected


def _chain(contacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": "hooks", "levels": [{"name": "duty", "delay_minutes": 0, "contacts": contacts}]}


def _escalate(hq: HQ, contacts: list[dict[str, Any]]) -> int:
    """A chain with `contacts` at level 1, a grade-1 ticket, and its ack deadline passed."""
    admin = hq.user_token(Role.ADMIN)
    assert hq.post(admin, "/api/v1/escalation-chains", _chain(contacts)).status_code == 201
    hq.post_events(hq.enroll(), [hq.event(grade=1)])
    ticket_id: int = hq.tickets(admin)[0]["id"]
    hq.clock.set(START + timedelta(minutes=10))
    return ticket_id


def _outbox_dump(hq: HQ) -> str:
    """Every column of every outbox row, as a database dump would show them."""
    with hq.db.session() as session:
        rows = session.execute(select(Notification.__table__)).all()
    return json.dumps([list(row) for row in rows], default=str)


def _refs(hq: HQ) -> dict[str, str | None]:
    with hq.db.session() as session:
        rows = session.execute(select(Notification.target, Notification.secret_ref)).all()
    return {target: ref for target, ref in rows}


def test_keys_are_not_in_the_outbox_and_signatures_verify(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    duty, noc, plain = (f"{webhook.url}/{name}" for name in ("duty", "noc", "plain"))
    with start_hq(migrated_url, clock, tmp_path, webhook_secrets={noc: URL_KEY}) as hq:
        ticket_id = _escalate(
            hq,
            [
                {"name": "duty", "webhook_url": duty, "webhook_secret": CONTACT_KEY},
                {"name": "noc", "webhook_url": noc},
                {"name": "log", "webhook_url": plain},
            ],
        )
        report = hq.step()
        assert (report.escalated, report.notification_attempts) == (1, 3)
        by_path = {r.path: r for r in webhook.requests}
        assert _signed_with(CONTACT_KEY, by_path["/hook/duty"])
        assert _signed_with(URL_KEY, by_path["/hook/noc"])
        assert SIGNATURE_HEADER.lower() not in by_path["/hook/plain"].headers
        key = by_path["/hook/duty"].headers[IDEMPOTENCY_HEADER.lower()]
        assert key == f"escalation:{ticket_id}:ack:0:0:webhook"

        dump = _outbox_dump(hq)
        assert duty in dump  # the dump is real: it has the rows
        assert CONTACT_KEY not in dump and URL_KEY not in dump
        assert _refs(hq) == {duty: "contact:0:0", noc: "url", plain: None}


def test_the_key_is_looked_up_when_sending_and_never_sent_without(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    with start_hq(migrated_url, clock, tmp_path, webhook_secrets={webhook.url: URL_KEY}) as hq:
        ticket_id = _escalate(hq, [{"name": "noc", "webhook_url": webhook.url}])
        webhook.replies = [500]
        assert hq.step().notification_attempts == 1
    assert _signed_with(URL_KEY, webhook.requests[0])

    # Restarted without the key before the retry: the attempt fails, nothing is sent.
    with start_hq(migrated_url, clock, tmp_path) as hq:
        clock.advance(timedelta(seconds=30))
        assert hq.step().notification_attempts == 1
        assert len(webhook.requests) == 1
        admin = hq.user_token(Role.ADMIN)
        history = hq.get(admin, f"/api/v1/tickets/{ticket_id}").json()["history"]
        notes = [h for h in history if h["what"] == "notification"]
        assert [n["data"]["ok"] for n in notes] == [False, False]
        assert "not sent unsigned" in notes[1]["detail"]

    # Restarted with a new key: the next retry is signed with it.
    rotated = "rotated-key-0c3b"
    with start_hq(migrated_url, clock, tmp_path, webhook_secrets={webhook.url: rotated}) as hq:
        clock.advance(timedelta(seconds=60))
        assert hq.step().notification_attempts == 1
        assert len(webhook.requests) == 2
        assert _signed_with(rotated, webhook.requests[1])
        with hq.db.session() as session:
            row = session.scalars(select(Notification)).one()
            assert (row.status, row.attempts) == ("sent", 3)


# ---- revision 0004 on existing rows -------------------------------------------------------

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def _database(url: str) -> Iterator[Database]:
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()


def _downgrade(url: str, revision: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, revision)
    finally:
        engine.dispose()


def _seed_0003(url: str) -> int:
    """A ticket whose chain has a keyed contact at (1, 0), and outbox rows holding keys."""
    escalation = {
        "chain_id": 1,
        "name": "c",
        "levels": [
            {"name": "l1", "contacts": [{"name": "a", "webhook_url": "http://h/a"}]},
            {
                "name": "l2",
                "contacts": [
                    {"name": "b", "webhook_url": "http://h/b", "webhook_secret": CONTACT_KEY}
                ],
            },
        ],
    }
    with _database(url) as db, db.writer() as session, session.begin():
        # Core, with the columns of revision 0003 only (the models have later ones).
        site_id = session.execute(
            insert(Site.__table__)
            .values(name="s", customer="", contact="", timezone="UTC", created_at=T0)
            .returning(Site.__table__.c.id)
        ).scalar_one()
        ticket_id = session.execute(
            insert(Ticket.__table__)
            .values(
                number="SW-2026-000001",
                site_id=site_id,
                fault_key="tx1:off_air",
                device_id="tx1",
                code="off_air",
                component="",
                grade=1,
                status="new",
                title="tx1: off air",
                opened_at=T0,
                alarm_active=True,
                updated_at=T0,
                escalation=escalation,
            )
            .returning(Ticket.__table__.c.id)
        ).scalar_one()
        prefix = f"escalation:{ticket_id}"
        # (key, channel, target, stored secret, status)
        for key, channel, target, secret, status in (
            (f"{prefix}:ack:1:0:webhook", "webhook", "http://h/b", CONTACT_KEY, "sent"),
            (f"{prefix}:restore:0:0:webhook", "webhook", "http://h/a", URL_KEY, "pending"),
            (f"{prefix}:ack:0:0:email", "email", "a@b.cn", None, "pending"),
        ):
            session.execute(
                text(
                    "INSERT INTO notifications (ticket_id, channel, target, secret, payload, "
                    "idempotency_key, attempts, next_attempt_at, status, last_error, created_at) "
                    "VALUES (:t, :channel, :target, :secret, '{}', :key, 0, :at, :status, '', :at)"
                ),
                {
                    "t": ticket_id,
                    "channel": channel,
                    "target": target,
                    "secret": secret,
                    "key": key,
                    "status": status,
                    "at": T0.replace(tzinfo=None),
                },
            )
    return ticket_id


def _rows(url: str, *columns: str) -> list[tuple[Any, ...]]:
    with _database(url) as db, db.session() as session:
        stmt = text(f"SELECT {', '.join(columns)} FROM notifications ORDER BY id")  # noqa: S608
        return [tuple(row) for row in session.execute(stmt)]


def test_revision_0004_replaces_stored_keys_by_references_and_back(db_url: str) -> None:
    upgrade(db_url, "0003")
    _seed_0003(db_url)
    upgrade(db_url)
    with _database(db_url) as db, db.engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("notifications")}
        db.check_schema()
    assert "secret" not in columns and "secret_ref" in columns
    assert _rows(db_url, "channel", "secret_ref") == [
        ("webhook", "contact:1:0"),  # the contact at (1, 0) holds this very key
        ("webhook", "url"),  # the contact at (0, 0) has none: it came from the settings
        ("email", None),
    ]

    # Downgrade: a contact's key comes back from the ticket; a settings key cannot, so that
    # pending webhook is failed rather than sent unsigned.
    _downgrade(db_url, "0003")
    assert _rows(db_url, "secret", "status", "last_error") == [
        (CONTACT_KEY, "sent", ""),
        (None, "failed", "webhook key lost in a schema downgrade"),
        (None, "pending", ""),
    ]
    upgrade(db_url)
    assert [ref for (ref,) in _rows(db_url, "secret_ref")] == ["contact:1:0", None, None]


# ---- keys sealed at rest (hq_server.access.secretbox) --------------------------------------------


def _dump(hq: HQ, *tables: str) -> str:
    """Every column of every row of these tables, as a database dump would show them."""
    return _db_dump(hq.db, *tables)


def _db_dump(db: Database, *tables: str) -> str:
    with db.session() as session:
        rows = [
            list(row)
            for table in tables
            for row in session.execute(text(f"SELECT * FROM {table} ORDER BY 1"))  # noqa: S608
        ]
    return json.dumps(rows, default=str)


def test_chain_keys_are_sealed_in_the_database_and_still_sign(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    duty = f"{webhook.url}/duty"
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": duty, "webhook_secret": CONTACT_KEY}])
        assert hq.step().notification_attempts == 1
        dump = _dump(hq, "escalation_chains", "tickets", "notifications")
    assert duty in dump and SEALED in dump  # the dump is real: chain and ticket are in it
    assert CONTACT_KEY not in dump
    assert _signed_with(CONTACT_KEY, webhook.requests[0])
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def _forget_key(hq: HQ, plain: dict[str, Any]) -> None:
    """The database as a version that did not seal left it: keys in plain text, no key fact."""
    with hq.db.writer() as session, session.begin():
        session.execute(update(EscalationChain).values(levels={"levels": plain["levels"]}))
        session.execute(update(Ticket).values(escalation={"name": "c", **plain}))
        session.execute(delete(HqFact))


def test_keys_stored_plain_are_sealed_at_first_start_and_still_sign(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    plain = _chain([{"name": "d", "webhook_url": webhook.url, "webhook_secret": CONTACT_KEY}])
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": "x" * 8}])
        _forget_key(hq, plain)
        assert _dump(hq, "escalation_chains", "tickets").count(CONTACT_KEY) == 2
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert CONTACT_KEY not in _dump(hq, "escalation_chains", "tickets")
        with hq.db.writer() as session, session.begin():
            box = box_for(Settings(db_url=migrated_url, data_dir=tmp_path))
            assert seal_stored(session, box) == 0  # nothing left to seal
            assert session.get(HqFact, KEY_FACT).value == box.fingerprint  # type: ignore[union-attr]
        assert hq.step().notification_attempts == 1
    assert _signed_with(CONTACT_KEY, webhook.requests[0])


def _new_key_file(path: Path) -> Path:
    """A key file of a new key, as HQ would write it (mode 0600)."""
    path.write_bytes(Fernet.generate_key())
    path.chmod(0o600)
    return path


def _refused_without_and_with_a_new_key(
    url: str, clock: ManualClock, data_dir: Path, *, missing: str, other: str
) -> None:
    """HQ on `data_dir` refuses to start without a key file (and writes none), then with a key
    file of a new key."""
    with pytest.raises(ConfigError, match=missing), start_hq(url, clock, data_dir):
        pass
    assert not (data_dir / KEY_FILE_NAME).exists()
    data_dir.mkdir()
    _new_key_file(data_dir / KEY_FILE_NAME)
    with pytest.raises(ConfigError, match=other), start_hq(url, clock, data_dir):
        pass


def test_hq_refuses_to_start_without_the_databases_key_file(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """A second HQ without the key file, or with another one, must not make its own key."""
    with start_hq(migrated_url, clock, tmp_path / "first"):
        pass
    replica = tmp_path / "replica"
    _refused_without_and_with_a_new_key(
        migrated_url,
        clock,
        replica,
        missing=r"replica/secret.key: HQ's key file is missing",
        other=r"replica/secret.key: not the key this database's",
    )
    shutil.copy2(tmp_path / "first" / KEY_FILE_NAME, replica / KEY_FILE_NAME)
    with start_hq(migrated_url, clock, replica) as hq:
        assert hq.client.get("/healthz").status_code == 200


def test_only_hq_start_makes_a_key_file(migrated_url: str, tmp_path: Path) -> None:
    """Commands other than `serve` (a token listed from another directory, a migration job)
    neither make a key file nor seal with one."""
    elsewhere = tmp_path / "elsewhere"
    for argv in (["db", "upgrade"], ["token", "list"]):
        assert cli.run([*argv, "--db-url", migrated_url, "--data-dir", str(elsewhere)]) == 0
    assert not (elsewhere / KEY_FILE_NAME).exists()
    with _database(migrated_url) as db, db.session() as session:
        assert session.get(HqFact, KEY_FACT) is None


def test_a_key_that_looks_sealed_is_sealed_too(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    key = SEALED + "not-really"
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": key}])
        assert key not in _dump(hq, "escalation_chains", "tickets")
        assert hq.step().notification_attempts == 1
    assert _signed_with(key, webhook.requests[0])


def test_writers_racing_to_make_the_key_file_all_get_the_key_in_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / KEY_FILE_NAME
    start = threading.Barrier(8)

    def make() -> bytes:
        start.wait()
        return _create_key(path)

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: make(), range(8)))
    assert keys == {path.read_bytes().strip()}
    assert sorted(p.name for p in path.parent.iterdir()) == [KEY_FILE_NAME]  # no temp left


def test_unseal_puts_keys_back_in_plain_text_with_the_right_key_file_only(
    migrated_url: str,
    clock: ManualClock,
    tmp_path: Path,
    webhook: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`hq db unseal`, for going back to a version that does not seal: with another key file
    it changes nothing; with HQ's own it opens every key, and HQ seals them again at start."""
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": CONTACT_KEY}])
        sealed = _dump(hq, "escalation_chains", "tickets", "hq_facts")
    assert CONTACT_KEY not in sealed and SEALED in sealed
    unseal = ["db", "unseal", "--db-url", migrated_url, "--data-dir", str(tmp_path)]

    other = _new_key_file(tmp_path / "other.key")
    monkeypatch.setenv("STATIONWATCH_SECRET_KEY_FILE", str(other))
    assert cli.run(unseal) == cli.EXIT_ERROR
    assert "other.key: not the key this database's" in capsys.readouterr().err
    with _database(migrated_url) as db:
        assert _db_dump(db, "escalation_chains", "tickets", "hq_facts") == sealed

    monkeypatch.delenv("STATIONWATCH_SECRET_KEY_FILE")
    assert cli.run(unseal) == cli.EXIT_OK
    assert "opened the webhook keys of 2 escalation chains and tickets" in capsys.readouterr().err
    with _database(migrated_url) as db:
        plain = _db_dump(db, "escalation_chains", "tickets")
        assert plain.count(CONTACT_KEY) == 2 and SEALED not in plain
        with db.session() as session:
            assert session.get(HqFact, KEY_FACT) is None  # an HQ of this version seals again
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert CONTACT_KEY not in _dump(hq, "escalation_chains", "tickets")
        assert hq.step().notification_attempts == 1
    assert _signed_with(CONTACT_KEY, webhook.requests[0])


def test_a_replaced_key_file_fails_the_attempt_never_sends_unsigned(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": "k" * 12}])
        (tmp_path / KEY_FILE_NAME).write_bytes(Fernet.generate_key())  # replaced while running
        assert hq.step().notification_attempts == 1
        admin = hq.user_token(Role.ADMIN)
        ticket_id = hq.tickets(admin)[0]["id"]
        history = hq.get(admin, f"/api/v1/tickets/{ticket_id}").json()["history"]
    [note] = [h for h in history if h["what"] == "notification"]
    assert note["data"]["ok"] is False
    assert "does not open with HQ's key file" in note["detail"]
    assert webhook.requests == []


def test_a_chain_without_webhook_keys_is_saved_without_the_key_file(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    with start_hq(migrated_url, clock, tmp_path) as hq:
        (tmp_path / KEY_FILE_NAME).chmod(0o644)
        admin = hq.user_token(Role.ADMIN)
        mail = _chain([{"name": "duty", "email": "duty@example.com"}])
        assert hq.post(admin, "/api/v1/escalation-chains", mail).status_code == 201
        keyed = _chain(
            [{"name": "duty", "webhook_url": "http://127.0.0.1:9/x", "webhook_secret": "k" * 12}]
        )
        refused = hq.post(admin, "/api/v1/escalation-chains", {**keyed, "name": "k"})
        assert refused.status_code == 400, refused.text
        assert "owner only" in refused.json()["detail"]


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "hq.key"
    key_file.write_bytes(Fernet.generate_key())
    key_file.chmod(0o644)
    settings = Settings(data_dir=tmp_path, secret_key_file=key_file)
    with pytest.raises(ConfigError, match=r"hq.key: .*owner only \(chmod 600\)"):
        box_for(settings)
    key_file.write_text("not a key")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match=r"hq.key: not a key"):
        box_for(Settings(data_dir=tmp_path / "x", secret_key_file=key_file))


def test_an_unreadable_key_file_fails_the_attempt_and_the_step_goes_on(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    with start_hq(migrated_url, clock, tmp_path) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": "k" * 12}])
        (tmp_path / KEY_FILE_NAME).chmod(0o644)
        report = hq.step()
        assert (report.escalated, report.notification_attempts) == (1, 1)
        admin = hq.user_token(Role.ADMIN)
        ticket_id = hq.tickets(admin)[0]["id"]
        history = hq.get(admin, f"/api/v1/tickets/{ticket_id}").json()["history"]
    [note] = [h for h in history if h["what"] == "notification"]
    assert note["data"]["ok"] is False
    assert "owner only (chmod 600)" in note["detail"] and "not sent unsigned" in note["detail"]
    assert webhook.requests == []


def test_revision_0006_adds_hq_facts_and_takes_it_back(
    migrated_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def tables() -> set[str]:
        engine = create_engine(migrated_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return set(inspect(conn).get_table_names())
        finally:
            engine.dispose()

    db = ["--db-url", migrated_url, "--data-dir", str(tmp_path)]
    assert "hq_facts" in tables()
    assert cli.run(["db", "downgrade", "nosuch", *db]) == cli.EXIT_ERROR
    assert "cannot downgrade to 'nosuch'" in capsys.readouterr().err
    assert cli.run(["db", "downgrade", "0005", *db]) == cli.EXIT_OK
    assert "hq_facts" not in tables()
    upgrade(migrated_url)
    assert "hq_facts" in tables()


def test_a_chain_replaced_without_its_keys_keeps_them_for_the_same_url(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    """Keys are never shown, so a PUT that leaves one out keeps it (for the same URL only);
    an explicit null removes it."""

    def contact(url: str, **key: str | None) -> dict[str, Any]:
        return {"name": "duty", "webhook_url": url, **key}

    with start_hq(migrated_url, clock, tmp_path) as hq:
        admin = hq.user_token(Role.ADMIN)
        created = hq.post(
            admin,
            "/api/v1/escalation-chains",
            _chain([contact(webhook.url, webhook_secret=CONTACT_KEY)]),
        )
        path = f"/api/v1/escalation-chains/{created.json()['id']}"

        def put(contacts: list[dict[str, Any]], delay: int) -> bool:
            body = _chain(contacts)
            body["levels"][0]["delay_minutes"] = delay
            answer = hq.call("PUT", admin, path, body)
            assert answer.status_code == 200, answer.text
            has: bool = answer.json()["levels"][0]["contacts"][0]["has_webhook_secret"]
            return has

        assert put([contact(webhook.url)], 1) is True  # left out: kept
        assert put([contact(f"{webhook.url}/other")], 1) is False  # another URL: not carried
        assert put([contact(webhook.url)], 1) is False  # gone with the URL change
        assert put([contact(webhook.url, webhook_secret=CONTACT_KEY)], 1) is True
        assert put([contact(webhook.url)], 0) is True
        hq.post_events(hq.enroll(), [hq.event(grade=1)])  # the ticket copies the kept key
        clock.set(START + timedelta(minutes=10))
        assert hq.step().notification_attempts == 1
        assert put([contact(webhook.url, webhook_secret=None)], 0) is False  # null: removed
    assert _signed_with(CONTACT_KEY, webhook.requests[0])


def test_keys_sealed_with_a_key_the_database_does_not_name_are_not_adopted(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    """No fingerprint recorded (e.g. after a downgrade below 0006) but keys already sealed:
    an HQ without their key file must not start and record a key of its own."""
    first = tmp_path / "first"
    with start_hq(migrated_url, clock, first) as hq:
        _escalate(hq, [{"name": "duty", "webhook_url": webhook.url, "webhook_secret": CONTACT_KEY}])
        with hq.db.writer() as session, session.begin():
            session.execute(delete(HqFact))
    _refused_without_and_with_a_new_key(
        migrated_url,
        clock,
        tmp_path / "replica",
        missing=r"missing, and this database holds webhook keys",
        other=r"escalation chain 'hooks' .* sealed with another key",
    )
    with start_hq(migrated_url, clock, first) as hq:
        assert hq.step().notification_attempts == 1
        with hq.db.session() as session:
            fact = session.get(HqFact, KEY_FACT)
            assert fact is not None and fact.value == box_for(Settings(data_dir=first)).fingerprint
    assert _signed_with(CONTACT_KEY, webhook.requests[0])


def test_a_chain_saved_plain_by_an_older_hq_is_sealed_at_the_next_start(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    plain = _chain([{"name": "d", "webhook_url": webhook.url, "webhook_secret": CONTACT_KEY}])
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert (
            hq.post(hq.user_token(Role.ADMIN), "/api/v1/escalation-chains", plain).status_code
            == 201
        )
        with hq.db.writer() as session, session.begin():  # as an HQ that does not seal saves it
            session.execute(update(EscalationChain).values(levels={"levels": plain["levels"]}))
        assert CONTACT_KEY in _dump(hq, "escalation_chains")
    with start_hq(migrated_url, clock, tmp_path) as hq:
        assert CONTACT_KEY not in _dump(hq, "escalation_chains")
        hq.post_events(hq.enroll(), [hq.event(grade=1)])
        clock.set(START + timedelta(minutes=10))
        assert hq.step().notification_attempts == 1
    assert _signed_with(CONTACT_KEY, webhook.requests[0])


def test_contacts_sharing_a_url_each_keep_their_own_key(
    migrated_url: str, clock: ManualClock, tmp_path: Path, webhook: WebhookReceiver
) -> None:
    def contact(name: str, **key: str) -> dict[str, Any]:
        return {"name": name, "webhook_url": webhook.url, **key}

    with start_hq(migrated_url, clock, tmp_path) as hq:
        admin = hq.user_token(Role.ADMIN)
        both = _chain(
            [
                contact("a", webhook_secret="key-of-a-123"),
                contact("b", webhook_secret="key-of-b-456"),
            ]
        )
        chain_id = hq.post(admin, "/api/v1/escalation-chains", both).json()["id"]
        path = f"/api/v1/escalation-chains/{chain_id}"
        assert hq.call("PUT", admin, path, _chain([contact("a"), contact("b")])).status_code == 200
        with hq.db.session() as session:
            row = session.get(EscalationChain, chain_id)
            assert row is not None
            opened = box_for(Settings(data_dir=tmp_path)).open_levels(row.levels)
    keys = {c["name"]: c["webhook_secret"] for c in opened["levels"][0]["contacts"]}
    assert keys == {"a": "key-of-a-123", "b": "key-of-b-456"}


def test_unseal_of_a_database_never_sealed_needs_no_key_file(
    migrated_url: str, tmp_path: Path
) -> None:
    argv = ["db", "unseal", "--db-url", migrated_url, "--data-dir", str(tmp_path / "none")]
    assert cli.run(argv) == cli.EXIT_OK
    assert not (tmp_path / "none" / KEY_FILE_NAME).exists()
