"""The service desk's records: customers with their contracts and contacts, SLA policies as
data, sites belonging to customers, and the ticket fields of manual tickets, regrades, on-site
dispatch and the promised fix.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-05

- sla_policies: a contract's grade scheme (the customer's grade names -> 1..5), the acknowledge /
  restore / on-site targets per grade and the calendar they count on (none: the site's).
- customers: contract number and term, SLA policy (none: the default policy), language (zh or
  en), time zone, and whether the contacts are told of acknowledged and resolved faults.
- contacts: the people of a customer (role, phone, e-mail, IM channel).
- sites.customer_id: the customer whose contract covers the site (sites.customer keeps the name,
  which escalation chains are matched on).
- tickets: source (alarm for every existing ticket), reporter, contact_id, customer_grade,
  sla_started_at, promised_fix_at, plan, dispatch, onsite_due_at and the on-site escalation's
  next step (onsite_escalation_level, onsite_escalation_at).

A downgrade drops them all; what they held (customers, contacts, policies, the manual tickets'
extra fields) is lost, the tickets themselves stay.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, comment: str | None = None) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True, comment=comment)


def upgrade() -> None:
    op.create_table(
        "sla_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column(
            "scheme",
            sa.JSON(),
            nullable=False,
            comment='{"labels": {"A": 1, "B": 2, ...}}: the customer\'s grade names -> grades 1..5',
        ),
        sa.Column(
            "grades",
            sa.JSON(),
            nullable=False,
            comment='{"1": {"ack_minutes": 10, "restore_minutes": 240, "onsite_minutes": 240, '
            '"clock": "24x7"}, ...}; null minutes: no target',
        ),
        sa.Column(
            "calendar_id",
            sa.Integer(),
            sa.ForeignKey("calendars.id", name="fk_sla_policies_calendar_id_calendars"),
            nullable=True,
            comment="business hours of the contract; none: the site's",
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sla_policies"),
        sa.UniqueConstraint("name", name="uq_sla_policies_name"),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("contract_number", sa.String(100), nullable=False),
        sa.Column("contract_start", sa.Date(), nullable=True),
        sa.Column("contract_end", sa.Date(), nullable=True),
        sa.Column(
            "sla_policy_id",
            sa.Integer(),
            sa.ForeignKey("sla_policies.id", name="fk_customers_sla_policy_id_sla_policies"),
            nullable=True,
            comment="none: the default policy",
        ),
        sa.Column("language", sa.String(5), nullable=False, comment="zh or en"),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column(
            "notify_acknowledged",
            sa.Boolean(),
            nullable=False,
            comment="e-mail the contacts when a fault is acknowledged",
        ),
        sa.Column(
            "notify_resolved",
            sa.Boolean(),
            nullable=False,
            comment="e-mail the contacts when a fault is resolved",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("name", name="uq_customers_name"),
        sa.CheckConstraint("language IN ('zh', 'en')", name="ck_customers_language_known"),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "customer_id",
            sa.Integer(),
            sa.ForeignKey("customers.id", name="fk_contacts_customer_id_customers"),
            nullable=False,
        ),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("phone", sa.String(40), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column(
            "im_channel", sa.String(200), nullable=False, comment="e.g. dingtalk:<id>, wecom:<id>"
        ),
        sa.Column(
            "notify",
            sa.Boolean(),
            nullable=False,
            comment="gets the customer's fault notifications by e-mail",
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column(
                "customer_id",
                sa.Integer(),
                nullable=True,
                comment="the customer whose contract covers it",
            )
        )
        batch.create_foreign_key(
            "fk_sites_customer_id_customers", "customers", ["customer_id"], ["id"]
        )
        batch.create_index("ix_sites_customer_id", ["customer_id"])
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column(
                "source",
                sa.String(10),
                nullable=False,
                server_default="alarm",
                comment="alarm, phone, fax, email, web or onsite",
            )
        )
        batch.add_column(
            sa.Column("reporter", sa.String(200), nullable=False, server_default=sa.text("''"))
        )
        batch.add_column(
            sa.Column(
                "contact_id",
                sa.Integer(),
                nullable=True,
                comment="the customer's contact who reported it",
            )
        )
        batch.add_column(
            sa.Column(
                "customer_grade",
                sa.String(20),
                nullable=False,
                server_default=sa.text("''"),
                comment="the grade in the customer's scheme, as given",
            )
        )
        batch.add_column(
            _time(
                "sla_started_at",
                "when the deadlines start counting: an upgrade's confirmation; null: opened_at",
            )
        )
        batch.add_column(_time("promised_fix_at"))
        batch.add_column(sa.Column("plan", sa.Text(), nullable=False, server_default=sa.text("''")))
        batch.add_column(
            sa.Column(
                "dispatch",
                sa.JSON(),
                nullable=True,
                comment='{"engineer": ..., "sent_at", "left_at", "arrived_at", "left_site_at": '
                "ISO}",
            )
        )
        batch.add_column(_time("onsite_due_at", "when the dispatched engineer must be on site"))
        batch.add_column(
            sa.Column(
                "onsite_escalation_level",
                sa.SmallInteger(),
                nullable=False,
                server_default="0",
                comment="on-site escalation levels reached so far",
            )
        )
        batch.add_column(
            _time(
                "onsite_escalation_at",
                "when the next on-site escalation level is due; null: not running",
            )
        )
        batch.create_foreign_key(
            "fk_tickets_contact_id_contacts", "contacts", ["contact_id"], ["id"]
        )
        batch.create_index("ix_tickets_onsite_escalation_at", ["onsite_escalation_at"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_onsite_escalation_at")
        batch.drop_constraint("fk_tickets_contact_id_contacts", type_="foreignkey")
        for column in (
            "onsite_escalation_at",
            "onsite_escalation_level",
            "onsite_due_at",
            "dispatch",
            "plan",
            "promised_fix_at",
            "sla_started_at",
            "customer_grade",
            "contact_id",
            "reporter",
            "source",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("sites") as batch:
        batch.drop_index("ix_sites_customer_id")
        batch.drop_constraint("fk_sites_customer_id_customers", type_="foreignkey")
        batch.drop_column("customer_id")
    op.drop_index("ix_contacts_customer_id", table_name="contacts")
    op.drop_table("contacts")
    op.drop_table("customers")
    op.drop_table("sla_policies")
