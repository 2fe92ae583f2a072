"""The service desk's pages: customers with their contacts, sites and contract SLA policies; the
form for a fault a person reports (phone, fax, e-mail, web, on site); on a ticket's page, the
promised fix and plan and the on-site dispatch. They act through hq_server.tickets.manual and
hq_server.tickets.actions, as the API does; a form's bad input is shown next to its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from hq_server.core.domain import Role
from hq_server.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from hq_server.customers import records
from hq_server.customers.policies import contract_for_site
from hq_server.store.models import Contact, Customer, Site, SlaPolicy
from hq_server.tickets import actions, contracts, manual
from hq_server.tickets.policy import TicketPolicy
from hq_server.web.auth import Admin, Engineer, Refused, Viewer, Visit, app_state
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


# --- customers and contacts: admins' forms -----------------------------------------------------

LANGUAGE_NAMES = {"zh": N_("Chinese"), "en": N_("English")}
# What a service's InvalidInput or Conflict on a field means, in the user's language.
CUSTOMER_ERRORS = {
    "name": N_("A customer of this name already exists."),
    "language": N_("Choose Chinese or English."),
    "timezone": N_("Unknown time zone: use a name such as Asia/Shanghai."),
    "contract_end": N_("The contract ends before it starts."),
    "sla_policy_id": N_("Choose one of the SLA policies."),
}
CONTACT_ERRORS = {
    "name": N_("Required."),
    "phone": N_("Digits, spaces and + - ( ) only."),
    "email": N_(
        "An e-mail address such as name@example.com (needed when the contact gets notifications)."
    ),
}
template_globals(language_names=LANGUAGE_NAMES)


def _date(fields: Fields, name: str) -> date | None:
    raw = fields.form.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        fields.errors[name] = fields.t.gettext(N_("A date, e.g. 2026-03-02."))
        return None


def _customer_fields(fields: Fields) -> records.CustomerFields:
    """The customer form's fields, checked as far as a form can; FormErrors otherwise."""
    name = fields.text("name", required=True, limit=200)
    contract_number = fields.text("contract_number", limit=100)
    start, end = _date(fields, "contract_start"), _date(fields, "contract_end")
    raw_policy = fields.form.get("sla_policy_id", "").strip()
    policy_id: int | None = None
    if raw_policy:
        if raw_policy.isdigit() and 1 <= int(raw_policy) <= 2_147_483_647:
            policy_id = int(raw_policy)
        else:
            fields.errors["sla_policy_id"] = fields.t.gettext(CUSTOMER_ERRORS["sla_policy_id"])
    language = fields.form.get("language", "")
    if language not in LANGUAGE_NAMES:
        fields.errors["language"] = fields.t.gettext(CUSTOMER_ERRORS["language"])
    timezone = fields.text("timezone", required=True, limit=64)
    fields.done()
    return records.CustomerFields(
        name=name,
        contract_number=contract_number,
        contract_start=start,
        contract_end=end,
        sla_policy_id=policy_id,
        language=language,
        timezone=timezone,
        notify_acknowledged=fields.flag("notify_acknowledged"),
        notify_resolved=fields.flag("notify_resolved"),
    )


def _contact_fields(fields: Fields) -> records.ContactFields:
    """The contact form's fields; FormErrors otherwise (the service checks the rest)."""
    contact = records.ContactFields(
        name=fields.text("name", required=True, limit=100),
        role=fields.text("role", limit=100),
        phone=fields.text("phone", limit=40),
        email=fields.text("email", limit=254),
        im_channel=fields.text("im_channel", limit=200),
        notify=fields.flag("notify"),
    )
    fields.done()
    return contact


def _customer_page(
    request: Request,
    visit: Visit,
    customer_id: int | None,
    *,
    status_code: int = 200,
    form: str = "",
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    message: str = "",
) -> Response:
    db, _clock, _settings = app_state(request)
    with db.session() as session:
        policies = [
            (p.id, p.name) for p in session.scalars(select(SlaPolicy).order_by(SlaPolicy.name))
        ]
        customer: Customer | None = None
        contacts: list[Contact] = []
        if customer_id is not None:
            try:
                customer = records.get_customer(session, customer_id)
            except NotFound:
                raise Refused(visit.t, 404, N_("There is no such customer.")) from None
            contacts = records.contacts_of(session, customer_id)
        return render(
            request,
            "desk/customer.html",
            visit.t,
            visit.user,
            status_code=status_code,
            customer=customer,
            contacts=contacts,
            policies=policies,
            form=form,
            typed=typed or {},
            errors=errors or {},
            message=message,
        )


def _typed(visit: Visit) -> dict[str, str]:
    return {k: v for k, v in visit.form.items() if k != "csrf_token"}


def _save_customer(
    request: Request, visit: Visit, customer_id: int | None, fields: records.CustomerFields
) -> int:
    db, clock, _settings = app_state(request)
    with db.writer() as session, session.begin():
        now = clock.now()
        if customer_id is None:
            row = records.save_customer(session, None, fields, now)
            request.state.audit_summary = f"create customer {row.name}"
            request.state.audit_targets = {"customer_id": row.id}
            return row.id
        try:
            row = records.get_customer(session, customer_id)
        except NotFound:
            raise Refused(visit.t, 404, N_("There is no such customer.")) from None
        moved = contracts.change_customer(session, row, fields, now, visit.who.username)
        request.state.audit_summary = (
            f"change customer {row.name}; {moved} tickets' deadlines moved"
        )
        request.state.audit_targets = {"customer_id": row.id}
        return row.id


