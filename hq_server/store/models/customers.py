"""Tables of the service desk's records: customers with their contract, their contacts, and the
SLA policies of the contracts (hq_server.customers)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.store.models.base import Base

CUSTOMER_LANGUAGES = ("zh", "en")


class SlaPolicy(Base):
    """A contract's SLA as data: the customer's grade scheme mapped onto grades 1..5, the
    acknowledge / restore / on-site targets per grade, and the calendar they count on."""

    __tablename__ = "sla_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    scheme: Mapped[dict[str, Any]] = mapped_column(
        comment='{"labels": {"A": 1, "B": 2, ...}}: the customer\'s grade names -> grades 1..5'
    )
    grades: Mapped[dict[str, Any]] = mapped_column(
        comment='{"1": {"ack_minutes": 10, "restore_minutes": 240, "onsite_minutes": 240, '
        '"clock": "24x7"}, ...}; null minutes: no target'
    )
    calendar_id: Mapped[int | None] = mapped_column(
        ForeignKey("calendars.id"), comment="business hours of the contract; none: the site's"
    )
    updated_at: Mapped[datetime]


class Customer(Base):
    """A customer with its contract: number, term, SLA policy, language and time zone, and which
    notifications its contacts get."""

    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(
            "language IN ({})".format(", ".join(f"'{x}'" for x in CUSTOMER_LANGUAGES)),
            name="language_known",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    contract_number: Mapped[str] = mapped_column(String(100), default="")
    contract_start: Mapped[date | None] = mapped_column(Date)
    contract_end: Mapped[date | None] = mapped_column(Date)
    sla_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_policies.id"), comment="none: the default policy"
    )
    language: Mapped[str] = mapped_column(String(5), comment="zh or en")
    timezone: Mapped[str] = mapped_column(String(64))
    notify_acknowledged: Mapped[bool] = mapped_column(
        Boolean, comment="e-mail the contacts when a fault is acknowledged"
    )
    notify_resolved: Mapped[bool] = mapped_column(
        Boolean, comment="e-mail the contacts when a fault is resolved"
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Contact(Base):
    """A person at a customer: role, phone, e-mail, IM channel."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    im_channel: Mapped[str] = mapped_column(
        String(200), default="", comment="e.g. dingtalk:<id>, wecom:<id>"
    )
    notify: Mapped[bool] = mapped_column(
        Boolean, comment="gets the customer's fault notifications by e-mail"
    )
    updated_at: Mapped[datetime]
