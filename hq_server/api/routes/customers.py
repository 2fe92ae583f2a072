"""Customers, their contacts, and the SLA policies of their contracts: any user token reads
them, admins change them. A change of a policy, of a customer's policy or of a site's customer
recomputes the deadlines of the open tickets concerned."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import get_row
from hq_server.api.schemas.customers import (
    ContactIn,
    ContactOut,
    CustomerIn,
    CustomerOut,
    SiteCustomerIn,
    SlaPolicyIn,
    SlaPolicyOut,
)
from hq_server.customers import records
from hq_server.store.models import Customer, Site, SlaPolicy
from hq_server.tickets import contracts, deadlines
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["customers"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


def _customer_out(session: Session, row: Customer) -> CustomerOut:
    sites = session.scalars(select(Site.name).where(Site.customer_id == row.id).order_by(Site.name))
    return CustomerOut.of(row, records.contacts_of(session, row.id), list(sites))


# ---- SLA policies ----------------------------------------------------------------------------


@router.get("/sla-policies", response_model=list[SlaPolicyOut])
def list_policies(_user: ViewerDep, db: DbDep) -> list[SlaPolicyOut]:
    """All SLA policies, by name."""
    with db.session() as session:
        return [
            SlaPolicyOut.of(r) for r in session.scalars(select(SlaPolicy).order_by(SlaPolicy.name))
        ]


@router.get("/sla-policies/{policy_id}", response_model=SlaPolicyOut, responses=errors(404))
def get_policy(policy_id: Id, _user: ViewerDep, db: DbDep) -> SlaPolicyOut:
    """One SLA policy."""
    with db.session() as session:
        return SlaPolicyOut.of(records.get_policy(session, policy_id))


@router.post("/sla-policies", response_model=SlaPolicyOut, status_code=201, responses=errors(409))
def post_policy(
    body: SlaPolicyIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> SlaPolicyOut:
    """Create an SLA policy (the customer's grade scheme, targets per grade, calendar)."""
    with db.writer() as session, session.begin():
        row = records.save_policy(
            session,
            None,
            name=body.name,
            scheme=body.scheme,
            grades=body.stored_grades(),
            calendar_id=body.calendar_id,
            now=clock.now(),
        )
        audit_note(request, f"create SLA policy {row.name}", sla_policy_id=row.id)
        return SlaPolicyOut.of(row)


@router.put("/sla-policies/{policy_id}", response_model=SlaPolicyOut, responses=errors(404, 409))
def put_policy(
    policy_id: Id,
    body: SlaPolicyIn,
    request: Request,
    user: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> SlaPolicyOut:
    """Replace an SLA policy; the deadlines of open tickets at its customers' sites are
    recomputed."""
    with db.writer() as session, session.begin():
        row = records.save_policy(
            session,
            records.get_policy(session, policy_id),
            name=body.name,
            scheme=body.scheme,
            grades=body.stored_grades(),
            calendar_id=body.calendar_id,
            now=clock.now(),
        )
        site_ids = list(
            session.scalars(
                select(Site.id)
                .join(Customer, Site.customer_id == Customer.id)
                .where(Customer.sla_policy_id == row.id)
            )
        )
        moved = (
            deadlines.refresh_open_tickets(
                session, site_ids, clock.now(), user.name, "SLA policy changed"
            )
            if site_ids
            else 0
        )
        audit_note(request, f"change SLA policy {row.name}; {moved} tickets' deadlines moved")
        return SlaPolicyOut.of(row)


# ---- customers and contacts ------------------------------------------------------------------


@router.get("/customers", response_model=list[CustomerOut])
def list_customers(_user: ViewerDep, db: DbDep) -> list[CustomerOut]:
    """All customers with their contacts and sites, by name."""
    with db.session() as session:
        rows = session.scalars(select(Customer).order_by(Customer.name))
        return [_customer_out(session, r) for r in rows]


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=errors(404))
def get_customer(customer_id: Id, _user: ViewerDep, db: DbDep) -> CustomerOut:
    """One customer with its contacts and sites."""
    with db.session() as session:
        return _customer_out(session, records.get_customer(session, customer_id))


@router.post("/customers", response_model=CustomerOut, status_code=201, responses=errors(409))
def post_customer(
    body: CustomerIn, request: Request, _admin: AdminDep, db: DbDep, clock: ClockDep
) -> CustomerOut:
    """Create a customer with its contract."""
    with db.writer() as session, session.begin():
        row = records.save_customer(session, None, body.fields(), clock.now())
        audit_note(request, f"create customer {row.name}", customer_id=row.id)
        return _customer_out(session, row)


@router.put("/customers/{customer_id}", response_model=CustomerOut, responses=errors(404, 409))
def put_customer(
    customer_id: Id,
    body: CustomerIn,
    request: Request,
    user: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> CustomerOut:
    """Replace a customer's record; a change of SLA policy recomputes the deadlines of the
    open tickets at its sites."""
    with db.writer() as session, session.begin():
        row = records.get_customer(session, customer_id)
        moved = contracts.change_customer(session, row, body.fields(), clock.now(), user.name)
        audit_note(request, f"change customer {row.name}; {moved} tickets' deadlines moved")
        return _customer_out(session, row)


@router.post(
    "/customers/{customer_id}/contacts",
    response_model=ContactOut,
    status_code=201,
    responses=errors(404),
)
def post_contact(
    customer_id: Id,
    body: ContactIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> ContactOut:
    """Add a contact to a customer."""
    with db.writer() as session, session.begin():
        customer = records.get_customer(session, customer_id)
        row = records.save_contact(session, None, customer, body.fields(), clock.now())
        audit_note(request, f"add contact {row.name} to {customer.name}", contact_id=row.id)
        return ContactOut.of(row)


@router.put("/contacts/{contact_id}", response_model=ContactOut, responses=errors(404))
def put_contact(
    contact_id: Id,
    body: ContactIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> ContactOut:
    """Replace a contact."""
    with db.writer() as session, session.begin():
        row = records.get_contact(session, contact_id)
        customer = records.get_customer(session, row.customer_id)
        row = records.save_contact(session, row, customer, body.fields(), clock.now())
        audit_note(request, f"change contact {row.name} of {customer.name}", contact_id=row.id)
        return ContactOut.of(row)


@router.delete(
    "/contacts/{contact_id}", status_code=204, response_model=None, responses=errors(404, 409)
)
def delete_contact(contact_id: Id, request: Request, _admin: AdminDep, db: DbDep) -> None:
    """Delete a contact no ticket names (409 otherwise)."""
    with db.writer() as session, session.begin():
        row = records.get_contact(session, contact_id)
        audit_note(request, f"delete contact {row.name}", contact_id=row.id)
        records.delete_contact(session, row)


@router.put(
    "/sites/{site_id}/customer",
    tags=["admin"],
    response_model=CustomerOut | None,
    responses=errors(404),
)
def put_site_customer(
    site_id: Id,
    body: SiteCustomerIn,
    request: Request,
    user: AdminDep,
    db: DbDep,
    clock: ClockDep,
) -> CustomerOut | None:
    """Put a site under a customer (null: under none); the deadlines of its open tickets follow
    the customer's SLA policy. Answers the customer."""
    with db.writer() as session, session.begin():
        site = get_row(session, Site, site_id, "site")
        customer = (
            records.get_customer(session, body.customer_id)
            if body.customer_id is not None
            else None
        )
        records.set_site_customer(session, site, customer)
        session.flush()
        moved = deadlines.refresh_open_tickets(
            session, [site.id], clock.now(), user.name, "site's customer changed"
        )
        audit_note(
            request,
            f"site {site.name} under customer {customer.name if customer else '(none)'}; "
            f"{moved} tickets' deadlines moved",
            site_id=site.id,
        )
        return _customer_out(session, customer) if customer is not None else None
