"""The schema comes only from migrations, and the migrated schema is exactly the models'."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from hq_server.core.domain import DONE_STATUSES, TicketStatus
from hq_server.core.errors import SchemaOutOfDate
from hq_server.store.db import Database, upgrade
from hq_server.store.models import Base, Site, Ticket

EXPECTED_TABLES = {
    "sites",
    "agents",
    "enrollment_tokens",
    "api_tokens",
    "events",
    "alarms",
    "tickets",
    "ticket_events",
    "ticket_counters",
    "alembic_version",
    "users",
    "audit_log",
    "web_sessions",
    "calendars",
    "escalation_chains",
    "notifications",
    "maintenance_windows",
    "ticket_alarm_links",
    # revision 0002j: jobs, schedules (with APScheduler's job store), config backups
    "jobs",
    "job_items",
    "job_schedules",
    "config_backups",
    "apscheduler_jobs",
    # revision 0006: which key seals the webhook keys
    "hq_facts",
    # revision 0011: the service desk's records
    "customers",
    "contacts",
    "sla_policies",
    # revision 0012: paging
    "oncall_teams",
    "oncall_rotations",
    "oncall_overrides",
    "engineer_contacts",
    "paging_policies",
    "ticket_paging",
    "page_digest_items",
}


def test_migrations_create_the_schema_of_the_models(migrated_url: str) -> None:
    db = Database(migrated_url)
    try:
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == EXPECTED_TABLES
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            assert compare_metadata(context, Base.metadata) == []
        db.check_schema()
    finally:
        db.dispose()


def test_upgrade_is_idempotent(migrated_url: str) -> None:
    upgrade(migrated_url)
    db = Database(migrated_url)
    try:
        db.check_schema()
    finally:
        db.dispose()


def test_unmigrated_database_is_refused(db_url: str) -> None:
    db = Database(db_url)
    try:
        with pytest.raises(SchemaOutOfDate, match="db upgrade"):
            db.check_schema()
    finally:
        db.dispose()


def _ticket(site_id: int, number: str, status: str) -> Ticket:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Ticket(
        number=number,
        site_id=site_id,
        fault_key="tx1:off_air",
        device_id="tx1",
        code="off_air",
        component="",
        grade=1,
        status=status,
        title="tx1: off air",
        opened_at=now,
        alarm_active=True,
        updated_at=now,
    )


def test_open_ticket_index_is_partial_on_the_finished_statuses(migrated_url: str) -> None:
    # Alembic's compare does not look at index predicates, so check this one directly.
    db = Database(migrated_url)
    try:
        with db.engine.connect() as conn:
            indexes = {i["name"]: i for i in inspect(conn).get_indexes("tickets")}
    finally:
        db.dispose()
    index = indexes["uq_tickets_open_fingerprint"]
    assert index["unique"]
    assert index["column_names"] == ["site_id", "fault_key"]
    predicate = str(next(iter(index["dialect_options"].values())))
    assert sorted(re.findall(r"'(\w+)'", predicate)) == sorted(DONE_STATUSES)


@pytest.mark.parametrize("status", list(TicketStatus))
def test_database_allows_one_open_ticket_per_fingerprint(
    database: Database, status: TicketStatus
) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with database.writer() as session, session.begin():
        site = Site(name="s", created_at=now)
        session.add(site)
        session.flush()
        site_id = site.id
        # Finished tickets do not count: many resolved/closed, one open.
        session.add_all(
            [
                _ticket(site_id, "SW-2026-000001", "resolved"),
                _ticket(site_id, "SW-2026-000002", "closed"),
                _ticket(site_id, "SW-2026-000003", "new"),
            ]
        )
    second = _ticket(site_id, "SW-2026-000004", status.value)
    if status in DONE_STATUSES:
        with database.writer() as session, session.begin():
            session.add(second)
        return
    with pytest.raises(IntegrityError), database.writer() as session, session.begin():
        session.add(second)


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError), database.writer() as session, session.begin():
        session.add(_ticket(9999, "SW-2026-000001", "new"))
