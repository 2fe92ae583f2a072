"""Jobs end to end: an engineer asks HQ, the agent long-polls, runs only its catalogue, reports."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stationwatch.demo import write_agent_config
from tests.e2e.conftest import Hq, start_sim
from tests.procs import Procs

pytestmark = pytest.mark.e2e


def test_jobs_outside_catalogue_or_approval_are_refused_and_reported(
    hq: Hq, procs: Procs, stationwatch_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    manifest = start_sim(procs, stationwatch_cmd, tmp_path / "sim")
    hq.start()
    site = write_agent_config(manifest, tmp_path / "agent", hq.url, poll_s=2.0)
    subprocess.run(
        [*stationwatch_cmd, "agent", "enroll", "--config", str(site), "--token", hq.enroll_token()],
        check=True,
        capture_output=True,
        env=clean_env,
        timeout=60,
    )
    procs.start("agent", [*stationwatch_cmd, "agent", "run", "--config", str(site)])
    (site_row,) = hq.api.get("/api/v1/sites").json()

    def submit(**job: Any) -> str:
        resp = hq.api.post(f"/api/v1/sites/{site_row['id']}/jobs", json=job)
        assert resp.status_code in (200, 201), resp.text
        return str(resp.json()["id"])

    def finished(job_id: str) -> dict[str, Any] | None:
        job = hq.api.get(f"/api/v1/jobs/{job_id}").json()
        return job if job.get("result_status") else None

    def window(start_h: float, end_h: float) -> dict[str, str]:
        now = datetime.now(UTC)
        return {
            "reference": "CHG-7",
            "approved_by": "customer duty manager",
            "window_start": (now + timedelta(hours=start_h)).isoformat(),
            "window_end": (now + timedelta(hours=end_h)).isoformat(),
        }

    # HQ refuses an action without an approval before it ever reaches a station ...
    resp = hq.api.post(
        f"/api/v1/sites/{site_row['id']}/jobs",
        json={"kind": "run_action", "item": "clear_alarms", "device_id": "pbx1"},
    )
    assert resp.status_code == 422 and "approval" in resp.text
    # ... and the agent is the final judge of its catalogue and of the approved window.
    jobs = {
        "unknown checklist": submit(kind="run_checklist", item="format_disks"),
        "unknown action": submit(
            kind="run_action", item="factory_reset", device_id="pbx1", approval=window(-1, 1)
        ),
        "change outside window": submit(
            kind="run_action", item="clear_alarms", device_id="pbx1", approval=window(1, 2)
        ),
        "read-only action": submit(
            kind="run_action", item="show_trunks", device_id="pbx1", approval=window(-1, 1)
        ),
        "approved change": submit(
            kind="run_action", item="clear_alarms", device_id="pbx1", approval=window(-1, 1)
        ),
        "inspection": submit(kind="run_checklist", item="routine_inspection"),
        "backup": submit(kind="backup_config", device_id="pbx1"),
    }
    results = {
        name: procs.wait_for(f"the result of '{name}'", lambda j=jid: finished(j), 60)
        for name, jid in jobs.items()
    }
    for name in ("unknown checklist", "unknown action", "change outside window"):
        assert results[name]["result_status"] == "refused", (name, results[name])
    assert "no checklist 'format_disks'" in results["unknown checklist"]["result"]["summary"]
    assert "no action 'factory_reset'" in results["unknown action"]["result"]["summary"]
    assert "outside the approved window" in results["change outside window"]["result"]["summary"]
    assert results["read-only action"]["result_status"] == "ok"
    # The catalogue's change action works on the simulated PBX (it had no "clear alarms").
    assert results["approved change"]["result_status"] == "ok", results["approved change"]
    assert "clear_alarms: done" in results["approved change"]["result"]["summary"]
    assert results["inspection"]["result_status"] in ("ok", "failed")
    assert {i["name"] for i in results["inspection"]["items"]} >= {"device_reachable"}
    assert results["backup"]["result_status"] == "ok"
    versions = hq.api.get(f"/api/v1/sites/{site_row['id']}/devices/pbx1/backups").json()
    assert versions, "the scrubbed backup reached HQ"
    latest = hq.api.get(
        f"/api/v1/sites/{site_row['id']}/devices/pbx1/backups/"
        f"{versions[-1]['version'] if isinstance(versions, list) else 1}"
    ).json()
    assert "pbx1-secret" not in latest["text"] and "<removed>" in latest["text"]
