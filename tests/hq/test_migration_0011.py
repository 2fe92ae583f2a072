"""Revision 0011: customers, contacts and SLA policies, sites under customers, and the service
desk's ticket fields (existing tickets become source "alarm"); and back, with rows present."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, text

from hq_server.store.db import upgrade
from tests.hq.test_webhook_secrets import _database, _downgrade

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICKET_FIELDS = {
    "source",
    "reporter",
    "contact_id",
    "customer_grade",
    "sla_started_at",
    "promised_fix_at",
    "plan",
    "dispatch",
    "onsite_due_at",
    "onsite_escalation_level",
    "onsite_escalation_at",
}


def _seed_0008(url: str) -> None:
    naive = T0.replace(tzinfo=None)
    with _database(url) as db, db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sites (name, customer, contact, timezone, created_at) "
                "VALUES ('s', 'Hebei TV', '', 'Asia/Shanghai', :at)"
            ),
            {"at": naive},
        )
        conn.execute(
            text(
                "INSERT INTO tickets (id, number, site_id, fault_key, device_id, code, "
                "component, grade, status, title, opened_at, alarm_active, updated_at, "
                "symptom, on_duty, assignee, time_spent_minutes) VALUES (1, 'SW-2026-000001', "
                "1, 'k', 'tx1', 'off_air', '', 1, 'new', 't', :at, true, :at, '', '', '', 0)"
            ),
            {"at": naive},
        )


def _seed_0011(url: str) -> None:
    """A policy, a customer with a contact, the site under it, a manual ticket's fields."""
    naive = T0.replace(tzinfo=None)
    with _database(url) as db, db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sla_policies (name, scheme, grades, updated_at) "
                """VALUES ('A-D', '{"labels": {"A": 1}}', '{}', :at)"""
            ),
            {"at": naive},
        )
        conn.execute(
            text(
                "INSERT INTO customers (name, contract_number, sla_policy_id, language, timezone, "
                "notify_acknowledged, notify_resolved, created_at, updated_at) "
                "VALUES ('Hebei TV', 'C-1', 1, 'zh', 'Asia/Shanghai', true, false, :at, :at)"
            ),
            {"at": naive},
        )
        conn.execute(
            text(
                "INSERT INTO contacts (customer_id, name, role, phone, email, im_channel, "
                "notify, updated_at) VALUES (1, 'Li', '', '', 'li@example.com', '', true, :at)"
            ),
            {"at": naive},
        )
        conn.execute(text("UPDATE sites SET customer_id = 1"))
        conn.execute(
            text(
                "UPDATE tickets SET source = 'phone', contact_id = 1, customer_grade = 'A', "
                """plan = 'swap', dispatch = '{"engineer": "Zhang"}', onsite_due_at = :at"""
            ),
            {"at": naive},
        )


def test_revision_0011_adds_the_service_desk_records_and_goes_back(db_url: str) -> None:
    upgrade(db_url, "0008")
    _seed_0008(db_url)
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
        with db.engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT source, reporter, customer_grade, plan, onsite_escalation_level, "
                    "sla_started_at, dispatch FROM tickets"
                )
            ).one()
            site_customer = conn.execute(text("SELECT customer_id FROM sites")).scalar_one()
    # The existing ticket came from an alarm and keeps its clock.
    assert tuple(row) == ("alarm", "", "", "", 0, None, None)
    assert site_customer is None
    _seed_0011(db_url)

    _downgrade(db_url, "0010")
    with _database(db_url) as db, db.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert not {"customers", "contacts", "sla_policies"} & tables
        columns = {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert not TICKET_FIELDS & columns
        assert "customer_id" not in {c["name"] for c in inspect(conn).get_columns("sites")}
        # The tickets and sites themselves stay.
        assert conn.execute(text("SELECT number FROM tickets")).scalar_one() == "SW-2026-000001"
        assert conn.execute(text("SELECT customer FROM sites")).scalar_one() == "Hebei TV"
    upgrade(db_url)
    with _database(db_url) as db:
        db.check_schema()
