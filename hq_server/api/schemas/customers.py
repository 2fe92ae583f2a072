"""Customers, their contacts and the SLA policies of their contracts, as the API shows them,
and the bodies creating or replacing them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from hq_server.api.schemas.common import In, Out
from hq_server.customers.policies import LABEL_MAX, MINUTES_MAX
from hq_server.customers.records import ContactFields, CustomerFields
from hq_server.store.models import Contact, Customer, SlaPolicy

Minutes = Field(default=None, ge=1, le=MINUTES_MAX)


class GradeTargetsIn(In):
    """The targets of one grade: minutes (null: no target) and the clock they count on."""

    ack_minutes: int | None = Minutes
    restore_minutes: int | None = Minutes
    onsite_minutes: int | None = Field(
        default=None, ge=1, le=MINUTES_MAX, description="until the dispatched engineer arrives"
    )
    clock: Literal["24x7", "business"]


class SlaPolicyIn(In):
    """A contract's SLA: the customer's grade names mapped onto 1..5, targets for each grade
    1..5, and the calendar of its business hours (null: the site's)."""

    name: str = Field(min_length=1, max_length=100)
    scheme: dict[str, int] = Field(
        min_length=1,
        max_length=50,
        description='the customer\'s grade names -> grades 1..5, e.g. {"A": 1, "B": 2, "C": 3, '
        f'"D": 5}}; names of 1 to {LABEL_MAX} characters, any case',
    )
    grades: dict[Literal["1", "2", "3", "4", "5"], GradeTargetsIn] = Field(
        description="targets for each of the grades 1..5 (all five)"
    )
    calendar_id: int | None = Field(default=None, ge=1)

    def stored_grades(self) -> dict[str, dict[str, Any]]:
        """The targets as plain dicts."""
        return {k: v.model_dump() for k, v in self.grades.items()}


class SlaPolicyOut(Out):
    """A stored SLA policy."""

    id: int
    name: str
    scheme: dict[str, int]
    grades: dict[str, dict[str, Any]]
    calendar_id: int | None
    updated_at: datetime

    @classmethod
    def of(cls, row: SlaPolicy) -> SlaPolicyOut:
        """From a stored policy."""
        return cls(
            id=row.id,
            name=row.name,
            scheme=row.scheme["labels"],
            grades=row.grades,
            calendar_id=row.calendar_id,
            updated_at=row.updated_at,
        )


class ContactIn(In):
    """A person at the customer."""

    name: str = Field(min_length=1, max_length=100)
    role: str = Field(default="", max_length=100)
    phone: str = Field(default="", max_length=40, pattern=r"^[0-9+() \-]*$")
    email: str = Field(
        default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$", description="an address"
    )
    im_channel: str = Field(default="", max_length=200)
    notify: bool = Field(
        default=True, description="gets the customer's fault notifications by e-mail"
    )

    def fields(self) -> ContactFields:
        """As the service takes them."""
        return ContactFields(**self.model_dump())


class ContactOut(Out):
    """A stored contact."""

    id: int
    customer_id: int
    name: str
    role: str
    phone: str
    email: str
    im_channel: str
    notify: bool
    updated_at: datetime

    @classmethod
    def of(cls, row: Contact) -> ContactOut:
        """From a stored contact."""
        return cls.model_validate(row)


class CustomerIn(In):
    """A customer and its contract."""

    name: str = Field(min_length=1, max_length=200)
    contract_number: str = Field(default="", max_length=100)
    contract_start: date | None = None
    contract_end: date | None = None
    sla_policy_id: int | None = Field(default=None, ge=1, description="null: the default policy")
    language: Literal["zh", "en"] = "zh"
    timezone: str = Field(default="Asia/Shanghai", min_length=1, max_length=64)
    notify_acknowledged: bool = Field(
        default=False, description="e-mail the contacts when a fault is acknowledged"
    )
    notify_resolved: bool = Field(
        default=False, description="e-mail the contacts when a fault is resolved (with the fix)"
    )

    def fields(self) -> CustomerFields:
        """As the service takes them."""
        return CustomerFields(**self.model_dump())


class CustomerOut(Out):
    """A stored customer with its contacts and the names of its sites."""

    id: int
    name: str
    contract_number: str
    contract_start: date | None
    contract_end: date | None
    sla_policy_id: int | None
    language: str
    timezone: str
    notify_acknowledged: bool
    notify_resolved: bool
    created_at: datetime
    updated_at: datetime
    contacts: list[ContactOut]
    sites: list[str]

    @classmethod
    def of(cls, row: Customer, contacts: list[Contact], sites: list[str]) -> CustomerOut:
        """From a stored customer."""
        return cls(
            id=row.id,
            name=row.name,
            contract_number=row.contract_number,
            contract_start=row.contract_start,
            contract_end=row.contract_end,
            sla_policy_id=row.sla_policy_id,
            language=row.language,
            timezone=row.timezone,
            notify_acknowledged=row.notify_acknowledged,
            notify_resolved=row.notify_resolved,
            created_at=row.created_at,
            updated_at=row.updated_at,
            contacts=[ContactOut.of(c) for c in contacts],
            sites=sites,
        )


class SiteCustomerIn(In):
    """The customer a site belongs to (null: none)."""

    customer_id: int | None = Field(ge=1)
