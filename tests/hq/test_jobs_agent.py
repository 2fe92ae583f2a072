"""The agent's own uplink client (agent.uplink) against HQ's job and backup endpoints."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import httpx

from agent.uplink import Uplink
from agent.wire import BackupAck, ConfigBackup, JobItemResult, JobKind, JobResult, JobStatus
from collectors.scrub import Scrubber
from hq_server.domain import Role
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
