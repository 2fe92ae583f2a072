"""Tickets opened by people: a fault reported by phone, fax, e-mail, the web or on site.

They open through the same path as the alarms' tickets (records.open_subject: the same SLA
clocks, escalation chain and whatever is told when a ticket opens), on the contract policy of
the site's customer; the grade the customer's representative gave is read in the customer's
grade scheme and kept beside ours. Each has its own fingerprint ("manual:<uuid>"), so a manual
ticket never merges with an alarm's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hq_server.core.errors import InvalidInput
from hq_server.customers.policies import contract_for_site
from hq_server.store.models import Contact, Site, Ticket
from hq_server.tickets.paging import DEFAULT_LIMITS, PagingLimits
from hq_server.tickets.records import Subject, open_subject

SOURCES = ("phone", "fax", "email", "web", "onsite")
MANUAL_CODE = "manual"
_TITLE_MAX = 300


@dataclass(frozen=True, slots=True)
class Report:
    """What the person reporting a fault said, as the service desk took it down."""

    source: str
    site_id: int
    grade: int | str  # in the customer's scheme
    symptom: str
    reporter: str = ""
    contact_id: int | None = None
    customer_id: int | None = None
    device_id: str = ""
    title: str = ""


def _title(report: Report) -> str:
    text = report.title.strip() or report.symptom.strip().splitlines()[0]
    if report.device_id:
        text = f"{report.device_id}: {text}"
    return text[:_TITLE_MAX]


def open_manual(
    session: Session,
    report: Report,
    now: datetime,
    who: str,
    on_duty: str = "",
    paging_limits: PagingLimits = DEFAULT_LIMITS,
) -> Ticket:
    """Open the ticket of a reported fault; InvalidInput names the field that does not fit."""
    if report.source not in SOURCES:
        raise InvalidInput(f"source: use one of {', '.join(SOURCES)}", field="source")
    site = session.get(Site, report.site_id)
    if site is None:
        raise InvalidInput(f"site_id: no site {report.site_id}", field="site_id")
    if report.customer_id is not None and report.customer_id != site.customer_id:
        raise InvalidInput(
            f"customer_id: site {site.name!r} does not belong to customer {report.customer_id}",
            field="customer_id",
        )
    reporter = report.reporter.strip()
    if report.contact_id is not None:
        contact = session.get(Contact, report.contact_id)
        if contact is None or contact.customer_id != site.customer_id:
            raise InvalidInput(
                f"contact_id: contact {report.contact_id} is not a contact of the site's customer",
                field="contact_id",
            )
        reporter = reporter or contact.name
    if not report.symptom.strip():
        raise InvalidInput("symptom: say what the customer sees", field="symptom")
    grade, label = contract_for_site(session, site).grade_of(report.grade)
    subject = Subject(
        site=site,
        fault_key=f"manual:{uuid.uuid4().hex}",
        device_id=report.device_id,
        code=MANUAL_CODE,
        component="",
        grade=int(grade),
        title=_title(report),
        symptom=report.symptom,
        alarm_id=None,
        source=report.source,
        reporter=reporter,
        contact_id=report.contact_id,
        customer_grade=label,
    )
    outcome = open_subject(
        session, subject, now, who, on_duty, alarm_active=False, paging_limits=paging_limits
    )
    return outcome.ticket
