"""SLA policies as data: a customer's contract names its own grade scheme (1-5, A-D, C-1..C-3,
...) mapped onto StationWatch's grades 1..5, and per grade the acknowledge, restore and on-site
targets and the clock they count on (24x7, or the business hours of the contract's calendar,
or of the site's when the policy names none).

A site without a customer, or whose customer has no policy, works on the default policy: the
fixed table of protocol.grades (no on-site target), its scheme the grade numbers and the
aliases protocol.grades knows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hq_server.core.errors import InvalidInput
from hq_server.store.models import Customer, Site, SlaPolicy
from protocol.grades import DEFAULT_POLICIES, Grade, GradePolicy, parse_grade

CLOCKS = ("24x7", "business")
LABEL_MAX = 20
# Targets longer than a year are typing mistakes.
MINUTES_MAX = 366 * 24 * 60


@dataclass(frozen=True, slots=True)
class ContractPolicy:
    """The SLA of a contract, ready for the ticket clocks."""

    policy_id: int | None  # None: the default policy
    name: str
    # The customer's grade names (upper case) -> our grade; empty: the default scheme.
    labels: Mapping[str, Grade]
    grades: Mapping[Grade, GradePolicy]
    onsite_minutes: Mapping[Grade, int | None]
    calendar_id: int | None  # None: the site's calendar

    def grade_of(self, given: int | str) -> tuple[Grade, str]:
        """Our grade for a grade the customer's representative gave, and the label as given
        (normalised); InvalidInput naming the field `grade` when the scheme does not have it."""
        if not self.labels:
            try:
                return parse_grade(given), str(given).strip().upper()
            except ValueError as exc:
                raise InvalidInput(str(exc), field="grade") from None
        label = str(given).strip().upper()
        grade = self.labels.get(label)
        if grade is None:
            known = ", ".join(self.labels)
            raise InvalidInput(
                f"grade {given!r} is not in the scheme of policy {self.name!r}: use one of {known}",
                field="grade",
            )
        return grade, label

    def label_of(self, grade: int) -> str:
        """The customer's name of one of our grades (the first label mapped onto it)."""
        for label, mapped in self.labels.items():
            if mapped == grade:
                return label
        return str(grade)


DEFAULT_CONTRACT = ContractPolicy(
    policy_id=None,
    name="default",
    labels={},
    grades=DEFAULT_POLICIES,
    onsite_minutes=dict.fromkeys(Grade),
    calendar_id=None,
)


def _minutes(value: Any, loc: tuple[str | int, ...]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MINUTES_MAX:
        raise InvalidInput(
            f"{'.'.join(map(str, loc))}: minutes from 1 to {MINUTES_MAX}, or null for no target",
            loc=loc,
        )
    return value


def check_scheme(labels: Mapping[str, Any]) -> dict[str, int]:
    """The stored form of a grade scheme (labels upper case); InvalidInput names the label."""
    if not labels:
        raise InvalidInput("scheme: name at least one grade", field="scheme")
    out: dict[str, int] = {}
    for raw, grade in labels.items():
        label = raw.strip().upper()
        loc: tuple[str | int, ...] = ("scheme", raw)
        if not label or len(label) > LABEL_MAX:
            raise InvalidInput(f"scheme: a grade name has 1 to {LABEL_MAX} characters", loc=loc)
        if label in out:
            raise InvalidInput(f"scheme: grade {label!r} is named twice", loc=loc)
        if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 5:
            raise InvalidInput(f"scheme.{raw}: map it onto a grade from 1 to 5", loc=loc)
        out[label] = grade
    return out


def check_targets(grades: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The stored form of the per-grade targets: every grade 1..5 present, minutes positive
    or null, clock 24x7 or business; InvalidInput names the grade and the field."""
    missing = [str(g.value) for g in Grade if str(g.value) not in grades]
    if missing:
        raise InvalidInput(
            f"grades: targets missing for grade {', '.join(missing)}", loc=("grades",)
        )
    out: dict[str, dict[str, Any]] = {}
    for key, targets in grades.items():
        if key not in {str(g.value) for g in Grade}:
            raise InvalidInput(f"grades: {key!r} is not a grade from 1 to 5", loc=("grades", key))
        clock = targets.get("clock")
        if clock not in CLOCKS:
            raise InvalidInput(
                f"grades.{key}.clock: use {' or '.join(CLOCKS)}", loc=("grades", key, "clock")
            )
        out[key] = {
            field: _minutes(targets.get(field), ("grades", key, field))
            for field in ("ack_minutes", "restore_minutes", "onsite_minutes")
        } | {"clock": clock}
    return out


def contract_of(row: SlaPolicy) -> ContractPolicy:
    """The ContractPolicy of a stored policy."""
    grades: dict[Grade, GradePolicy] = {}
    onsite: dict[Grade, int | None] = {}
    for grade in Grade:
        targets = row.grades[str(grade.value)]
        grades[grade] = GradePolicy(
            grade,
            DEFAULT_POLICIES[grade].meaning,
            targets.get("ack_minutes"),
            targets.get("restore_minutes"),
            targets["clock"],
        )
        onsite[grade] = targets.get("onsite_minutes")
    labels = {label: Grade(g) for label, g in row.scheme["labels"].items()}
    return ContractPolicy(
        policy_id=row.id,
        name=row.name,
        labels=labels,
        grades=grades,
        onsite_minutes=onsite,
        calendar_id=row.calendar_id,
    )


def contract_for_site(session: Session, site: Site) -> ContractPolicy:
    """The policy a site's tickets run on: its customer's contract policy, else the default.
    Looked up once per transaction and customer (a batch opens many tickets)."""
    if site.customer_id is None:
        return DEFAULT_CONTRACT
    cache: dict[int, ContractPolicy] = session.info.setdefault("contract_policies", {})
    known = cache.get(site.customer_id)
    if known is not None:
        return known
    customer = session.get(Customer, site.customer_id)
    contract = DEFAULT_CONTRACT
    if customer is not None and customer.sla_policy_id is not None:
        contract = contract_of(session.get_one(SlaPolicy, customer.sla_policy_id))
    cache[site.customer_id] = contract
    return contract


def forget_contracts(session: Session) -> None:
    """Drop the transaction's cached policies (after a policy or a customer changed)."""
    session.info.pop("contract_policies", None)