async def _customer_form(request: Request, visit: Visit, customer_id: int | None) -> Response:
    t = visit.t
    fields = Fields(visit.form, t)
    typed = _typed(visit)

    async def again(errors: dict[str, str]) -> Response:
        request.state.audit_summary = f"refused customer: bad input in {', '.join(errors)}"
        return await run_in_threadpool(
            lambda: _customer_page(
                request,
                visit,
                customer_id,
                status_code=422,
                form="customer",
                typed=typed,
                errors=errors,
            )
        )

    try:
        saved = await run_in_threadpool(
            _save_customer, request, visit, customer_id, _customer_fields(fields)
        )
    except FormErrors as exc:
        return await again(exc.errors)
    except InvalidInput as exc:
        name = str(exc.loc[0]) if exc.loc else "name"
        return await again({name: t.gettext(CUSTOMER_ERRORS.get(name, N_("Required.")))})
    except Conflict:
        return await again({"name": t.gettext(CUSTOMER_ERRORS["name"])})
    return RedirectResponse(f"/customers/{saved}", status_code=303)


@router.get("/customers/new")
async def new_customer_form(request: Request, visit: Admin) -> Response:
    """The form for a new customer."""
    return await run_in_threadpool(_customer_page, request, visit, None)


@router.post("/customers/new")
async def new_customer(request: Request, visit: Admin) -> Response:
    """Create a customer; its page, or the form again showing what's wrong."""
    return await _customer_form(request, visit, None)


@router.get("/customers/{customer_id}")
async def customer_form(request: Request, customer_id: int, visit: Admin) -> Response:
    """A customer's record and its contacts, to change."""
    return await run_in_threadpool(_customer_page, request, visit, customer_id)


@router.post("/customers/{customer_id}")
async def change_customer(request: Request, customer_id: int, visit: Admin) -> Response:
    """Change a customer's record."""
    return await _customer_form(request, visit, customer_id)


def _contact_action(
    request: Request, visit: Visit, customer_id: int, contact_id: int | None, name: str
) -> int:
    """Add (contact_id None), change or delete a contact; returns its customer's id."""
    db, clock, _settings = app_state(request)
    with db.writer() as session, session.begin():
        try:
            if contact_id is None:
                customer = records.get_customer(session, customer_id)
                row = None
            else:
                row = records.get_contact(session, contact_id)
                if row.customer_id != customer_id:
                    raise NotFound(f"no contact {contact_id} of customer {customer_id}")
                customer = records.get_customer(session, row.customer_id)
        except NotFound:
            raise Refused(visit.t, 404, N_("There is no such contact.")) from None
        if row is not None and name == "delete":
            request.state.audit_summary = f"delete contact {row.name}"
            request.state.audit_targets = {"contact_id": row.id}
            records.delete_contact(session, row)
            return customer.id
        fields = _contact_fields(Fields(visit.form, visit.t))
        saved = records.save_contact(session, row, customer, fields, clock.now())
        request.state.audit_summary = (
            f"add contact {saved.name} to {customer.name}"
            if row is None
            else f"change contact {saved.name} of {customer.name}"
        )
        request.state.audit_targets = {"contact_id": saved.id}
        return customer.id


async def _contact_form(
    request: Request, visit: Visit, customer_id: int, contact_id: int | None, name: str
) -> Response:
    t = visit.t
    typed = _typed(visit)
    form = f"contact-{contact_id}" if contact_id is not None else "contact-new"

    async def again(status: int, errors: dict[str, str], message: str = "") -> Response:
        request.state.audit_summary = (
            f"refused {name} contact: {message or 'bad input in ' + ', '.join(errors)}"
        )
        return await run_in_threadpool(
            lambda: _customer_page(
                request,
                visit,
                customer_id,
                status_code=status,
                form=form,
                typed=typed,
                errors=errors,
                message=message,
            )
        )

    try:
        owner = await run_in_threadpool(
            _contact_action, request, visit, customer_id, contact_id, name
        )
    except FormErrors as exc:
        return await again(422, exc.errors)
    except InvalidInput as exc:
        field = str(exc.loc[0]) if exc.loc else "name"
        return await again(422, {field: t.gettext(CONTACT_ERRORS.get(field, N_("Required.")))})
    except Conflict:
        message = N_(
            "This contact reported a ticket and is kept: turn its notifications off instead."
        )
        return await again(409, {}, t.gettext(message))
    return RedirectResponse(f"/customers/{owner}", status_code=303)


@router.post("/customers/{customer_id}/contacts")
async def add_contact(request: Request, customer_id: int, visit: Admin) -> Response:
    """Add a contact to a customer."""
    return await _contact_form(request, visit, customer_id, None, "add")


@router.post("/customers/{customer_id}/contacts/{contact_id}/{name}")
async def contact_action(
    request: Request, customer_id: int, contact_id: int, name: str, visit: Admin
) -> Response:
    """Change (`save`) or delete (`delete`) a contact."""
    if name not in ("save", "delete"):
        raise Refused(visit.t, 404, N_("There is no such action."))
    return await _contact_form(request, visit, customer_id, contact_id, name)
