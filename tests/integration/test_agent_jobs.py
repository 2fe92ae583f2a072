"""Agent jobs against the simulated station: only catalogue items run; changes need approval."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_config
from agent.jobs import JobRunner, Refused
from agent.runner import AgentRuntime
from checks.checklists import builtin_checklists
from protocol import wire
from protocol.wire import Approval, Job, JobKind, JobStatus
from simulators.station import SimulatedStation, load_station_config
from stationwatch.demo import write_agent_config

pytestmark = pytest.mark.integration


@pytest.fixture
def station(tmp_path: Path) -> Iterator[SimulatedStation]:
    with SimulatedStation(load_station_config(), tmp_path / "sim", ephemeral_ports=True) as st:
        yield st


class SiteJobs(JobRunner):
    """A JobRunner built from an agent's parts, with the agent at hand for the assertions."""

    def __init__(self, rt: AgentRuntime) -> None:
        super().__init__(rt.faults, rt.devices, rt.backups, rt.uplink, rt.loaded.agent)
        self.rt = rt


@pytest.fixture
async def runner(station: SimulatedStation, tmp_path: Path) -> AsyncIterator[SiteJobs]:
    site = write_agent_config(station.manifest, tmp_path / "agent", "http://127.0.0.1:9", 600)
    rt = AgentRuntime(load_config(site), token=None)
    await rt.devices.start()
    try:
        yield SiteJobs(rt)
    finally:
        await rt.close()


def job(kind: JobKind, item: str = "", device: str | None = None, **kw: object) -> Job:
    return Job(
        job_id=uuid.uuid4(),
        kind=kind,
        item=item,
        device_id=device,
        created_at=datetime.now(UTC),
        **kw,
    )  # type: ignore[arg-type]


def window(start_h: float, end_h: float) -> Approval:
    now = datetime.now(UTC)
    return Approval(
        reference="CHG-2026-0042",
        approved_by="customer duty manager",
        window_start=now + timedelta(hours=start_h),
        window_end=now + timedelta(hours=end_h),
    )


@pytest.mark.parametrize(
    ("j", "reason"),
    [
        (job(JobKind.RUN_CHECKLIST, "rm -rf /"), "no checklist 'rm -rf /'"),
        (job(JobKind.RUN_CHECK, "reboot_now", "tx1"), "no check 'reboot_now' for device tx1"),
        (job(JobKind.RUN_ACTION, "shell", "pbx1"), "no action 'shell' for device pbx1"),
        (job(JobKind.POLL_DEVICE, "", "tx9"), "no device 'tx9'"),
        (job(JobKind.RUN_ACTION, "clear_alarms", "pbx1"), "without an approval reference"),
        (
            job(JobKind.RUN_ACTION, "clear_alarms", "pbx1", approval=window(-3, -1)),
            "outside the approved window",
        ),
        (
            job(JobKind.RUN_ACTION, "clear_alarms", "pbx1", approval=window(1, 2)),
            "outside the approved window",
        ),
        (job(JobKind.BACKUP_CONFIG, "", "tx1"), "has no config backup"),
    ],
)
async def test_outside_catalogue_or_unapproved_is_refused(
    runner: JobRunner, j: Job, reason: str
) -> None:
    with pytest.raises(Refused, match=reason):
        runner.check(j, datetime.now(UTC))


async def test_approved_change_in_window_and_read_only_actions_run(runner: JobRunner) -> None:
    runner.check(
        job(JobKind.RUN_ACTION, "clear_alarms", "pbx1", approval=window(-1, 1)), datetime.now(UTC)
    )
    status, summary, items = await runner._dispatch(job(JobKind.RUN_ACTION, "show_trunks", "pbx1"))
    assert status is JobStatus.OK, summary
    assert "TRUNK-1" in items[0].detail


