"""Customers, their contacts and their contracts' SLA policies: create, change, look up, and
which customer a site belongs to. Errors name the field (InvalidInput) or the clash (Conflict)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.core.errors import Conflict, InvalidInput, NotFound
from hq_server.customers.policies import check_scheme, check_targets, forget_contracts
from hq_server.store.models import (
    CUSTOMER_LANGUAGES,
    Calendar,
    Contact,
    Customer,
    Site,
    SlaPolicy,
    Ticket,
)


def _flush(session: Session, what: str) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


def get_policy(session: Session, policy_id: int) -> SlaPolicy:
    """A stored SLA policy; NotFound otherwise."""
    row = session.get(SlaPolicy, policy_id)
    if row is None:
        raise NotFound(f"no SLA policy {policy_id}")
    return row


def get_customer(session: Session, customer_id: int) -> Customer:
    """A stored customer; NotFound otherwise."""
    row = session.get(Customer, customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id}")
    return row


def find_customer(session: Session, name: str) -> Customer | None:
    """The customer called `name`, if any."""
    return session.scalars(select(Customer).where(Customer.name == name)).one_or_none()


def get_contact(session: Session, contact_id: int) -> Contact:
    """A stored contact; NotFound otherwise."""
    row = session.get(Contact, contact_id)
    if row is None:
        raise NotFound(f"no contact {contact_id}")
    return row


def _check_calendar(session: Session, calendar_id: int | None) -> None:
    if calendar_id is not None and session.get(Calendar, calendar_id) is None:
        raise InvalidInput(f"calendar_id: no calendar {calendar_id}", field="calendar_id")


def save_policy(
    session: Session,
    row: SlaPolicy | None,
    *,
    name: str,
    scheme: Mapping[str, Any],
    grades: Mapping[str, Mapping[str, Any]],
    calendar_id: int | None,
    now: datetime,
) -> SlaPolicy:
    """Create (row None) or replace an SLA policy."""
    labels = check_scheme(scheme)
    targets = check_targets(grades)
    _check_calendar(session, calendar_id)
    if row is None:
        row = SlaPolicy()
        session.add(row)
    row.name = name
    row.scheme = {"labels": labels}
    row.grades = targets
    row.calendar_id = calendar_id
    row.updated_at = now
    _flush(session, f"SLA policy {name!r}")
    forget_contracts(session)
    return row


@dataclass(frozen=True, slots=True)
class CustomerFields:
    """What a customer record holds (besides its contacts)."""

    name: str
    contract_number: str = ""
    contract_start: date | None = None
    contract_end: date | None = None
    sla_policy_id: int | None = None
    language: str = "zh"
    timezone: str = "Asia/Shanghai"
    notify_acknowledged: bool = False
    notify_resolved: bool = False


def save_customer(
    session: Session, row: Customer | None, fields: CustomerFields, now: datetime
) -> Customer:
    """Create (row None) or replace a customer record; its sites follow a change of name."""
    if fields.language not in CUSTOMER_LANGUAGES:
        raise InvalidInput(f"language: use {' or '.join(CUSTOMER_LANGUAGES)}", field="language")
    try:
        ZoneInfo(fields.timezone)
    except (KeyError, ValueError):
        raise InvalidInput(
            f"timezone: unknown timezone {fields.timezone!r}: use an IANA name", field="timezone"
        ) from None
    if (
        fields.contract_start is not None
        and fields.contract_end is not None
        and fields.contract_end < fields.contract_start
    ):
        raise InvalidInput("contract_end: before contract_start", field="contract_end")
    if fields.sla_policy_id is not None and session.get(SlaPolicy, fields.sla_policy_id) is None:
        raise InvalidInput(
            f"sla_policy_id: no SLA policy {fields.sla_policy_id}", field="sla_policy_id"
        )
    if row is None:
        row = Customer(created_at=now)
        session.add(row)
    old_name = row.name
    for key in CustomerFields.__dataclass_fields__:
        setattr(row, key, getattr(fields, key))
    row.updated_at = now
    _flush(session, f"customer {fields.name!r}")
    if old_name is not None and old_name != row.name:
        for site in session.scalars(select(Site).where(Site.customer_id == row.id)):
            site.customer = row.name
    forget_contracts(session)
    return row


@dataclass(frozen=True, slots=True)
class ContactFields:
    """What a contact record holds."""

    name: str
    role: str = ""
    phone: str = ""
    email: str = ""
    im_channel: str = ""
    notify: bool = True


PHONE = re.compile(r"^[0-9+() \-]*$")
EMAIL = re.compile(r"^$|^[^@\s]+@[^@\s]+$")


def check_contact(fields: ContactFields) -> None:
    """InvalidInput naming the field of a contact that cannot be stored."""
    if not fields.name.strip():
        raise InvalidInput("name: required", field="name")
    if not PHONE.fullmatch(fields.phone):
        raise InvalidInput("phone: digits, spaces, + - ( ) only", field="phone")
    if not EMAIL.fullmatch(fields.email):
        raise InvalidInput(f"email: not an address: {fields.email!r}", field="email")
    if fields.notify and not fields.email:
        raise InvalidInput("email: a contact who gets notifications needs one", field="email")


def save_contact(
    session: Session, row: Contact | None, customer: Customer, fields: ContactFields, now: datetime
) -> Contact:
    """Create (row None) or replace a contact of `customer`."""
    check_contact(fields)
    if row is None:
        row = Contact(customer_id=customer.id)
        session.add(row)
    for key in ContactFields.__dataclass_fields__:
        setattr(row, key, getattr(fields, key))
    row.updated_at = now
    session.flush()
    return row


def delete_contact(session: Session, row: Contact) -> None:
    """Delete a contact no ticket names as its reporter's (Conflict otherwise: set `notify`
    false to stop its notifications instead)."""
    used = session.scalars(select(Ticket.number).where(Ticket.contact_id == row.id)).first()
    if used is not None:
        raise Conflict(
            f"contact {row.name!r} reported ticket {used}: keep it (set notify to false)"
        )
    session.delete(row)


def contacts_of(session: Session, customer_id: int) -> list[Contact]:
    """A customer's contacts, by name."""
    stmt = select(Contact).where(Contact.customer_id == customer_id)
    return list(session.scalars(stmt.order_by(Contact.name, Contact.id)))


def set_site_customer(session: Session, site: Site, customer: Customer | None) -> None:
    """Put a site under a customer (None: under none); its `customer` name follows, so the
    customer's escalation chains apply to it."""
    site.customer_id = customer.id if customer is not None else None
    site.customer = customer.name if customer is not None else ""
    forget_contracts(session)
