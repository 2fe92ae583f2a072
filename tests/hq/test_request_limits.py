"""What a caller without a token, a careless user or a hostile body can make HQ do (issue 11):
authentication before the body, small bodies without a token, bounded JSON, no lone surrogates,
no submitted secrets echoed, parameters named in errors, forwarded addresses from trusted
proxies only, audit rows that always store. On SQLite and PostgreSQL, through the real app."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.store.models import AuditEntry
from tests.hq.conftest import HQ, TestClient, start_hq

SECRET = "Sup3r-secret-passw0rd"
JSON = {"Content-Type": "application/json"}
GZIP_JSON = {**JSON, "Content-Encoding": "gzip"}
# Routes with a body, by who may call them: (method, path).
AGENT_ROUTES = [("POST", "/api/v1/events"), ("POST", "/api/v1/heartbeat")]
USER_ROUTES = [
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/tickets/1/comment"),
    ("PUT", "/api/v1/calendars/1"),
]
ANONYMOUS_ROUTES = [("POST", "/api/v1/auth/token"), ("POST", "/api/v1/enroll")]


def _send(
    hq: HQ, method: str, path: str, raw: bytes, token: str | None = None, **headers: str
) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response: httpx.Response = hq.client.request(method, path, content=raw, headers=headers)
    return response


def _nested_lists(count: int) -> bytes:
    return b"[" + b"[]," * count + b"[]]"


# ---- item 2: authentication before the body -------------------------------------------------


@pytest.mark.parametrize(("method", "path"), AGENT_ROUTES + USER_ROUTES)
def test_a_call_without_a_token_is_refused_before_its_body_is_read(
    hq: HQ, method: str, path: str
) -> None:
    # A body HQ would refuse as unreadable (400) or too large (413) if it read it first.
    broken = _send(hq, method, path, b"not gzip at all", **GZIP_JSON)
    assert broken.status_code == 401, broken.text
    assert broken.json() == {"detail": "missing bearer token (Authorization: Bearer ...)"}
    assert broken.headers["WWW-Authenticate"] == "Bearer"
    bomb = gzip.compress(_nested_lists(1_000_000))  # 3 MB inflated, over the 1 MiB test limit
    assert _send(hq, method, path, bomb, **GZIP_JSON).status_code == 401
    wrong = _send(hq, method, path, bomb, token="swu_" + "x" * 43, **GZIP_JSON)
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "unknown or revoked API token"}


def test_a_token_of_the_wrong_kind_or_role_is_refused_before_the_body(hq: HQ) -> None:
    viewer = hq.user_token(Role.VIEWER, "watcher")
    agent = hq.enroll()
    for token, (method, path) in [(viewer, USER_ROUTES[0]), (agent, USER_ROUTES[1])]:
        response = _send(hq, method, path, b"not gzip", token=token, **GZIP_JSON)
        assert response.status_code == 403, response.text
    refused = _send(hq, "POST", "/api/v1/events", b"not gzip", token=viewer, **GZIP_JSON)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "only agent tokens may call agent endpoints"}
    # The audit log still knows who was refused.
    with hq.db.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.status == 403)).all()
    assert {(r.actor, r.role, r.path) for r in rows} >= {("watcher", "viewer", "/api/v1/users")}


def test_a_token_holder_still_gets_the_body_errors(hq: HQ) -> None:
    agent = hq.enroll()
    assert _send(hq, "POST", "/api/v1/events", b"x", token=agent, **GZIP_JSON).status_code == 400
    raw = json.dumps({"events": [hq.event()]}).encode()
    ok = _send(hq, "POST", "/api/v1/events", gzip.compress(raw), token=agent, **GZIP_JSON)
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(("method", "path"), ANONYMOUS_ROUTES)
def test_calls_without_a_token_may_send_a_few_kib_only(hq: HQ, method: str, path: str) -> None:
    filler = {"username": "x", "password": "y" * 9000}
    plain = _send(hq, method, path, json.dumps(filler).encode(), **JSON)
    assert plain.status_code == 413, plain.text
    assert plain.json() == {
        "detail": "request body larger than 8192 bytes (setting max_anonymous_body_bytes)"
    }
    # Compressed small, inflated past the limit: refused while inflating.
    bomb = gzip.compress(_nested_lists(100_000))
    assert len(bomb) < 8192
    assert _send(hq, method, path, bomb, **GZIP_JSON).status_code == 413


def test_an_ordinary_login_and_enrollment_fit_the_small_limit(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    body = {"username": "carol", "role": "viewer", "password": SECRET}
    assert hq.post(admin, "/api/v1/users", body).status_code == 201
    login = hq.post(None, "/api/v1/auth/token", {"username": "carol", "password": SECRET})
    assert login.status_code == 200, login.text
    assert hq.enroll().startswith("swa_")


# ---- item 2: bounded JSON -----------------------------------------------------------------


@pytest.fixture
def tight(migrated_url: str, clock: ManualClock, tmp_path: Path) -> Any:
    """HQ with small JSON bounds."""
    with start_hq(migrated_url, clock, tmp_path, max_json_items=1000, max_json_depth=8) as h:
        yield h


def test_a_json_body_with_too_many_values_is_refused_before_parsing(tight: HQ) -> None:
    agent = tight.enroll()
    raw = gzip.compress(json.dumps({"events": [[] for _ in range(1000)]}).encode())
    response = _send(tight, "POST", "/api/v1/events", raw, token=agent, **GZIP_JSON)
    assert response.status_code == 413
    assert response.json() == {
        "detail": "JSON body holds more than 1000 values (setting max_json_items)"
    }


def test_a_json_body_nested_too_deep_is_refused(tight: HQ) -> None:
    agent = tight.enroll()
    raw = b'{"events": ' + b"[" * 8 + b"]" * 8 + b"}"
    response = _send(tight, "POST", "/api/v1/events", raw, token=agent, **JSON)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "JSON body nested deeper than 8 levels (setting max_json_depth)"
    }


def test_a_body_that_is_not_utf8_is_refused(hq: HQ) -> None:
    response = _send(hq, "POST", "/api/v1/auth/token", b'{"username": "\xff"}', **JSON)
    assert response.status_code == 400
    assert "not UTF-8" in response.json()["detail"]


# ---- item 7: lone surrogates, no echo of submitted values ---------------------------------


def _ticket(hq: HQ) -> int:
    agent = hq.enroll()
    assert hq.post_events(agent, [hq.event()]).status_code == 200
    viewer = hq.user_token(Role.VIEWER)
    ticket_id: int = hq.tickets(viewer)[0]["id"]
    return ticket_id


@pytest.mark.parametrize("where", ["login", "enroll", "comment"])
def test_a_lone_surrogate_in_a_body_is_a_422_naming_the_field(hq: HQ, where: str) -> None:
    token: str | None = None
    if where == "login":
        path, body = "/api/v1/auth/token", '{"username": "bob", "password": "pw\\ud800"}'
        field = "password"
    elif where == "enroll":
        path = "/api/v1/enroll"
        body = json.dumps({"enrollment_token": hq.enrollment_token(), "agent_version": "1"})
        body = body[:-1] + ', "hostname": "box\\udc00"}'
        field = "hostname"
    else:
        path = f"/api/v1/tickets/{_ticket(hq)}/comment"
        body, field = '{"seen": "fan \\ud83d", "done": "replaced"}', "seen"
        token = hq.user_token(Role.ENGINEER)
    response = _send(hq, "POST", path, body.encode(), token=token, **JSON)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", field]
    assert error["type"] == "string_unicode"
    assert "is half of a UTF-16 pair" in error["msg"]


def test_validation_errors_never_echo_submitted_values(hq: HQ) -> None:
    admin = hq.user_token(Role.ADMIN)
    made = hq.call(
        "POST",
        admin,
        "/api/v1/users",
        {"username": "mallory", "role": "viewer", "password": "Tr0ub4dor&3-horse"},
    )
    assert made.status_code == 201, made.text
    user_id = made.json()["id"]
    cases: list[tuple[str, str, str | None, Any]] = [
        ("POST", "/api/v1/auth/token", None, {"password": SECRET}),  # username missing
        ("POST", "/api/v1/auth/token", None, {"username": ["a"], "password": SECRET}),
        ("POST", "/api/v1/auth/token", None, [SECRET]),
        ("POST", "/api/v1/enroll", None, {"enrollment_token": SECRET, "hostname": 5}),
        ("POST", "/api/v1/users", admin, {"username": "eve", "role": "x", "password": SECRET}),
        ("POST", "/api/v1/users", admin, {"username": "eve", "role": "viewer", "password": "s3c"}),
        ("PATCH", f"/api/v1/users/{user_id}", admin, {"password": "s3c"}),
    ]
    for method, path, token, body in cases:
        response = hq.call(method, token, path, body)
        assert response.status_code == 422, (path, response.text)
        assert SECRET not in response.text and '"s3c"' not in response.text, response.text
        for error in response.json()["detail"]:
            assert "input" not in error
            assert error["loc"][0] == "body"


def test_query_and_path_errors_keep_fastapis_shape_with_the_value(hq: HQ) -> None:
    viewer = hq.user_token(Role.VIEWER)
    response = hq.get(viewer, "/api/v1/tickets", limit="abc")
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "limit"]
    assert error["input"] == "abc"
    path = hq.get(viewer, "/api/v1/tickets/0")
    assert path.json()["detail"][0]["loc"] == ["path", "ticket_id"]


def test_a_wrong_body_reports_a_bounded_number_of_errors(hq: HQ) -> None:
    agent = hq.enroll()
    # Not /events: HQ judges each event on its own there. 200 device ids a heartbeat refuses.
    body = {"devices": {f"bad id {i}": "ok" for i in range(200)}}
    raw = gzip.compress(json.dumps(body).encode())
    response = _send(hq, "POST", "/api/v1/heartbeat", raw, token=agent, **GZIP_JSON)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert len(detail) == 51
    assert detail[-1]["type"] == "too_many_errors"


# ---- careless user: query parameters are named ---------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/tickets?site=a%00b", "site"),
        ("/api/v1/tickets?q=%00", "q"),
        ("/api/v1/alarms?site=%00", "site"),
        ("/api/v1/audit?actor=x%00", "actor"),
        ("/api/v1/jobs?site=%00", "site"),
    ],
)
def test_a_bad_query_parameter_is_reported_as_that_parameter(hq: HQ, path: str, name: str) -> None:
    admin = hq.user_token(Role.ADMIN)
    response = hq.client.get(path, headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", name]
    assert error["msg"] == "must not contain a NUL character"


# ---- item 8: forwarded addresses and audit rows --------------------------------------------


def _client_from(hq: HQ, address: str) -> TestClient:
    return TestClient(hq.client.app, client=(address, 40000))


def _login_fails(client: TestClient, name: str, forwarded: str) -> int:
    response = client.post(
        "/api/v1/auth/token",
        json={"username": name, "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded},
    )
    return response.status_code


def _audit_clients(hq: HQ) -> list[str]:
    with hq.db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [row.client for row in rows]


def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    with start_hq(migrated_url, clock, tmp_path, trusted_proxies=("127.0.0.1",)) as hq:
        proxy = _client_from(hq, "127.0.0.1")
        # Five different forwarded clients: none reaches the per-address limit of five.
        for i in range(5):
            assert _login_fails(proxy, f"user{i}", f"203.0.113.{i}") == 401
        assert _audit_clients(hq) == [f"203.0.113.{i}" for i in range(5)]
        # The same forwarded client five times is locked out, as an address.
        statuses = [_login_fails(proxy, f"other{i}", "198.51.100.7") for i in range(6)]
        assert statuses == [401] * 5 + [429]
        # A peer that is not a trusted proxy is counted under its own address.
        stranger = _client_from(hq, "192.0.2.50")
        assert _login_fails(stranger, "x", "203.0.113.99") == 401
        assert _audit_clients(hq)[-1] == "192.0.2.50"


def test_forwarded_for_is_ignored_without_trusted_proxies(hq: HQ) -> None:
    local = _client_from(hq, "127.0.0.1")
    statuses = [_login_fails(local, f"user{i}", f"203.0.113.{i}") for i in range(6)]
    assert statuses == [401] * 5 + [429]
    assert set(_audit_clients(hq)) == {"127.0.0.1"}


def test_an_audit_row_with_a_nul_is_stored_cleaned_not_dropped(hq: HQ) -> None:
    # A user name with a NUL: refused by PostgreSQL in the login query itself (422), by the
    # password check on SQLite (401); either way the attempt leaves its row.
    response = hq.post(None, "/api/v1/auth/token", {"username": "ad\x00min", "password": "x"})
    assert response.status_code in (401, 422), response.text
    admin = hq.user_token(Role.ADMIN)
    assert hq.call("PATCH", admin, "/api/v1/users/%00", {"disabled": True}).status_code == 422
    with hq.db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(r.actor, r.path) for r in rows] == [
        ("ad\ufffdmin", "/api/v1/auth/token"),
        ("test", "/api/v1/users/\ufffd"),
    ]
    assert rows[1].target_ids == {"user_id": "\ufffd"}


def _login_fails_with(client: TestClient, name: str, headers: list[tuple[str, str]]) -> int:
    response = client.post(
        "/api/v1/auth/token",
        json={"username": name, "password": "wrong-password"},
        headers=httpx.Headers(headers),
    )
    return response.status_code


def test_x_real_ip_and_its_precedence_from_a_trusted_proxy(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """From a trusted proxy: X-Forwarded-For names the client when present, X-Real-IP only
    without it, and X-Real-IP sent twice (a client's own passed on beside the proxy's) names
    nobody. The throttle counts by that address and the audit row records it."""
    with start_hq(migrated_url, clock, tmp_path, trusted_proxies=("127.0.0.1",)) as hq:
        proxy = _client_from(hq, "127.0.0.1")
        for i in range(5):  # five clients named by X-Real-IP: none is locked out
            assert _login_fails_with(proxy, f"u{i}", [("X-Real-IP", f"203.0.113.{i}")]) == 401
        both = [("X-Forwarded-For", "198.51.100.7"), ("X-Real-IP", "203.0.113.50")]
        assert _login_fails_with(proxy, "both", both) == 401
        twice = [("X-Real-IP", "203.0.113.60"), ("X-Real-IP", "203.0.113.61")]
        assert _login_fails_with(proxy, "twice", twice) == 401
        assert _audit_clients(hq) == [
            *(f"203.0.113.{i}" for i in range(5)),
            "198.51.100.7",
            "127.0.0.1",
        ]
        # One client named by X-Real-IP five times is locked out as an address.
        named = [("X-Real-IP", "203.0.113.70")]
        statuses = [_login_fails_with(proxy, f"v{i}", named) for i in range(6)]
        assert statuses == [401] * 5 + [429]


def test_x_real_ip_from_a_peer_that_is_no_trusted_proxy_is_ignored(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    """Neither header moves a peer that is not a configured proxy to another address: the
    throttle locks the peer itself out, the audit log records the peer."""
    with start_hq(migrated_url, clock, tmp_path, trusted_proxies=("10.0.0.0/8",)) as hq:
        stranger = _client_from(hq, "192.0.2.50")
        statuses = [
            _login_fails_with(
                stranger,
                f"u{i}",
                [("X-Real-IP", f"203.0.113.{i}"), ("X-Forwarded-For", f"198.51.100.{i}")],
            )
            for i in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        assert set(_audit_clients(hq)) == {"192.0.2.50"}
