"""Jobs from HQ: long-polled, checked against the agent's own catalogue, run, reported.

The agent never executes what HQ sends as code. A job names a catalogue item: a shipped
checklist, a check code of a device's profile, a config backup, a poll, or an action declared
in the device's profile. Anything else is refused and the refusal is reported to HQ. A change
action also needs an approval reference and the current time inside its approved window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

from agent.backups import BackupManager
from agent.config import AgentConfig, Device
from agent.devices import AGENT_DEVICE, DeviceSet
from agent.errors import UplinkError, UplinkRejected
from agent.faults import FaultSink
from agent.health import host_figures
from agent.uplink import Uplink, backoff_delay
from checks.base import Finding
from checks.checklists import Checklist, ChecklistItem, builtin_checklists
from collectors.base import Reading, ReadingSet
from collectors.errors import CollectorError
from protocol.grades import Grade
from protocol.wire import Job, JobItemResult, JobKind, JobResult, JobStatus

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The job asks for something outside the catalogue or without a valid approval."""


def approval_problem(job: Job, now: datetime, allow_changes: bool) -> str | None:
    """Why a change job may not run now, or None when it may."""
    if not allow_changes:
        return "change actions are disabled on this agent (jobs.allow_changes: false)"
    if job.approval is None:
        return "change action without an approval reference"
    a = job.approval
    if not a.window_start <= now <= a.window_end:
        return (
            f"outside the approved window {a.window_start.isoformat()} .. "
            f"{a.window_end.isoformat()} (approval {a.reference})"
        )
    return None


