"""Maintenance windows in the console, in-process on SQLite and PostgreSQL: a window that ends
before it starts is shown next to its field and nothing is saved; times are typed in the site's
zone; only admins plan (others see no form, and a forged POST is refused)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from hq_server.core.domain import Role
from hq_server.sites.registry import ensure_site
from hq_server.store.models import MaintenanceWindow
from tests.web.console import Console


def _windows(console: Console) -> list[MaintenanceWindow]:
    with console.hq.db.session() as session:
        return list(session.scalars(select(MaintenanceWindow)))


def test_plan_a_window_with_errors_next_to_fields(console: Console) -> None:
    hq = console.hq
    with hq.db.writer() as session, session.begin():
        ensure_site(session, "beijing", hq.clock.now(), timezone="Asia/Shanghai")
    console.as_user("ada", Role.ADMIN)
    fields = {
        "site": "beijing",
        "starts_at": "2026-03-03T10:00",
        "ends_at": "2026-03-03T09:00",
        "reason": "replace the UPS batteries",
    }
    backwards = console.post_form("/maintenance", "/maintenance", fields)
    assert backwards.status_code == 422
    assert 'id="e-ends_at"' in backwards.text and 'aria-invalid="true"' in backwards.text
    assert "replace the UPS batteries" in backwards.text  # what was typed stays
    assert _windows(console) == []
    unknown = console.post_form("/maintenance", "/maintenance", fields | {"site": "nowhere"})
    assert unknown.status_code == 422 and 'id="e-site"' in unknown.text
    no_reason = console.post_form(
        "/maintenance", "/maintenance", fields | {"ends_at": "2026-03-03T12:00", "reason": ""}
    )
    assert no_reason.status_code == 422 and 'id="e-reason"' in no_reason.text
    assert _windows(console) == []

    good = console.post_form(
        "/maintenance", "/maintenance", fields | {"ends_at": "2026-03-03T12:00"}
    )
    assert good.status_code == 303
    [window] = _windows(console)
    # Typed in Beijing time (UTC+8).
    assert window.starts_at.astimezone(UTC) == datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
    listed = console.get("/maintenance").text
    assert "Asia/Shanghai" in listed and "replace the UPS batteries" in listed


def test_only_admins_plan_windows(console: Console) -> None:
    console.as_user("erin", Role.ENGINEER)
    page = console.get("/maintenance")
    assert page.status_code == 200 and 'action="/maintenance"' not in page.text
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    forged = console.client.post(
        "/maintenance",
        data={
            "csrf_token": token,
            "starts_at": "2026-03-03T10:00",
            "ends_at": "2026-03-03T12:00",
            "reason": "x",
        },
        follow_redirects=False,
    )
    assert forged.status_code == 403 and _windows(console) == []
