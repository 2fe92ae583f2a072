"""Escalation chains (admins change them, everyone reads them; webhook keys are never shown and
are stored sealed). New tickets copy the chain of their customer and grade."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from hq_server.access.secretbox import box_for, has_keys, is_sealed
from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AdminDep, ClockDep, DbDep, Id, SettingsDep, ViewerDep, audit_note
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, errors
from hq_server.api.lookup import flush_unique, get_row
from hq_server.api.schemas.chains import ChainIn, ChainOut
from hq_server.core.errors import InvalidInput
from hq_server.core.settings import Settings
from hq_server.store.models import EscalationChain
from hq_server.tickets import escalation
from hq_server.tickets.webhook_targets import ALLOW_SETTING, TargetRefused, check_saved
from protocol.wire import API_PREFIX

router = APIRouter(
    prefix=API_PREFIX,
    tags=["config"],
    route_class=BoundedBodyRoute,
    responses={**BODY_ERRORS, **AUTH_ERRORS},
)


def _check_webhooks(body: ChainIn, settings: Settings) -> None:
    """422 naming the contact for a webhook to an address HQ does not send to (see
    hq_server.tickets.webhook_targets), unless allow_private_webhooks is set."""
    if settings.allow_private_webhooks:
        return
    for i, level in enumerate(body.levels):
        for j, contact in enumerate(level.contacts):
            if contact.webhook_url is None:
                continue
            try:
                check_saved(str(contact.webhook_url))
            except TargetRefused as exc:
                field = f"levels[{i}].contacts[{j}].webhook_url"
                raise InvalidInput(
                    f"{field}: {exc}: HQ does not send webhooks to its own machine or to private "
                    f"networks (set {ALLOW_SETTING} to allow it)",
                    loc=("levels", i, "contacts", j, "webhook_url"),
                ) from None


def _sealed(settings: Settings, levels: dict[str, Any]) -> dict[str, Any]:
    """Levels as stored: webhook keys sealed (only those need HQ's key file)."""
    return box_for(settings).seal_levels(levels) if has_keys(levels) else levels


def _keep_keys(
    levels: dict[str, Any],
    stored: dict[str, Any],
    positions: list[tuple[int, int]],
    settings: Settings,
) -> None:
    """Give the contacts at `positions` the key stored in the chain for the same contact (same
    name and webhook_url), sealed."""
    by_contact = {
        (c["name"], c["webhook_url"]): c["webhook_secret"]
        for level in stored.get("levels", [])
        for c in level.get("contacts", [])
        if c.get("webhook_url") and c.get("webhook_secret")
    }
    for i, j in positions:
        contact = levels["levels"][i]["contacts"][j]
        key = by_contact.get((contact["name"], contact["webhook_url"]))
        if key is not None:
            # One saved in plain text by an older HQ is sealed now (only that needs the key).
            contact["webhook_secret"] = key if is_sealed(key) else box_for(settings).seal(key)


@router.get("/escalation-chains", response_model=list[ChainOut])
def list_chains(_user: ViewerDep, db: DbDep) -> list[ChainOut]:
    """All escalation chains, by customer and grade."""
    with db.session() as session:
        return [ChainOut.of(r) for r in escalation.list_chains(session)]


@router.get("/escalation-chains/{chain_id}", response_model=ChainOut, responses=errors(404))
def get_chain(chain_id: Id, _user: ViewerDep, db: DbDep) -> ChainOut:
    """One escalation chain (webhook secrets are never shown)."""
    with db.session() as session:
        return ChainOut.of(get_row(session, EscalationChain, chain_id, "escalation chain"))


@router.post("/escalation-chains", response_model=ChainOut, status_code=201, responses=errors(409))
def post_chain(
    body: ChainIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ChainOut:
    """Create the chain of a customer and grade (new tickets copy it when they open)."""
    _check_webhooks(body, settings)
    levels = _sealed(settings, body.stored_levels())
    with db.writer() as session, session.begin():
        row = EscalationChain(
            name=body.name,
            customer=body.customer,
            grade=body.grade,
            levels=levels,
            updated_at=clock.now(),
        )
        session.add(row)
        flush_unique(session, f"a chain for customer {body.customer!r} grade {body.grade}")
        audit_note(request, f"create escalation chain {body.name}", chain_id=row.id)
        return ChainOut.of(row)


@router.put("/escalation-chains/{chain_id}", response_model=ChainOut, responses=errors(404, 409))
def put_chain(
    chain_id: Id,
    body: ChainIn,
    request: Request,
    _admin: AdminDep,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
) -> ChainOut:
    """Replace a chain (tickets already open keep the copy they were opened with). Webhook
    keys are never shown, so a contact that leaves out `webhook_secret` keeps the key the chain
    holds for the same contact (same name and webhook_url); `"webhook_secret": null` removes
    it."""
    _check_webhooks(body, settings)
    levels = _sealed(settings, body.stored_levels())
    with db.writer() as session, session.begin():
        row = get_row(session, EscalationChain, chain_id, "escalation chain", for_update=True)
        _keep_keys(levels, row.levels, body.keys_left_out(), settings)
        row.name, row.customer, row.grade = body.name, body.customer, body.grade
        row.levels = levels
        row.updated_at = clock.now()
        flush_unique(session, f"a chain for customer {body.customer!r} grade {body.grade}")
        audit_note(request, f"change escalation chain {body.name}")
        return ChainOut.of(row)


@router.delete(
    "/escalation-chains/{chain_id}", status_code=204, response_model=None, responses=errors(404)
)
def delete_chain(chain_id: Id, request: Request, _admin: AdminDep, db: DbDep) -> None:
    """Delete a chain (open tickets keep their copy)."""
    with db.writer() as session, session.begin():
        row = get_row(session, EscalationChain, chain_id, "escalation chain")
        audit_note(request, f"delete escalation chain {row.name}")
        session.delete(row)
