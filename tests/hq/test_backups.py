"""Config backups through the real app: versions, dedup, diff, hash check, secret refusal."""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from hq_server.core.domain import Role
from hq_server.jobs.secret_check import SCRUB_MARKER, unscrubbed_lines
from hq_server.store.models import ConfigBackupRecord
from tests.hq.conftest import HQ
from tests.hq.test_jobs import auth, site_id
from tests.secret_lines import SECRET_LINES

CONFIG_V1 = """\
hostname sw1
enable secret <removed>
username admin privilege 15 secret <removed>
snmp-server community <removed> RO
interface Gi0/1
 description uplink
"""
CONFIG_V2 = CONFIG_V1.replace("description uplink", "description uplink to ISP\n shutdown")


def backup(text: str, device_id: str = "sw1", **changes: Any) -> dict[str, Any]:
    """A ConfigBackup as JSON, with the right sha256 unless given."""
    body = {
        "device_id": device_id,
        "taken_at": datetime(2026, 3, 2, 7, 59, tzinfo=UTC).isoformat(),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "text": text,
    }
    body.update(changes)
    return body


def upload(hq: HQ, token: str, body: dict[str, Any], *, compress: bool = False) -> httpx.Response:
    """POST a backup as an agent (gzip like the uplink when asked)."""
    raw = json.dumps(body).encode()
    headers = {**auth(token), "Content-Type": "application/json"}
    if compress:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    response: httpx.Response = hq.client.post("/api/v1/backups", content=raw, headers=headers)
    return response