def _now() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    """Long-polls HQ, runs catalogue items with bounded concurrency, posts results."""

    def __init__(
        self,
        faults: FaultSink,
        devices: DeviceSet,
        backups: BackupManager,
        uplink: Uplink,
        config: AgentConfig,
        checklists: dict[str, Checklist] | None = None,
    ) -> None:
        """`config`: the agent's settings (site, state dir, `jobs:`)."""
        self.faults = faults
        self.devices = devices
        self.backups = backups
        self.uplink = uplink  # the agent replaces it when a reload names another HQ
        self.config = config
        self.checklists = builtin_checklists() if checklists is None else checklists
        self._sem = asyncio.Semaphore(config.jobs.max_concurrent)
        self._running: dict[UUID, asyncio.Task[JobResult]] = {}
        self._cancel_requested: set[UUID] = set()

    # ---- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Poll for jobs until cancelled."""
        attempt = 0
        while True:
            wait = self.config.jobs.poll_wait_s
            try:
                poll = await self.uplink.poll_jobs(wait)
            except UplinkError as exc:
                delay = max(backoff_delay(attempt, base=2.0, cap=300.0), exc.retry_after or 0)
                if isinstance(exc, UplinkRejected):
                    delay = max(delay, 60.0)
                attempt += 1
                logger.debug(
                    "site=%s job poll failed (%s); retry in %.1f s", self.config.site, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            for job_id in poll.cancel:
                task = self._running.get(job_id)
                if task is not None and not task.done():
                    self._cancel_requested.add(job_id)
                    task.cancel()
            for job in poll.jobs:
                if job.job_id not in self._running:
                    task = asyncio.create_task(self.execute(job), name=f"job-{job.job_id}")
                    self._running[job.job_id] = task
                    task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[JobResult]) -> None:
        for job_id, t in list(self._running.items()):
            if t is task:
                del self._running[job_id]
                self._cancel_requested.discard(job_id)

    async def execute(self, job: Job) -> JobResult:
        """Run one job to its end (any end) and report it."""
        started = _now()
        log_ctx = (self.config.site, job.device_id or "-", job.kind.value, job.item, job.job_id)
        try:
            self.check(job, started)
        except Refused as exc:
            logger.warning(
                "site=%s device=%s job %s %r REFUSED: %s (job %s)", *log_ctx[:4], exc, job.job_id
            )
            result = JobResult(
                job_id=job.job_id,
                status=JobStatus.REFUSED,
                started_at=started,
                finished_at=_now(),
                summary=str(exc),
            )
            await self._report(result)
            return result
        try:
            async with self._sem:
                started = _now()
                status, summary, items = await asyncio.wait_for(self._dispatch(job), job.timeout_s)
        except TimeoutError:
            status, summary, items = JobStatus.TIMEOUT, f"not done within {job.timeout_s} s", []
        except asyncio.CancelledError:
            if job.job_id not in self._cancel_requested:
                raise  # the agent is stopping: HQ will expire the job
            status, summary, items = JobStatus.CANCELLED, "cancelled at HQ's request", []
        except Exception as exc:  # a catalogue item failing must not take the runner down
            logger.exception(
                "site=%s device=%s job %s failed",
                self.config.site,
                job.device_id or "-",
                job.job_id,
            )
            status, summary, items = JobStatus.ERROR, f"{type(exc).__name__}: {exc}"[:2000], []
        logger.info(
            "site=%s device=%s job %s %r %s: %s (job %s)",
            *log_ctx[:4],
            status.value.upper(),
            summary,
            job.job_id,
        )
        result = JobResult(
            job_id=job.job_id,
            status=status,
            started_at=started,
            finished_at=_now(),
            summary=summary[:2000],
            items=items[:2000],
        )
        await self._report(result)
        return result

    async def _report(self, result: JobResult) -> None:
        for attempt in range(6):
            try:
                await self.uplink.post_job_result(result)
                return
            except UplinkRejected as exc:
                logger.error(
                    "site=%s HQ refused the result of job %s: %s",
                    self.config.site,
                    result.job_id,
                    exc,
                )
                return
            except UplinkError:
                await asyncio.sleep(backoff_delay(attempt, base=1.0, cap=30.0))
        logger.error(
            "site=%s could not report job %s; HQ will expire it", self.config.site, result.job_id
        )

    # ---- the catalogue ----------------------------------------------------------------

    def _device(self, job: Job) -> Device:
        if not job.device_id:
            raise Refused(f"{job.kind.value} needs a device_id")
        device = self.devices.device(job.device_id)
        if device is not None:
            return device
        raise Refused(f"no device {job.device_id!r} at this site")

    def check(self, job: Job, now: datetime) -> None:
        """Refuse a job that is not in the catalogue or lacks a valid approval."""
        kind = job.kind
        if kind is JobKind.RUN_CHECKLIST:
            if job.item not in self.checklists:
                raise Refused(
                    f"no checklist {job.item!r} in this agent's catalogue "
                    f"(has: {', '.join(sorted(self.checklists)) or 'none'})"
                )
        elif kind is JobKind.RUN_CHECK:
            device = self._device(job)
            codes = {c.code for c in device.checks if c.enabled}
            if job.item not in codes:
                raise Refused(
                    f"no check {job.item!r} for device {device.id} "
                    f"(has: {', '.join(sorted(codes))})"
                )
        elif kind is JobKind.POLL_DEVICE:
            self._device(job)
        elif kind is JobKind.BACKUP_CONFIG:
            device = self._device(job)
            if not self.backups.supports(device):
                raise Refused(f"profile {device.profile.name} has no config backup")
        elif kind is JobKind.RUN_ACTION:
            device = self._device(job)
            actions = {a.name: a for a in device.profile.actions}
            if job.item not in actions:
                raise Refused(
                    f"no action {job.item!r} for device {device.id} "
                    f"(has: {', '.join(sorted(actions)) or 'none'})"
                )
            if actions[job.item].change:
                problem = approval_problem(job, now, self.config.jobs.allow_changes)
                if problem:
                    raise Refused(problem)
        else:  # pragma: no cover - JobKind is closed; a new kind must be added here on purpose
            raise Refused(f"unknown job kind {kind!r}")

    async def _dispatch(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        handlers: dict[
            JobKind, Callable[[Job], Awaitable[tuple[JobStatus, str, list[JobItemResult]]]]
        ] = {
            JobKind.RUN_CHECKLIST: self._run_checklist,
            JobKind.RUN_CHECK: self._run_check,
            JobKind.POLL_DEVICE: self._poll_device,
            JobKind.BACKUP_CONFIG: self._backup,
            JobKind.RUN_ACTION: self._action,
        }
        return await handlers[job.kind](job)

    async def _poll_device(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        device = self._device(job)
        readings = await self.devices.poll_now(device)
        if readings is None:
            return JobStatus.ERROR, f"{device.id} did not answer", []
        values = {
            f"{r.metric}{'[' + r.component + ']' if r.component else ''}": r.value
            for r in readings[:200]
        }
        item = JobItemResult(
            name="poll",
            device_id=device.id,
            passed=True,
            detail=f"{len(readings)} reading(s)",
            values=values,
        )
        return JobStatus.OK, f"{device.id}: {len(readings)} reading(s)", [item]

    async def _run_check(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        device = self._device(job)
        readings = await self.devices.poll_now(device)
        if readings is None:
            return JobStatus.ERROR, f"{device.id} did not answer", []
        view = self.faults.tracker.view(device.id)
        active = sorted(view.active_components(job.item)) or (
            [""] if view.is_active(job.item) else []
        )
        passed = not active
        detail = (
            "not raised"
            if passed
            else "raised" + (f" on {', '.join(c for c in active if c)}" if any(active) else "")
        )
        item = JobItemResult(name=job.item, device_id=device.id, passed=passed, detail=detail)
        return (
            (JobStatus.OK if passed else JobStatus.FAILED),
            f"{device.id} {job.item}: {detail}",
            [item],
        )

    async def _run_checklist(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        checklist = self.checklists[job.item]
        devices = [d for d in self.devices.devices if d.id in self.devices.collectors]
        if job.device_id:
            devices = [self._device(job)]
        fresh = await asyncio.gather(*(self.devices.poll_now(d) for d in devices))
        items: list[JobItemResult] = []
        for device, readings in zip(devices, fresh, strict=True):
            for it in checklist.items:
                if it.applies_to(device.profile.device_class, device.profile.name):
                    res = self._judge(it, device, readings)
                    if res is not None:
                        items.append(res)
        items += [
            r
            for it in checklist.items
            if it.kind == "host"
            if (r := self._judge_host(it)) is not None
        ]
        await self._record_inspection(checklist, items)
        failed = [i for i in items if not i.passed]
        status = JobStatus.FAILED if failed else JobStatus.OK
        summary = f"{checklist.title}: {len(items) - len(failed)}/{len(items)} item(s) passed"
        if failed:
            summary += "; failed: " + ", ".join(f"{i.name}@{i.device_id}" for i in failed[:20])
        return status, summary, items

    def _judge(
        self, it: ChecklistItem, device: Device, readings: list[Reading] | None
    ) -> JobItemResult | None:
        base = {"name": it.name, "device_id": device.id, "category": it.category}
        if it.kind == "reachable":
            ok = readings is not None
            return JobItemResult(**base, passed=ok, detail="answered" if ok else "no answer")
        if it.kind == "no_faults":
            faults = [
                f
                for f in self.faults.tracker.active.values()
                if f.device_id == device.id and f.grade <= it.max_grade
            ]
            detail = (
                ", ".join(
                    f"{f.code}{':' + f.component if f.component else ''} (grade {int(f.grade)})"
                    for f in faults
                )
                or "none"
            )
            return JobItemResult(**base, passed=not faults, detail=f"active faults: {detail}")
        if readings is None:
            return None  # the reachability item already reports it
        passed, detail = it.judge_value(ReadingSet(readings))
        if passed is None:
            return None  # this device model does not report that metric
        return JobItemResult(**base, passed=passed, detail=detail)

    def _judge_host(self, it: ChecklistItem) -> JobItemResult | None:
        depth = float(self.faults.outbox.depth())
        values = host_figures(self.config.state_dir) | {"outbox_depth": depth}
        if it.metric not in values:
            return None
        value = values[it.metric]
        return JobItemResult(
            name=it.name,
            device_id=AGENT_DEVICE,
            category=it.category,
            passed=it.within(value),
            detail=f"{it.metric} = {value:g}",
        )

    async def _record_inspection(self, checklist: Checklist, items: list[JobItemResult]) -> None:
        """A failed inspection item is a grade-4 fault until an inspection passes it again."""
        now = time.time()
        titles = {i.name: i.title for i in checklist.items}
        changes = []
        for res in items:
            device = res.device_id or AGENT_DEVICE
            finding = Finding(
                f"inspection_{res.name}"[:48],
                "",
                not res.passed,
                Grade.MINOR,
                f"Inspection item failed: {titles.get(res.name, res.name)}",
                res.detail,
                title_zh=f"巡检项不合格：{titles.get(res.name, res.name)}",  # noqa: RUF001
            )
            changes += self.faults.tracker.apply(device, [finding], now)
        await self.faults.commit(changes)

    async def _backup(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        device = self._device(job)
        try:
            result = await self.backups.backup(device)
        except CollectorError as exc:
            return JobStatus.ERROR, f"{device.id}: {exc}", []
        detail = {
            "first": "first version kept",
            "unchanged": "unchanged",
            "noise": "only noise lines changed",
            "changed": "significant change",
        }
        item = JobItemResult(
            name="config_backup",
            device_id=device.id,
            passed=True,
            detail=f"{detail[result.status]} (sha256 {result.sha256[:12]})",
            values={"sha256": result.sha256, "status": result.status},
        )
        return JobStatus.OK, f"{device.id}: {detail[result.status]}", [item]

    async def _action(self, job: Job) -> tuple[JobStatus, str, list[JobItemResult]]:
        device = self._device(job)
        action = next(a for a in device.profile.actions if a.name == job.item)
        collector = self.devices.collectors.get(device.id)
        run = getattr(collector, "run_commands", None)
        if run is None:
            return JobStatus.ERROR, f"{device.id} is not polled over SSH now", []
        try:
            (output,) = await run([action.ssh_command])
        except CollectorError as exc:
            return JobStatus.ERROR, f"{device.id}: {exc}", []
        if action.change:
            assert job.approval is not None
            logger.warning(
                "site=%s device=%s CHANGE action %s run under approval %s by %s",
                self.config.site,
                device.id,
                action.name,
                job.approval.reference,
                job.approval.approved_by,
            )
        failed = "% " in output[:200] or "error" in output[:200].lower()
        item = JobItemResult(
            name=action.name, device_id=device.id, passed=not failed, detail=output[-2000:]
        )
        status = JobStatus.FAILED if failed else JobStatus.OK
        return status, f"{device.id} {action.name}: {'failed' if failed else 'done'}", [item]