async def test_checklist_judges_every_device(runner: JobRunner, station: SimulatedStation) -> None:
    station.set_condition("tx2", "temp_high")
    status, summary, items = await runner._dispatch(
        job(JobKind.RUN_CHECKLIST, "routine_inspection")
    )
    by = {(i.name, i.device_id): i for i in items}
    assert by[("device_reachable", "tx1")].passed and by[("device_reachable", "pbx1")].passed
    assert not by[("transmitter_temperature", "tx2")].passed
    assert by[("transmitter_temperature", "tx1")].passed
    assert status is JobStatus.FAILED and "transmitter_temperature@tx2" in summary
    # A failed inspection item is a grade-4 fault until it passes again.
    assert "tx2:inspection_transmitter_temperature" in runner.rt.tracker.active
    station.reset("tx2")
    await runner._dispatch(job(JobKind.RUN_CHECKLIST, "routine_inspection"))
    assert "tx2:inspection_transmitter_temperature" not in runner.rt.tracker.active


async def test_run_check_and_poll_now(runner: JobRunner, station: SimulatedStation) -> None:
    station.set_condition("tx1", "off_air")
    status, summary, _ = await runner._dispatch(job(JobKind.RUN_CHECK, "off_air", "tx1"))
    assert status is JobStatus.FAILED and "raised" in summary
    status, _, items = await runner._dispatch(job(JobKind.POLL_DEVICE, "", "tx1"))
    assert status is JobStatus.OK and items[0].values["op_mode"] == "off"


async def test_backup_job_scrubs_and_raises_config_changed(
    runner: JobRunner, station: SimulatedStation
) -> None:
    status, summary, _ = await runner._dispatch(job(JobKind.BACKUP_CONFIG, "", "pbx1"))
    assert status is JobStatus.OK and "first version kept" in summary
    station.set_condition("pbx1", "config_noise")
    _, summary, _ = await runner._dispatch(job(JobKind.BACKUP_CONFIG, "", "pbx1"))
    assert "only noise lines changed" in summary
    assert "pbx1:config_changed" not in runner.rt.tracker.active
    station.set_condition("pbx1", "config_changed")
    _, summary, _ = await runner._dispatch(job(JobKind.BACKUP_CONFIG, "", "pbx1"))
    assert "significant change" in summary
    fault = runner.rt.tracker.active["pbx1:config_changed"]
    assert int(fault.grade) == 4
    events = runner.rt.outbox.pending()
    detail = next(e.detail for e in events if e.code == "config_changed")
    assert "\n+" in detail or "\n-" in detail  # the scrubbed diff travels with the fault
    kept = "\n".join(
        p.read_text() for p in (runner.rt.loaded.agent.state_dir / "backups").rglob("*.cfg")
    )
    for secret in ("pbx1-secret", "s3cr3tRO", "$1$mERr$"):
        assert secret not in kept and secret not in detail


async def test_approved_clear_alarms_clears_the_simulated_pbx_alarms(
    runner: JobRunner, station: SimulatedStation
) -> None:
    station.set_condition("pbx1", "trunk_down")
    station.set_condition("pbx1", "pbx_alarm")
    clear = job(JobKind.RUN_ACTION, "clear_alarms", "pbx1", approval=window(-1, 1))
    runner.check(clear, datetime.now(UTC))
    status, summary, items = await runner._dispatch(clear)
    assert status is JobStatus.OK, (summary, items[0].detail)
    assert summary == "pbx1 clear_alarms: done"
    assert "2 alarms cleared" in items[0].detail
    _, _, items = await runner._dispatch(job(JobKind.RUN_ACTION, "show_alarms", "pbx1"))
    assert "No active alarms" in items[0].detail
    # The fault behind an alarm stays: the trunk is still down.
    _, _, items = await runner._dispatch(job(JobKind.RUN_ACTION, "show_trunks", "pbx1"))
    assert "TRUNK-2   E1   DOWN" in items[0].detail
    status, _, items = await runner._dispatch(clear)
    assert status is JobStatus.OK and "No active alarms to clear" in items[0].detail


def test_the_wire_examples_name_checklists_that_exist() -> None:
    source = Path(wire.__file__).read_text(encoding="utf-8")
    named = re.findall(r"checklist name \(e\.g\. (\w+)\)", source)
    assert named and set(named) <= set(builtin_checklists()), named