def test_versions_are_stored_only_when_the_text_changes(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    viewer = hq.user_token()
    job_id = str(uuid.uuid4())

    first = upload(hq, agent, backup(CONFIG_V1, job_id=job_id), compress=True)
    assert first.status_code == 200, first.text
    assert first.json() == {"version": 1, "changed": False}
    # The same text again (a retry, or the next daily backup): nothing new.
    assert upload(hq, agent, backup(CONFIG_V1)).json() == {"version": 1, "changed": False}
    assert upload(hq, agent, backup(CONFIG_V2)).json() == {"version": 2, "changed": True}
    assert upload(hq, agent, backup(CONFIG_V2), compress=True).json() == {
        "version": 2,
        "changed": False,
    }
    # Back to the first text: a change too.
    assert upload(hq, agent, backup(CONFIG_V1)).json() == {"version": 3, "changed": True}
    # Another device has its own versions.
    assert upload(hq, agent, backup(CONFIG_V1, "sw2")).json() == {"version": 1, "changed": False}

    base = f"/api/v1/sites/{site}/devices/sw1/backups"
    versions = hq.get(viewer, base).json()
    assert [(v["version"], v["changed"]) for v in versions] == [(3, True), (2, True), (1, False)]
    assert "text" not in versions[0]
    assert versions[2]["job_id"] == job_id
    assert versions[2]["size"] == len(CONFIG_V1.encode())

    one = hq.get(viewer, f"{base}/2")
    assert one.status_code == 200
    assert one.json()["text"] == CONFIG_V2
    assert one.json()["sha256"] == hashlib.sha256(CONFIG_V2.encode()).hexdigest()
    assert hq.get(viewer, f"{base}/9").status_code == 404
    assert hq.get(viewer, f"/api/v1/sites/{site}/devices/nope/backups").json() == []
    assert hq.get(viewer, "/api/v1/sites/999/devices/sw1/backups").status_code == 404


def test_diff_defaults_to_previous_against_latest(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    viewer = hq.user_token()
    base = f"/api/v1/sites/{site}/devices/sw1/backups"
    assert hq.get(viewer, f"{base}/diff").status_code == 404
    upload(hq, agent, backup(CONFIG_V1))
    only = hq.get(viewer, f"{base}/diff").json()
    assert (only["from_version"], only["to_version"], only["diff"]) == (1, 1, "")
    upload(hq, agent, backup(CONFIG_V2))

    diff = hq.get(viewer, f"{base}/diff").json()
    assert (diff["from_version"], diff["to_version"]) == (1, 2)
    assert (diff["added"], diff["removed"]) == (2, 1)
    assert diff["diff"].startswith("--- sw1 v1\n+++ sw1 v2\n")
    assert "- description uplink\n" in diff["diff"]
    assert "+ description uplink to ISP\n+ shutdown\n" in diff["diff"]

    backwards = hq.get(viewer, f"{base}/diff", **{"from": 2, "to": 1}).json()
    assert (backwards["added"], backwards["removed"]) == (1, 2)
    assert hq.get(viewer, f"{base}/diff", **{"from": 1, "to": 7}).status_code == 404
    assert hq.get(viewer, f"{base}/diff", **{"from": 0}).status_code == 422


def test_a_wrong_sha256_is_refused(hq: HQ) -> None:
    agent = hq.enroll()
    response = upload(hq, agent, backup(CONFIG_V1, sha256="0" * 64))
    assert response.status_code == 400
    assert "does not match" in response.json()["detail"]
    assert upload(hq, agent, backup(CONFIG_V1, sha256="XYZ")).status_code == 422


def test_unscrubbed_secrets_are_refused_without_echoing_them(hq: HQ) -> None:
    agent = hq.enroll()
    leaky = CONFIG_V1 + "line vty 0 4\n password 0 Tr0ub4dor&3\n"
    response = upload(hq, agent, backup(leaky))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "line(s) 8" in detail
    assert SCRUB_MARKER in detail
    assert "Tr0ub4dor" not in detail
    scrubbed = leaky.replace("password 0 Tr0ub4dor&3", f"password 0 {SCRUB_MARKER}")
    assert upload(hq, agent, backup(scrubbed)).status_code == 200


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("enable password cisco", "cisco"),
        ("enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0", "$1$mERr$hx5rVt7rPNoS4wqbXKX7m0"),
        ("username admin password 0 letmein", "letmein"),
        (" password 7 0822455D0A16", "0822455D0A16"),
        ("snmp-server community public RO", "public"),
        ("snmp-agent community read cipher %^%#abc%^%#", "%^%#abc%^%#"),
        (" local-user admin password simple Admin@123", "Admin@123"),
        ("tacacs-server host 10.0.0.1 key s3cret", "s3cret"),
        ("radius-server key 7 1234ABCD", "1234ABCD"),
        (" pre-shared-key 0 mypsk", "mypsk"),
        ("crypto isakmp key abc123 address 0.0.0.0", "abc123"),
        ("-----BEGIN RSA PRIVATE KEY-----MIIEow-----END RSA PRIVATE KEY-----", "MIIEow"),
    ],
)
def test_secret_patterns(line: str, secret: str) -> None:
    """Flagged in clear; accepted once the secret itself (not the line's end) is the marker."""
    assert unscrubbed_lines(f"hostname x\n{line}\n") == [2]
    assert unscrubbed_lines(f"hostname x\n{line.replace(secret, SCRUB_MARKER)}\n") == []
    # A marker somewhere on the line excuses nothing: the secret is still there.
    assert unscrubbed_lines(f"hostname x\n{line} {SCRUB_MARKER}\n") == [2]


@pytest.mark.parametrize(
    "line",
    [
        "service password-encryption",
        "security passwords min-length 8",
        "no password",
        "password-policy strong",
        "crypto key generate rsa modulus 2048",
        " description password reset desk",
        "aaa authentication login default local",
    ],
)
def test_lines_that_are_not_secrets(line: str) -> None:
    assert unscrubbed_lines(line) == []


def stored_versions(hq: HQ) -> int:
    """How many config versions the database holds, of every device."""
    with hq.db.session() as session:
        return session.scalar(select(func.count()).select_from(ConfigBackupRecord)) or 0


