"""The agent's own uplink client (agent.uplink) against HQ's job and backup endpoints."""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent.config import load_config
from agent.runner import AgentRuntime
from agent.uplink import Uplink
from collectors.scrub import Scrubber
from hq_server.core.domain import Role
from protocol.wire import BackupAck, ConfigBackup, JobItemResult, JobKind, JobResult, JobStatus
from tests.hq.conftest import HQ
from tests.hq.test_jobs import get_job, queued, site_id

RAW_CONFIG = """\
hostname sw1
enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0
username admin privilege 15 password 0 letmein
snmp-server community public RO
tacacs-server host 10.0.0.9 key 7 0822455D0A16
interface Gi0/1
 description uplink
"""


async def test_agent_uplink_polls_reports_and_uploads_a_scrubbed_backup(hq: HQ) -> None:
    token = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    job = queued(hq, engineer, site, kind="backup_config", device_id="sw1")
    uplink = Uplink("http://hq", token, transport=httpx.ASGITransport(app=hq.client.app))
    try:
        poll = await uplink.poll_jobs(5)
        assert [j.job_id for j in poll.jobs] == [uuid.UUID(job["id"])]
        given = poll.jobs[0]
        assert (given.kind, given.device_id) == (JobKind.BACKUP_CONFIG, "sw1")

        text = Scrubber.for_backup(None).scrub(RAW_CONFIG)  # what the agent uploads
        backup = ConfigBackup(
            device_id="sw1",
            taken_at=datetime.now(UTC),
            sha256=hashlib.sha256(text.encode()).hexdigest(),
            text=text,
            job_id=given.job_id,
        )
        assert await uplink.upload_backup(backup) == BackupAck(version=1, changed=False)
        assert await uplink.upload_backup(backup) == BackupAck(version=1, changed=False)

        now = datetime.now(UTC)
        item = JobItemResult(name="backup", device_id="sw1", passed=True, detail="version 1")
        result = JobResult(
            job_id=given.job_id,
            status=JobStatus.OK,
            started_at=now,
            finished_at=now,
            summary="config saved",
            items=[item],
        )
        await uplink.post_job_result(result)
        await uplink.post_job_result(result)  # a retry after a lost answer is harmless
        assert (await uplink.poll_jobs(0)).jobs == []
    finally:
        await uplink.aclose()
    stored = get_job(hq, engineer, job["id"])
    assert (stored["status"], stored["result_status"]) == ("done", "ok")
    versions = hq.get(engineer, f"/api/v1/sites/{site}/devices/sw1/backups").json()
    assert [(v["version"], v["job_id"]) for v in versions] == [(1, job["id"])]


async def _runtime(tmp_path: Path, hq: HQ, token: str) -> AgentRuntime:
    """A real agent runtime (no devices) whose uplink reaches this HQ app in process."""
    site = tmp_path / "site.yaml"
    site.write_text(
        "site: backup-log\nhq: {url: 'http://127.0.0.1'}\nstate_dir: state\ndevices: []\n",
        encoding="utf-8",
    )
    (tmp_path / "credentials.yaml").write_text("{}\n", encoding="utf-8")
    (tmp_path / "credentials.yaml").chmod(0o600)
    rt = AgentRuntime(load_config(site), token=token)
    await rt.uplink.aclose()
    rt.uplink = Uplink("http://hq", token, transport=httpx.ASGITransport(app=hq.client.app))
    return rt


async def test_the_agent_logs_a_first_backup_as_first_not_unchanged(
    hq: HQ, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """HQ answers `changed: false` for a device's first version; the agent's log says "first"."""
    rt = await _runtime(tmp_path, hq, hq.enroll())
    scrubber = Scrubber.for_backup(None)
    caplog.set_level(logging.INFO, logger="agent.backups")
    try:
        rt.backups.store.record("sw1", RAW_CONFIG, scrubber)
        assert await rt.backups.upload_latest("sw1")
        rt.backups.store.record("sw1", RAW_CONFIG + "ntp server 10.0.0.1\n", scrubber)
        assert await rt.backups.upload_latest("sw1")
        rt.outbox.set_meta("backup_sent:sw1", "")  # as after a lost answer: sent once more
        assert await rt.backups.upload_latest("sw1")
    finally:
        await rt.close()
    stored = [r.getMessage() for r in caplog.records if "stored at HQ" in r.getMessage()]
    assert [m.split(" as ", 1)[1] for m in stored] == [
        "version 1 (first version)",
        "version 2 (changed)",
        "version 2 (unchanged)",
    ]
