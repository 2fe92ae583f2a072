"""The service desk's pages: customers with their contacts, sites and contract SLA policies; the
form for a fault a person reports (phone, fax, e-mail, web, on site); on a ticket's page, the
promised fix and plan and the on-site dispatch. They act through hq_server.tickets.manual and
hq_server.tickets.actions, as the API does; a form's bad input is shown next to its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hq_server.core.domain import Role
from hq_server.core.errors import InvalidInput, InvalidTransition, NotFound
from hq_server.customers.policies import contract_for_site
from hq_server.store.models import Contact, Customer, Site, SlaPolicy
from hq_server.tickets import actions, manual
from hq_server.tickets.policy import TicketPolicy
from hq_server.web.auth import Engineer, Refused, Viewer, Visit, app_state
from hq_server.web.i18n import N_
from hq_server.web.pages.tickets import Fields, FormErrors, ticket_page_again
from hq_server.web.render import navigation, render, template_globals

router = APIRouter(include_in_schema=False)
navigation("/desk/report", N_("Report a fault"), 25, Role.ENGINEER)
navigation("/customers", N_("Customers"), 40)

SOURCE_NAMES = {
    "phone": N_("phone"),
    "fax": N_("fax"),
    "email": N_("e-mail"),
    "web": N_("web"),
    "onsite": N_("on site"),
}
# What a service's InvalidInput on a field of the report means, in the user's language.
REPORT_ERRORS = {
    "source": N_("Choose how the fault was reported."),
    "site_id": N_("Choose a site."),
    "contact_id": N_("This person is not a contact of the site's customer."),
    "symptom": N_("Required."),
    "customer_id": N_("The site does not belong to this customer."),
}


# --- customers and policies -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """A customer as the page lists it."""

    customer: Customer
    policy: str | None
    contacts: list[Contact]
    sites: list[str]


def _customers(request: Request) -> tuple[list[CustomerRow], list[SlaPolicy]]:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        policies = list(session.scalars(select(SlaPolicy).order_by(SlaPolicy.name)))
        names = {p.id: p.name for p in policies}
        contacts: dict[int, list[Contact]] = {}
        for c in session.scalars(select(Contact).order_by(Contact.name, Contact.id)):
            contacts.setdefault(c.customer_id, []).append(c)
        sites: dict[int, list[str]] = {}
        for site in session.scalars(select(Site).where(Site.customer_id.is_not(None))):
            assert site.customer_id is not None
            sites.setdefault(site.customer_id, []).append(site.name)
        rows = [
            CustomerRow(
                c,
                names.get(c.sla_policy_id) if c.sla_policy_id else None,
                contacts.get(c.id, []),
                sorted(sites.get(c.id, [])),
            )
            for c in session.scalars(select(Customer).order_by(Customer.name))
        ]
        return rows, policies


@router.get("/customers")
async def customers(request: Request, visit: Viewer) -> Response:
    """Customers with their contract, contacts and sites; the SLA policies of the contracts."""
    rows, policies = await run_in_threadpool(_customers, request)
    return render(request, "desk/customers.html", visit.t, visit.user, rows=rows, policies=policies)


# --- reporting a fault ----------------------------------------------------------------------


def _choices(request: Request) -> dict[str, Any]:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        sites = list(session.scalars(select(Site).order_by(Site.name)))
        contacts = session.execute(
            select(Contact, Customer.name)
            .join(Customer, Contact.customer_id == Customer.id)
            .order_by(Customer.name, Contact.name)
        ).all()
        return {
            "sites": [(s.id, s.name, s.customer) for s in sites],
            "contacts": [(c.id, c.name, name) for c, name in contacts],
        }


def _report_page(
    request: Request,
    visit: Visit,
    *,
    status_code: int = 200,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "desk/report.html",
        visit.t,
        visit.user,
        status_code=status_code,
        typed=typed or {},
        errors=errors or {},
        source_names=SOURCE_NAMES,
        **_choices(request),
    )


@router.get("/desk/report")
async def report_form(request: Request, visit: Engineer) -> Response:
    """The form for a fault a person reported."""
    return await run_in_threadpool(_report_page, request, visit)


def _number(fields: Fields, name: str, *, required: bool = False) -> int | None:
    raw = fields.form.get(name, "").strip()
    if not raw:
        if required:
            fields.errors[name] = fields.t.gettext(N_("Required."))
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 2_147_483_647:
        fields.errors[name] = fields.t.gettext(REPORT_ERRORS.get(name, N_("Required.")))
        return None
    return int(raw)


def _open_reported(request: Request, visit: Visit, report: manual.Report) -> int:
    db, clock, settings = app_state(request)
    with db.writer() as session, session.begin():
        policy = TicketPolicy.of(settings)
        ticket = manual.open_manual(
            session, report, clock.now(), visit.who.username, policy.on_duty, policy.paging
        )
        request.state.audit_summary = f"open ticket {ticket.number} ({report.source})"
        request.state.audit_targets = {"ticket_number": ticket.number}
        return ticket.id


def _grade_error(request: Request, visit: Visit, site_id: int) -> str:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        site = session.get(Site, site_id)
        labels = list(contract_for_site(session, site).labels) if site is not None else []
    known = ", ".join(labels) if labels else "1, 2, 3, 4, 5"
    return visit.t.gettext(
        N_("Not a grade of the site's contract: use one of %(grades)s."), grades=known
    )


@router.post("/desk/report")
async def report(request: Request, visit: Engineer) -> Response:
    """Open the ticket of a reported fault; its page, or the form again showing what's wrong."""
    t = visit.t
    fields = Fields(visit.form, t)
    typed = {k: v for k, v in visit.form.items() if k != "csrf_token"}
    source = fields.form.get("source", "")
    if source not in SOURCE_NAMES:
        fields.errors["source"] = t.gettext(REPORT_ERRORS["source"])
    site_id = _number(fields, "site_id", required=True)
    contact_id = _number(fields, "contact_id")
    grade = fields.text("grade", required=True, limit=20)
    symptom = fields.text("symptom", required=True)
    reporter = fields.text("reporter", limit=200)
    device_id = fields.text("device_id", limit=64)
    try:
        fields.done()
        assert site_id is not None
        report = manual.Report(
            source=source,
            site_id=site_id,
            grade=grade,
            symptom=symptom,
            reporter=reporter,
            contact_id=contact_id,
            device_id=device_id,
        )
        ticket_id = await run_in_threadpool(_open_reported, request, visit, report)
    except FormErrors as exc:
        request.state.audit_summary = f"refused report: bad input in {', '.join(exc.errors)}"
        return await run_in_threadpool(
            _report_page, request, visit, status_code=422, typed=typed, errors=exc.errors
        )
    except InvalidInput as exc:
        name = str(exc.loc[0]) if exc.loc else "symptom"
        if name == "grade" and site_id is not None:
            message = await run_in_threadpool(_grade_error, request, visit, site_id)
        else:
            message = t.gettext(REPORT_ERRORS.get(name, N_("Required.")))
        request.state.audit_summary = f"refused report: bad input in {name}"
        return await run_in_threadpool(
            _report_page, request, visit, status_code=422, typed=typed, errors={name: message}
        )
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


