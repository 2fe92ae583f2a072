"""The admins' forms for customers and their contacts, in-process on SQLite and PostgreSQL:
created and changed through the same services as the API, refused input shown next to its
field with nothing saved, audited like the API call; a viewer sees no form and a forged post
is refused."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.store.models import AuditEntry
from tests.hq.conftest import HQ
from tests.web.console import Console, hidden_fields
from tests.web.test_console_desk import POLICY, _desk

CUSTOMER = {
    "name": "Shanxi Radio",
    "contract_number": "SX-2026-07",
    "contract_start": "2026-01-01",
    "contract_end": "2028-12-31",
    "sla_policy_id": "",
    "language": "en",
    "timezone": "Asia/Urumqi",
    "notify_resolved": "1",
}
CONTACT = {
    "name": "Zhao Lei",
    "role": "chief engineer",
    "phone": "+86 351 1234 5678",
    "email": "zhao@example.com",
    "im_channel": "dingtalk:zhaolei",
    "notify": "1",
}


def _audit(hq: HQ) -> list[AuditEntry]:
    with hq.db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def _customers(hq: HQ) -> list[dict[str, Any]]:
    response = hq.get(hq.user_token(Role.VIEWER, "reader"), "/api/v1/customers")
    assert response.status_code == 200
    customers: list[dict[str, Any]] = response.json()
    return customers


def test_an_admin_creates_and_changes_a_customer(console: Console) -> None:
    hq = console.hq
    policy = hq.post(hq.user_token(Role.ADMIN, "admin"), "/api/v1/sla-policies", POLICY).json()
    console.as_user("ada", Role.ADMIN)
    assert 'href="/customers/new"' in console.get("/customers").text
    assert console.get("/customers/new").status_code == 200

    unknown_zone = console.post_form(
        "/customers/new", "/customers/new", {**CUSTOMER, "timezone": "Asia/Atlantis"}
    )
    assert unknown_zone.status_code == 422
    assert 'id="e-customer-timezone"' in unknown_zone.text
    assert 'aria-invalid="true" aria-describedby="e-customer-timezone"' in unknown_zone.text
    assert 'name="notify_resolved" value="1" checked>' in unknown_zone.text
    assert "Unknown time zone" in unknown_zone.text
    assert 'value="SX-2026-07"' in unknown_zone.text  # what was typed is kept
    bad_dates = console.post_form(
        "/customers/new", "/customers/new", {**CUSTOMER, "contract_end": "2025-12-31"}
    )
    assert bad_dates.status_code == 422 and 'id="e-customer-contract_end"' in bad_dates.text
    assert _customers(hq) == []  # nothing saved
    assert _audit(hq)[-1].summary == "refused customer: bad input in contract_end"

    created = console.post_form("/customers/new", "/customers/new", CUSTOMER)
    assert created.status_code == 303, created.text
    page = created.headers["location"]
    [stored] = _customers(hq)
    assert page == f"/customers/{stored['id']}"
    assert (stored["contract_number"], stored["contract_end"]) == ("SX-2026-07", "2028-12-31")
    assert (stored["language"], stored["timezone"]) == ("en", "Asia/Urumqi")
    assert (stored["notify_acknowledged"], stored["notify_resolved"]) == (False, True)
    row = _audit(hq)[-1]
    assert (row.actor, row.summary) == ("ada", "create customer Shanxi Radio")

    # A second customer of the same name is refused next to the name, nothing saved.
    again = console.post_form("/customers/new", "/customers/new", CUSTOMER)
    assert again.status_code == 422
    assert 'id="e-customer-name" class="field-error">A customer of this name already' in again.text
    assert len(_customers(hq)) == 1

    changed = console.post_form(
        page, page, {**CUSTOMER, "sla_policy_id": str(policy["id"]), "language": "zh"}
    )
    assert changed.status_code == 303, changed.text
    [stored] = _customers(hq)
    assert (stored["sla_policy_id"], stored["language"]) == (policy["id"], "zh")
    assert _audit(hq)[-1].summary == "change customer Shanxi Radio; 0 tickets' deadlines moved"


def test_a_duplicate_name_is_refused_in_the_users_language(console: Console) -> None:
    _desk(console.hq)
    console.as_user("ada", Role.ADMIN)
    switched = console.post_form("/", "/language", {"language": "zh_CN", "next": "/customers"})
    assert switched.status_code == 303
    refused = console.post_form(
        "/customers/new", "/customers/new", {**CUSTOMER, "name": "Hebei TV"}
    )
    assert refused.status_code == 422
    assert 'id="e-customer-name" class="field-error">已有同名客户。<' in refused.text


def test_an_admin_adds_edits_and_deletes_a_contact(console: Console) -> None:
    ids = _desk(console.hq)
    hq = console.hq
    console.as_user("ada", Role.ADMIN)
    page = f"/customers/{ids['customer']}"
    add = f"{page}/contacts"

    bad = console.post_form(page, add, {**CONTACT, "email": "zhao at example"})
    assert bad.status_code == 422
    assert 'id="e-contact-new-email"' in bad.text and "name@example.com" in bad.text
    phone = console.post_form(page, add, {**CONTACT, "phone": "call me"})
    assert phone.status_code == 422 and 'id="e-contact-new-phone"' in phone.text
    assert [c["name"] for c in _customers(hq)[0]["contacts"]] == ["Li Ming"]

    added = console.post_form(page, add, CONTACT)
    assert added.status_code == 303, added.text
    contacts = {c["name"]: c for c in _customers(hq)[0]["contacts"]}
    zhao = contacts["Zhao Lei"]
    assert (zhao["phone"], zhao["im_channel"], zhao["notify"]) == (
        "+86 351 1234 5678",
        "dingtalk:zhaolei",
        True,
    )
    assert _audit(hq)[-1].summary == "add contact Zhao Lei to Hebei TV"

    save = f"{page}/contacts/{zhao['id']}/save"
    refused = console.post_form(page, save, {**CONTACT, "email": "", "notify": "1"})
    assert refused.status_code == 422 and f'id="e-contact-{zhao["id"]}-email"' in refused.text
    edited = console.post_form(page, save, {**CONTACT, "role": "director", "notify": ""})
    assert edited.status_code == 303, edited.text
    zhao = {c["name"]: c for c in _customers(hq)[0]["contacts"]}["Zhao Lei"]
    assert (zhao["role"], zhao["notify"]) == ("director", False)
    assert _audit(hq)[-1].summary == "change contact Zhao Lei of Hebei TV"

    deleted = console.post_form(page, f"{page}/contacts/{zhao['id']}/delete")
    assert deleted.status_code == 303, deleted.text
    assert [c["name"] for c in _customers(hq)[0]["contacts"]] == ["Li Ming"]
    assert _audit(hq)[-1].summary == "delete contact Zhao Lei"


def test_a_contact_who_reported_a_ticket_is_kept(console: Console) -> None:
    ids = _desk(console.hq)
    hq = console.hq
    console.as_user("ada", Role.ADMIN)
    report = {
        "source": "phone",
        "site_id": str(ids["site"]),
        "grade": "A",
        "symptom": "no picture",
        "contact_id": str(ids["contact"]),
    }
    assert console.post_form("/desk/report", "/desk/report", report).status_code == 303
    page = f"/customers/{ids['customer']}"
    kept = console.post_form(page, f"{page}/contacts/{ids['contact']}/delete")
    assert kept.status_code == 409
    assert "turn its notifications off instead" in kept.text
    assert [c["name"] for c in _customers(hq)[0]["contacts"]] == ["Li Ming"]


def test_a_viewer_sees_no_form_and_a_forged_post_is_refused(console: Console) -> None:
    ids = _desk(console.hq)
    hq = console.hq
    console.as_user("vera", Role.VIEWER)
    listing = console.get("/customers")
    assert "/customers/new" not in listing.text
    assert f'href="/customers/{ids["customer"]}"' not in listing.text
    assert console.get(f"/customers/{ids['customer']}").status_code == 403
    token = hidden_fields(listing.text, "/logout")["csrf_token"]
    forged = console.client.post(
        "/customers/new", data={"csrf_token": token, **CUSTOMER}, follow_redirects=False
    )
    assert forged.status_code == 403
    delete = f"/customers/{ids['customer']}/contacts/{ids['contact']}/delete"
    forged_delete = console.client.post(delete, data={"csrf_token": token}, follow_redirects=False)
    assert forged_delete.status_code == 403
    assert [c["name"] for c in _customers(hq)] == ["Hebei TV"]
    assert [c["name"] for c in _customers(hq)[0]["contacts"]] == ["Li Ming"]
    row = _audit(hq)[-1]
    assert (row.actor, row.role, row.status) == ("vera", "viewer", 403)


def test_a_new_policy_moves_the_open_tickets_deadlines(console: Console) -> None:
    ids = _desk(console.hq)
    hq = console.hq
    console.as_user("ada", Role.ADMIN)
    report = {"source": "phone", "site_id": str(ids["site"]), "grade": "A", "symptom": "off air"}
    opened = console.post_form("/desk/report", "/desk/report", report)
    assert opened.status_code == 303, opened.text
    [ticket] = hq.tickets(hq.user_token())
    page = f"/customers/{ids['customer']}"
    form = {**CUSTOMER, "name": "Hebei TV", "sla_policy_id": ""}  # back to the default policy
    changed = console.post_form(page, page, form)
    assert changed.status_code == 303, changed.text
    assert _audit(hq)[-1].summary == "change customer Hebei TV; 1 tickets' deadlines moved"
    [moved] = hq.tickets(hq.user_token())
    assert moved["ack_due_at"] != ticket["ack_due_at"]