def test_a_backup_with_any_secret_line_is_refused_and_nothing_is_stored(hq: HQ) -> None:
    """Every secret line of the table, in clear: 422 naming line numbers only; not stored.
    The same lines as the agent scrubs them are accepted."""
    agent = hq.enroll()
    assert upload(hq, agent, backup(CONFIG_V1)).status_code == 200
    before = stored_versions(hq)
    assert before == 1
    raw = CONFIG_V1 + "".join(f"{line.raw}\n" for line in SECRET_LINES)
    response = upload(hq, agent, backup(raw), compress=True)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    first = CONFIG_V1.count("\n") + 1
    assert f"line(s) {', '.join(str(n) for n in range(first, first + 20))} ..." in detail
    for line in SECRET_LINES:
        for secret in line.secrets:
            assert secret not in detail
    assert stored_versions(hq) == before

    scrubbed = CONFIG_V1 + "".join(f"{line.scrubbed}\n" for line in SECRET_LINES)
    assert upload(hq, agent, backup(scrubbed)).json() == {"version": 2, "changed": True}
    assert stored_versions(hq) == before + 1


@pytest.mark.parametrize(
    "line",
    [
        "secret <removed> s3cret",  # what `secret = s3cret` became when `=` was taken for it
        "password=<removed> token=Zm9vYmFy",
        "snmp-server user u g v3 auth sha <removed> priv aes 128 Pr1vClear",
    ],
)
def test_a_marker_on_the_line_does_not_let_a_clear_secret_through(hq: HQ, line: str) -> None:
    """One secret removed, another in clear on the same line: refused, nothing stored."""
    agent = hq.enroll()
    before = stored_versions(hq)
    response = upload(hq, agent, backup(CONFIG_V1 + line + "\n"))
    assert response.status_code == 422
    assert "line(s) 7 look like" in response.json()["detail"]
    for clear in ("s3cret", "Zm9vYmFy", "Pr1vClear"):
        assert clear not in response.json()["detail"]
    assert stored_versions(hq) == before == 0
    site = site_id(hq)
    assert hq.get(hq.user_token(), f"/api/v1/sites/{site}/devices/sw1/backups").json() == []


def test_only_agents_upload_and_only_users_read(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    assert upload(hq, engineer, backup(CONFIG_V1)).status_code == 403
    assert hq.client.post("/api/v1/backups", json=backup(CONFIG_V1)).status_code == 401
    assert upload(hq, agent, backup(CONFIG_V1)).status_code == 200
    base = f"/api/v1/sites/{site}/devices/sw1/backups"
    assert hq.get(agent, base).status_code == 403
    assert hq.get(engineer, base).status_code == 200
    assert hq.get(engineer, f"/api/v1/sites/{site}/devices/a%20b/backups").status_code == 422


def test_bad_bodies_are_answered_not_crashed_on(hq: HQ) -> None:
    agent = hq.enroll()
    nul = "hostname sw1\x00\n"
    assert upload(hq, agent, backup(nul)).status_code == 422
    assert upload(hq, agent, backup(CONFIG_V1, device_id="sw 1")).status_code == 422
    naive = backup(CONFIG_V1, taken_at="2026-03-02T07:59:00")
    assert upload(hq, agent, naive).status_code == 200
    garbage = hq.client.post(
        "/api/v1/backups",
        content=b"\x1f\x8bnot gzip",
        headers={**auth(agent), "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert garbage.status_code == 400


def test_concurrent_uploads_of_a_new_text_make_one_version(hq: HQ) -> None:
    agent = hq.enroll()
    upload(hq, agent, backup(CONFIG_V1))
    threads = 8
    barrier = threading.Barrier(threads)

    def send(_: int) -> dict[str, Any]:
        barrier.wait(timeout=30)
        response = upload(hq, agent, backup(CONFIG_V2))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    with ThreadPoolExecutor(max_workers=threads) as pool:
        answers = list(pool.map(send, range(threads)))
    assert {a["version"] for a in answers} == {2}
    assert sorted(a["changed"] for a in answers) == [False] * (threads - 1) + [True]
    versions = hq.get(hq.user_token(), f"/api/v1/sites/{site_id(hq)}/devices/sw1/backups")
    assert [v["version"] for v in versions.json()] == [2, 1]