# --- on a ticket: the promised fix and the dispatch -------------------------------------------


def _instant(fields: Fields, name: str, zone: str) -> datetime | None:
    """A datetime-local field, read in the site's time zone."""
    raw = fields.form.get(name, "").strip()
    if not raw:
        return None
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        fields.errors[name] = fields.t.gettext(N_("A date and time, e.g. 2026-03-02 16:30."))
        return None
    if local.tzinfo is not None or not 1970 <= local.year <= 2999:
        fields.errors[name] = fields.t.gettext(N_("A date and time, e.g. 2026-03-02 16:30."))
        return None
    return local.replace(tzinfo=ZoneInfo(zone))


DESK_FORMS = ("plan", "dispatch")
DISPATCH_LABELS = (
    ("sent_at", N_("sent")),
    ("left_at", N_("left for the site")),
    ("arrived_at", N_("arrived")),
    ("left_site_at", N_("left the site")),
)
DISPATCH_STEPS = tuple(step for step, _label in DISPATCH_LABELS)
template_globals(
    source_names=SOURCE_NAMES, dispatch_labels=DISPATCH_LABELS, instant=datetime.fromisoformat
)


def _desk_action(request: Request, visit: Visit, ticket_id: int, name: str) -> None:
    db, clock, _settings = app_state(request)
    fields = Fields(visit.form, visit.t)
    with db.writer() as session, session.begin():
        try:
            ticket = actions.get_ticket(session, ticket_id)
        except NotFound:
            raise Refused(visit.t, 404, N_("There is no such ticket.")) from None
        zone = ticket.site.timezone
        request.state.audit_targets = {"ticket_number": ticket.number}
        now, who = clock.now(), visit.who.username
        if name == "plan":
            promised = _instant(fields, "promised_fix_at", zone)
            plan = fields.text("plan")
            fields.done()
            request.state.audit_summary = f"set the plan of {ticket.number}"
            actions.set_plan(session, ticket, now, who, promised, plan)
            return
        engineer = fields.text("engineer", limit=100) or None
        times = {step: _instant(fields, step, zone) for step in DISPATCH_STEPS}
        fields.done()
        request.state.audit_summary = f"dispatch on {ticket.number}"
        actions.dispatch(session, ticket, now, who, engineer, times)


@router.post("/desk/tickets/{ticket_id}/{name}")
async def desk_action(request: Request, ticket_id: int, name: str, visit: Engineer) -> Response:
    """Record the promised fix and plan, or a step of the dispatch; back to the ticket's page."""
    t = visit.t
    if name not in DESK_FORMS:
        raise Refused(t, 404, N_("There is no such action."))
    typed = {k: v for k, v in visit.form.items() if k not in ("csrf_token", "version")}

    def again(status: int, **kw: Any) -> Response:
        return ticket_page_again(request, visit, ticket_id, status, name, typed, **kw)

    try:
        await run_in_threadpool(_desk_action, request, visit, ticket_id, name)
    except FormErrors as exc:
        request.state.audit_summary = f"refused {name}: bad input in {', '.join(exc.errors)}"
        return await run_in_threadpool(again, 422, errors=exc.errors)
    except InvalidInput as exc:
        field = str(exc.loc[0]) if exc.loc else name
        message = t.gettext(N_("Not possible: check the order and that it is not in the future."))
        if field == "engineer":
            message = t.gettext(N_("Say who is sent on site."))
        return await run_in_threadpool(again, 422, errors={field: message})
    except InvalidTransition:
        message = t.gettext(N_("This action is not possible in the ticket's current status."))
        return await run_in_threadpool(again, 409, message=message)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)
