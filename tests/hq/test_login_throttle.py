"""Login throttling: failed passwords per user name and per address lead to 429 + Retry-After
for a lock-out period, without the password being checked; driven by the manual clock."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hq_server.access import users
from hq_server.access.throttle import LoginThrottle, ThrottlePolicy
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, LoginThrottled
from hq_server.core.settings import Settings
from tests.hq.conftest import HQ, TestClient, start_hq

PASSWORD = "right-password"
WRONG = "Wr0ng-guess-xyzzy"
LOGIN = "/api/v1/auth/token"


def _add_user(hq: HQ, name: str) -> None:
    admin = hq.user_token(Role.ADMIN, "root")
    body = {"username": name, "role": "viewer", "password": PASSWORD}
    assert hq.post(admin, "/api/v1/users", body).status_code == 201


def _login(hq: HQ, name: str, password: str, address: str = "testclient") -> httpx.Response:
    """POST /auth/token from `address` (a client of the running app, without its lifespan)."""
    client = TestClient(hq.client.app, client=(address, 40000))
    response: httpx.Response = client.post(LOGIN, json={"username": name, "password": password})
    return response


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords verify_password was asked about, in order."""
    seen: list[str] = []
    real: Callable[[str, str], bool] = users.verify_password

    def counting(password: str, stored: str) -> bool:
        seen.append(password)
        return real(password, stored)

    monkeypatch.setattr(users, "verify_password", counting)
    return seen


def test_failures_for_a_user_name_lock_it_out_without_checking_the_password(
    hq: HQ, checks: list[str]
) -> None:
    _add_user(hq, "alice")
    # From five addresses: only the user name's count reaches the limit.
    for i in range(5):
        response = _login(hq, "alice", WRONG, f"10.0.0.{i}")
        assert response.status_code == 401, response.text
    assert len(checks) == 5

    refused = _login(hq, "alice", PASSWORD, "10.0.0.99")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "900"
    assert "for this user name" in refused.json()["detail"]
    assert len(checks) == 5  # the right password was not even looked at
    # Other users are not affected, from the same address.
    _add_user(hq, "bob")
    assert _login(hq, "bob", PASSWORD, "10.0.0.99").status_code == 200

    hq.clock.advance(timedelta(minutes=10, milliseconds=500))
    still = _login(hq, "alice", PASSWORD, "10.0.0.99")
    assert (still.status_code, still.headers["Retry-After"]) == (429, "300")
    hq.clock.advance(timedelta(minutes=4, seconds=59, milliseconds=500))
    assert _login(hq, "alice", PASSWORD, "10.0.0.99").status_code == 200


def test_failures_from_one_address_lock_it_out_for_every_user_name(hq: HQ) -> None:
    _add_user(hq, "carol")
    for i in range(5):
        assert _login(hq, f"guess{i}", WRONG, "192.0.2.7").status_code == 401
    refused = _login(hq, "carol", PASSWORD, "192.0.2.7")
    assert refused.status_code == 429
    assert "from this address" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) == 900
    assert _login(hq, "carol", PASSWORD, "192.0.2.8").status_code == 200
    hq.clock.advance(timedelta(minutes=15))
    assert _login(hq, "carol", PASSWORD, "192.0.2.7").status_code == 200


def test_a_successful_login_resets_the_user_names_count(hq: HQ) -> None:
    _add_user(hq, "dave")
    for i in range(4):
        assert _login(hq, "dave", WRONG, f"198.51.100.{i}").status_code == 401
    assert _login(hq, "dave", PASSWORD, "198.51.100.50").status_code == 200
    for i in range(4):
        assert _login(hq, "dave", WRONG, f"198.51.100.{10 + i}").status_code == 401
    # Without the reset this would be the 9th failure in the window and refused.
    assert _login(hq, "dave", PASSWORD, "198.51.100.51").status_code == 200
    for i in range(5):
        assert _login(hq, "dave", WRONG, f"198.51.100.{20 + i}").status_code == 401
    assert _login(hq, "dave", PASSWORD, "198.51.100.52").status_code == 429


