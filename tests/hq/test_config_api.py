"""Calendars and site calendars through the API; the OpenAPI schema of the new endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from hq_server.core.domain import Role
from tests.hq.conftest import HQ

CAL = {
    "name": "shanghai office",
    "timezone": "Asia/Shanghai",
    "hours": {"mon": [{"start": "08:30", "end": "17:30"}]},
    "holidays": ["2026-10-01"],
}


def test_calendar_crud_and_site_assignment(hq: HQ) -> None:
    admin, viewer = hq.user_token(Role.ADMIN), hq.user_token(Role.VIEWER)
    hq.enroll("north")
    site_id = hq.get(admin, "/api/v1/sites").json()[0]["id"]
    response = hq.post(admin, "/api/v1/calendars", CAL)
    assert response.status_code == 201, response.text
    cal = response.json()
    assert cal["hours"] == {"mon": [["08:30", "17:30"]]}
    assert cal["holidays"] == ["2026-10-01"]
    assert hq.post(admin, "/api/v1/calendars", CAL).status_code == 409
    assert hq.post(viewer, "/api/v1/calendars", {**CAL, "name": "x"}).status_code == 403
    assert hq.get(viewer, f"/api/v1/calendars/{cal['id']}").json()["name"] == "shanghai office"

    path = f"/api/v1/sites/{site_id}/calendar"
    site = hq.call("PUT", admin, path, {"calendar_id": cal["id"]}).json()
    assert site["calendar_id"] == cal["id"]
    assert hq.call("PUT", admin, path, {"calendar_id": 999}).status_code == 404
    assert (
        hq.call("PUT", admin, "/api/v1/sites/999/calendar", {"calendar_id": None}).status_code
        == 404
    )
    # In use: cannot be deleted; after unassigning it can.
    assert hq.call("DELETE", admin, f"/api/v1/calendars/{cal['id']}").status_code == 409
    hq.call("PUT", admin, path, {"calendar_id": None})
    assert hq.call("DELETE", admin, f"/api/v1/calendars/{cal['id']}").status_code == 204
    assert hq.get(admin, f"/api/v1/calendars/{cal['id']}").status_code == 404
    audit = hq.get(admin, "/api/v1/audit", path_prefix="/api/v1/calendars").json()
    assert [(a["method"], a["status"]) for a in audit] == [
        ("DELETE", 204),
        ("DELETE", 409),
        ("POST", 403),
        ("POST", 409),
        ("POST", 201),
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"timezone": "Nowhere/Land"},
        {"hours": {"mon": [{"start": "18:00", "end": "09:00"}]}},
        {"hours": {"mon": [{"start": "25:00", "end": "26:00"}]}},
        {"hours": {"someday": [{"start": "08:00", "end": "09:00"}]}},
        {"hours": {}},
        {"holidays": ["not-a-date"]},
        {"name": ""},
        {"extra": 1},
    ],
)
def test_bad_calendars_are_422(hq: HQ, change: dict[str, Any]) -> None:
    admin = hq.user_token(Role.ADMIN)
    response = hq.post(admin, "/api/v1/calendars", {**CAL, **change})
    assert response.status_code == 422, response.text


def test_always_open_calendar_needs_no_hours(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    body = {"name": "24x7", "timezone": "UTC", "always_open": True}
    assert hq.post(admin, "/api/v1/calendars", body).status_code == 201


def test_openapi_documents_every_new_route_with_models_and_errors(hq: HQ) -> None:
    spec = hq.client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/v1/auth/token": ["post"],
        "/api/v1/users": ["get", "post"],
        "/api/v1/users/{user_id}": ["patch"],
        "/api/v1/audit": ["get"],
        "/api/v1/tickets/{ticket_id}/acknowledge": ["post"],
        "/api/v1/tickets/{ticket_id}/assign": ["post"],
        "/api/v1/tickets/{ticket_id}/comment": ["post"],
        "/api/v1/tickets/{ticket_id}/status": ["post"],
        "/api/v1/tickets/{ticket_id}/resolve": ["post"],
        "/api/v1/tickets/{ticket_id}/close": ["post"],
        "/api/v1/tickets/{ticket_id}/reopen": ["post"],
        "/api/v1/calendars": ["get", "post"],
        "/api/v1/calendars/{calendar_id}": ["get", "put", "delete"],
        "/api/v1/sites/{site_id}/calendar": ["put"],
        "/api/v1/escalation-chains": ["get", "post"],
        "/api/v1/escalation-chains/{chain_id}": ["get", "put", "delete"],
        "/api/v1/maintenance-windows": ["get", "post"],
        "/api/v1/maintenance-windows/{window_id}": ["get", "put", "delete"],
    }
    for path, methods in expected.items():
        for method in methods:
            op = paths[path][method]
            codes = set(op["responses"])
            success = next(c for c in codes if c.startswith("2"))
            if success != "204":
                assert "$ref" in str(op["responses"][success]["content"]), (path, method)
            if path != "/api/v1/auth/token":
                assert {"401", "403"} <= codes, (path, method)
            if "{" in path:
                assert "404" in codes, (path, method)
    for action in ("acknowledge", "resolve", "reopen"):
        assert "409" in paths[f"/api/v1/tickets/{{ticket_id}}/{action}"]["post"]["responses"]


def test_hostile_input_gets_4xx_not_500(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    nul = hq.post(None, "/api/v1/auth/token", {"username": "a\x00b", "password": "x\x00"})
    assert nul.status_code in (401, 422)  # PostgreSQL refuses NUL in text: 422
    created = hq.post(admin, "/api/v1/calendars", {**CAL, "name": "nul\x00name"})
    assert created.status_code in (201, 422)
    for path in ("/api/v1/tickets/99999999999999999999", "/api/v1/calendars/0"):
        assert hq.get(admin, path).status_code == 422
    huge = hq.post(admin, "/api/v1/tickets/9223372036854775808/acknowledge")
    assert huge.status_code == 422
    window = {
        "starts_at": "0001-01-01T00:00:00+14:00",
        "ends_at": "9999-12-31T23:59:59-14:00",
        "reason": "r",
    }
    assert hq.post(admin, "/api/v1/maintenance-windows", window).status_code == 422
    assert hq.get(admin, "/api/v1/audit", since="0001-01-01T00:00:00+05:00").status_code == 422


def test_sites_and_devices(hq: HQ) -> None:
    agent, viewer = hq.enroll("north"), hq.user_token()
    body = {
        "agent_version": "1",
        "sent_at": hq.clock.now().isoformat(),
        "outbox_depth": 0,
        "dropped_events": 0,
        "last_seq": 0,
        "devices": {"tx1": "ok", "ups": "unreachable"},
    }
    headers = {"Authorization": f"Bearer {agent}"}
    assert hq.client.post("/api/v1/heartbeat", json=body, headers=headers).status_code == 200
    hq.post_events(agent, [hq.event(device_id="tx1")])
    devices = hq.get(viewer, "/api/v1/devices", site="north").json()
    assert [(d["device_id"], d["state"], d["active_alarms"]) for d in devices] == [
        ("tx1", "ok", 1),
        ("ups", "unreachable", 0),
    ]
    assert devices[0]["device_class"] == "transmitter"
    assert hq.get(viewer, "/api/v1/devices", site="south").json() == []
    site_id = hq.get(viewer, "/api/v1/sites").json()[0]["id"]
    assert hq.get(viewer, f"/api/v1/sites/{site_id}").json()["name"] == "north"
    assert hq.get(viewer, "/api/v1/sites/424242").status_code == 404
