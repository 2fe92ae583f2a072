"""The service desk's console pages, in-process on SQLite and PostgreSQL: customers with their
contacts and SLA policies, the form for a fault a person reports, and on a ticket's page the
promised fix and the on-site dispatch."""

from __future__ import annotations

from typing import Any

from hq_server.core.domain import Role
from tests.hq.conftest import HQ
from tests.web.console import Console

POLICY = {
    "name": "broadcaster A-D",
    "scheme": {"A": 1, "B": 2, "C": 3, "D": 5},
    "grades": {
        g: {"ack_minutes": 15, "restore_minutes": 240, "onsite_minutes": 120, "clock": "24x7"}
        for g in ("1", "2", "3", "4", "5")
    },
}


def _desk(hq: HQ) -> dict[str, Any]:
    """A customer on an A-D policy with a contact and a site (through the API)."""
    admin = hq.user_token(Role.ADMIN, "admin")
    policy = hq.post(admin, "/api/v1/sla-policies", POLICY).json()
    customer = hq.post(
        admin, "/api/v1/customers", {"name": "Hebei TV", "sla_policy_id": policy["id"]}
    ).json()
    contact = hq.post(
        admin,
        f"/api/v1/customers/{customer['id']}/contacts",
        {"name": "Li Ming", "email": "li@example.com", "im_channel": "wecom:liming"},
    ).json()
    site = hq.post(admin, "/api/v1/sites", {"name": "tv-1", "timezone": "Asia/Shanghai"}).json()
    path = f"/api/v1/sites/{site['id']}/customer"
    assert hq.call("PUT", admin, path, {"customer_id": customer["id"]}).status_code == 200
    return {"site": site["id"], "contact": contact["id"], "customer": customer["id"]}


def test_customers_page_shows_contracts_contacts_and_policies(console: Console) -> None:
    _desk(console.hq)
    console.as_user("vera", Role.VIEWER)
    html = console.get("/customers").text
    assert "Hebei TV" in html and "broadcaster A-D" in html
    assert "Li Ming" in html and "wecom:liming" in html and "tv-1" in html
    assert "<td>A</td>" in html and "<td>B</td>" in html
    assert "<td>120 minutes</td>" in html  # on site within, exactly as the contract says
    assert 'href="/desk/report"' not in html  # a viewer reports nothing
    chinese = console.get("/customers", lang="zh_CN")
    assert chinese.status_code == 200


def test_a_reported_fault_opens_a_ticket_on_the_customers_policy(console: Console) -> None:
    ids = _desk(console.hq)
    console.as_user("wang", Role.ENGINEER)
    assert console.get("/desk/report").status_code == 200
    fields = {
        "source": "phone",
        "site_id": str(ids["site"]),
        "grade": "E",
        "symptom": "no picture on channel 3",
        "contact_id": str(ids["contact"]),
        "device_id": "tx1",
    }
    refused = console.post_form("/desk/report", "/desk/report", fields)
    assert refused.status_code == 422
    assert "use one of A, B, C, D" in refused.text
    assert 'id="report-grade" name="grade" maxlength="20" size="6" value="E" aria-invalid' in (
        refused.text
    )
    assert "no picture on channel 3" in refused.text  # what was typed is kept
    missing = console.post_form("/desk/report", "/desk/report", {**fields, "symptom": ""})
    assert missing.status_code == 422 and 'id="e-report-symptom"' in missing.text

    opened = console.post_form("/desk/report", "/desk/report", {**fields, "grade": "a"})
    assert opened.status_code == 303, opened.text
    page = console.get(opened.headers["location"]).text
    assert "tx1: no picture on channel 3" in page
    assert '<span class="badge g1">1 Major</span>' in page
    assert "phone · Li Ming" in page

    # The promised fix and the dispatch, from the ticket's page (times in the site's zone).
    ticket = opened.headers["location"]
    number = ticket.rsplit("/", 1)[1]
    plan = {"promised_fix_at": "2026-03-03T18:00", "plan": "swap the PA"}
    saved = console.post_form(ticket, f"/desk/tickets/{number}/plan", plan)
    assert saved.status_code == 303, saved.text
    bad = console.post_form(
        ticket, f"/desk/tickets/{number}/dispatch", {"engineer": "", "sent_at": ""}
    )
    assert bad.status_code == 422 and "Say who is sent on site." in bad.text
    sent = console.post_form(ticket, f"/desk/tickets/{number}/dispatch", {"engineer": "Zhang"})
    assert sent.status_code == 303, sent.text
    # Babel writes a narrow no-break space before AM/PM.
    page = console.get(ticket).text.replace("\u202f", " ")
    assert 'id="promised-fix">Mar 3, 2026, 6:00:00 PM Asia/Shanghai · swap the PA<' in page
    # Sent at 16:00 local, on site within 120 minutes of the report (grade A, 24x7).
    assert (
        'id="dispatch">Zhang · sent Mar 2, 2026, 4:00:00 PM Asia/Shanghai · on site by '
        "Mar 2, 2026, 6:00:00 PM Asia/Shanghai<"
    ) in page