def test_failures_outside_the_window_are_forgotten(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    overrides: dict[str, Any] = {
        "login_max_failures": 2,
        "login_failure_window": timedelta(minutes=2),
        "login_lockout": timedelta(seconds=60),
    }
    with start_hq(migrated_url, clock, tmp_path, **overrides) as hq:
        _add_user(hq, "erin")
        assert _login(hq, "erin", WRONG).status_code == 401
        clock.advance(timedelta(minutes=2))
        assert _login(hq, "erin", WRONG).status_code == 401  # the first one is forgotten
        clock.advance(timedelta(minutes=1, seconds=59))
        assert _login(hq, "erin", WRONG).status_code == 401  # two within 2 minutes: locked
        refused = _login(hq, "erin", PASSWORD)
        assert (refused.status_code, refused.headers["Retry-After"]) == (429, "60")
        clock.advance(timedelta(seconds=60))
        assert _login(hq, "erin", PASSWORD).status_code == 200


def test_failed_and_throttled_logins_are_audited_without_the_password(
    hq: HQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _add_user(hq, "frank")
    for _ in range(5):
        assert _login(hq, "frank", WRONG).status_code == 401
    assert _login(hq, "frank", WRONG).status_code == 429
    hq.clock.advance(timedelta(minutes=15))
    assert _login(hq, "frank", PASSWORD).status_code == 200

    admin = hq.user_token(Role.ADMIN)
    rows = hq.get(admin, "/api/v1/audit", path_prefix=LOGIN).json()
    assert [(r["actor"], r["status"]) for r in rows] == [
        ("frank", 200),
        ("frank", 429),
        *[("frank", 401)] * 5,
    ]
    assert rows[0]["summary"] == "log in as viewer"
    assert "password not checked" in rows[1]["summary"]
    assert "from this address" in rows[1]["summary"] and rows[1]["client"] == "testclient"
    assert rows[2]["summary"] == "login failed: unknown user or wrong password"
    everything = json.dumps(rows) + caplog.text
    assert "locked until" in caplog.text  # the lock-out is logged, by key
    assert WRONG not in everything and PASSWORD not in everything


def test_the_schema_documents_429_with_retry_after(hq: HQ) -> None:
    operation = hq.client.get("/openapi.json").json()["paths"][LOGIN]["post"]
    answer = operation["responses"]["429"]
    assert answer["headers"]["Retry-After"]["required"] is True
    assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
    assert answer["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "STATIONWATCH_LOGIN_MAX_FAILURES": "3",
            "STATIONWATCH_LOGIN_FAILURE_WINDOW": "120",
            "STATIONWATCH_LOGIN_LOCKOUT": "3600",
        }
    )
    assert settings.login_max_failures == 3
    assert settings.login_failure_window == timedelta(minutes=2)
    assert settings.login_lockout == timedelta(hours=1)
    defaults = Settings()
    assert (defaults.login_max_failures, defaults.login_lockout) == (5, timedelta(minutes=15))
    with pytest.raises(ValueError, match="greater than"):
        Settings(login_lockout=timedelta(0))


# ---- the throttle itself ------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(max_failures=2, window=timedelta(minutes=15), lockout=timedelta(minutes=5))


@contextmanager
def _failing(throttle: LoginThrottle, name: str, client: str | None) -> Iterator[None]:
    with pytest.raises(AuthError), throttle.attempt(name, client, T0):
        yield
        raise AuthError("wrong password")


def test_logins_in_progress_count_against_the_limit() -> None:
    """Parallel requests cannot get more passwords checked than the limit allows."""
    throttle = LoginThrottle(POLICY)
    with ExitStack() as in_progress:
        in_progress.enter_context(throttle.attempt("gina", "a1", T0))
        in_progress.enter_context(throttle.attempt("gina", "a2", T0))
        with pytest.raises(LoginThrottled) as excinfo, throttle.attempt("gina", "a3", T0):
            pass
        assert excinfo.value.retry_after_s == 1
        # Both end as successes: nothing was counted.
    with throttle.attempt("gina", "a3", T0):
        pass
    assert throttle.tracked() == 0


def test_other_errors_do_not_count_as_failures() -> None:
    throttle = LoginThrottle(POLICY)
    for _ in range(3):
        with pytest.raises(OSError), throttle.attempt("hank", "a1", T0):
            raise OSError("database down")
    with throttle.attempt("hank", "a1", T0):
        pass
    for _ in range(2):
        with _failing(throttle, "hank", None):
            pass
    with pytest.raises(LoginThrottled), throttle.attempt("hank", "a1", T0):
        pass


def test_memory_is_bounded_under_a_flood_of_user_names() -> None:
    throttle = LoginThrottle(POLICY, max_keys=10)
    for i in range(100):
        with _failing(throttle, f"made-up-{i}", None):
            pass
    assert throttle.tracked() <= 10
