"""The agent daemon: one poll loop per device, an uploader and a heartbeat, on one event loop.

Each device is polled on its own schedule with its own time budget; a device that hangs costs
only its own loop (its collector call is abandoned, never awaited by anyone else). Every poll
outcome goes through the device's grader and, if anything changed, into the outbox on disk
before the uploader is woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import psutil

from agent import __version__
from agent.backups import BackupManager
from agent.config import AUTO_PROFILE, Device, LoadedConfig, load_config, with_profile
from agent.errors import ConfigError, UplinkError, UplinkRejected
from agent.listeners import Listeners
from agent.outbox import Outbox
from agent.private_files import private_dir
from agent.sdnotify import Notifier
from agent.shipping import ship
from agent.uplink import Uplink, backoff_delay
from checks.base import Finding
from checks.checklists import builtin_checklists
from checks.engine import DeviceGrader
from checks.tracker import FaultChange, FaultTracker
from collectors.base import Collector, Reading, ReadingSet
from collectors.build import make_collector
from collectors.errors import CollectorError, DeviceUnreadable
from collectors.identify import identify_target
from collectors.snmp import SnmpEngineHolder
from collectors.targets import SnmpTarget
from protocol.faults import CONFIG_INVALID, UNREACHABLE, UNREADABLE
from protocol.grades import Grade
from protocol.wire import DeviceState, FaultEvent, Heartbeat

if TYPE_CHECKING:
    from agent.jobs import JobRunner

AGENT_DEVICE = "agent"  # device id of findings about the agent host itself

logger = logging.getLogger(__name__)
INSPECTION_CODES = frozenset(
    f"inspection_{item.name}"[:48] for cl in builtin_checklists().values() for item in cl.items
)
P = ParamSpec("P")
T = TypeVar("T")
TOKEN_FILE = "agent.token"  # noqa: S105 - a file name, not a secret


def read_token(state_dir: Path) -> str | None:
    """The agent token saved at enrollment, if any."""
    path = state_dir / TOKEN_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def write_token(state_dir: Path, token: str) -> Path:
    """Save the agent token readable by the agent's user only."""
    private_dir(state_dir)
    path = state_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def failure_outcome(exc: BaseException) -> tuple[str, DeviceState]:
    """The fault code and device state of a failed poll or identification (one mapping for both).

    An answer we cannot use (DeviceUnreadable, or a collector crash) is "unreadable"; no answer,
    refused credentials or a host key mismatch are "unreachable".
    """
    if isinstance(exc, DeviceUnreadable) or not isinstance(exc, CollectorError):
        return UNREADABLE, DeviceState.UNREADABLE
    return UNREACHABLE, DeviceState.UNREACHABLE


def grader_for(device: Device) -> DeviceGrader:
    """The grader of a device: its checks, reachability and its profile's key readings."""
    # Faults raised outside polling (traps, logs, config changes, inspections) must
    # survive a restart: the grader must not retire them as "unknown checks".
    profile = device.profile
    extra = profile.event_codes() | INSPECTION_CODES
    return DeviceGrader(
        device.id,
        device.checks,
        profile.unreachable_grade,
        extra,
        key_metrics=profile.key_per_row(),
        profile_name=profile.name,
    )


def poll_budget(device: Device, interval: float) -> float:
    """How long one poll of a device may take before it counts as unreachable."""
    target_timeout = getattr(device.target, "timeout_s", 5.0)
    retries = getattr(device.target, "retries", 0)
    wanted = target_timeout * (retries + 1) * 4 + 2
    return max(1.0, min(wanted, interval * 0.9, 120.0))


class AgentRuntime:
    """Everything the running agent holds: config, outbox, fault memory, collectors."""

    def __init__(self, loaded: LoadedConfig, token: str | None) -> None:
        cfg = loaded.agent
        self.outbox = Outbox(cfg.state_dir / "outbox.sqlite", {}, cfg.outbox.max_events)
        self.tracker = FaultTracker(self.outbox.load_active())
        self.device_state: dict[str, DeviceState] = {}
        self.graders: dict[str, DeviceGrader] = {}
        self.engine = SnmpEngineHolder()
        self.collectors: dict[str, Collector] = {}
        self._poll_tasks: dict[str, asyncio.Task[None]] = {}
        self.jobs: JobRunner | None = None
        self._install(loaded)
        self.backups = BackupManager(self)
        self.listeners = Listeners(self)
        self._listener_tasks: list[asyncio.Task[None]] = []
        self.uplink = Uplink(cfg.hq.url, token, ca_file=cfg.hq.ca_file, timeout_s=cfg.hq.timeout_s)
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._wake_upload = asyncio.Event()
        self._inflight: dict[str, asyncio.Future[list[Reading]]] = {}
        self._states_dirty = True

    async def _in_db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    async def commit(self, changes: list[FaultChange]) -> list[FaultEvent]:
        """Write changes and the active set to disk, then wake the uploader."""
        if not changes:
            return []
        events = await self._in_db(self.outbox.record, changes, dict(self.tracker.active))
        for e in events:
            logger.info(
                "site=%s device=%s fault %s %s grade=%d %s",
                self.site,
                e.device_id,
                e.kind.value.upper(),
                e.fault_key,
                e.grade,
                e.detail,
            )
        self._wake_upload.set()
        return events

    async def reconcile(self) -> None:
        """At start: raise faults for broken devices; clear those of removed devices/checks."""
        changes: list[FaultChange] = []
        now = time.time()
        known = set(self.graders) | {AGENT_DEVICE}  # inspection items about the agent host
        for bad in self.loaded.bad_devices:
            for problem in bad.problems:
                logger.error("site=%s device=%s disabled: %s", self.site, bad.id or "?", problem)
            if bad.id:
                known.add(bad.id)
                detail = "; ".join(bad.problems)[:2000]
                finding = Finding(
                    CONFIG_INVALID,
                    "",
                    True,
                    Grade.GENERAL,
                    "Device definition invalid: device not monitored",
                    detail,
                )
                changes += self.tracker.apply(bad.id, [finding], now)
        unidentified = {d.id for d in self.loaded.devices if d.profile is AUTO_PROFILE}
        for dev_id, grader in self.graders.items():
            if dev_id not in unidentified:  # its checks are not known yet: keep its faults
                changes += grader.retire_unknown(self.tracker, now)
            if self.tracker.view(dev_id).is_active(CONFIG_INVALID):
                changes += self.tracker.apply(
                    dev_id, [Finding(CONFIG_INVALID, "", False, Grade.GENERAL, "", "fixed")], now
                )
        for dev_id in {f.device_id for f in self.tracker.active.values()} - known:
            changes += self.tracker.clear_all(
                dev_id, set(), "device removed from configuration", now
            )
        await self.commit(changes)

    def _set_state(self, device_id: str, state: DeviceState) -> None:
        if self.device_state.get(device_id) != state:
            self.device_state[device_id] = state
            self._states_dirty = True

    async def poll_once(
        self, device: Device, collector: Collector, budget: float
    ) -> list[Reading] | None:
        """Poll one device once, grade the outcome, record what changed; the readings or None."""
        grader = self.graders[device.id]
        previous = self._inflight.get(device.id)
        now = time.time()
        if previous is not None and not previous.done():
            changes = grader.on_error(UNREACHABLE, "previous poll still hanging", self.tracker, now)
            self._set_state(device.id, DeviceState.UNREACHABLE)
            await self.commit(changes)
            return None
        task = asyncio.ensure_future(collector.collect())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._inflight[device.id] = task
        done, _ = await asyncio.wait({task}, timeout=budget)
        now = time.time()
        readings: list[Reading] | None = None
        if not done:
            msg = f"no answer within {budget:.0f} s"
            changes = grader.on_error(UNREACHABLE, msg, self.tracker, now)
            self._set_state(device.id, DeviceState.UNREACHABLE)
        elif (exc := task.exception()) is not None:
            if not isinstance(exc, CollectorError):
                logger.error("site=%s device=%s collector crashed: %r", self.site, device.id, exc)
            code, state = failure_outcome(exc)
            changes = grader.on_error(code, str(exc)[:500] or type(exc).__name__, self.tracker, now)
            self._set_state(device.id, state)
        else:
            readings = task.result()
            changes = grader.on_readings(ReadingSet(readings), self.tracker, now)
            self._set_state(device.id, DeviceState.OK)
        if done:
            del self._inflight[device.id]
        await self.commit(changes)
        if self._states_dirty:  # a device changed state: keep `agent status` current
            await self._in_db(self._save_states)
        return readings

    async def identify(self, device: Device) -> Device | None:
        """Identify an SNMP device's profile (collectors.identify) and adopt it if one answers."""
        assert isinstance(device.target, SnmpTarget)  # config allows "auto" for SNMP only
        grader = self.graders[device.id]
        try:
            found = await identify_target(device.id, device.target, self.engine)
        except CollectorError as exc:
            code, state = failure_outcome(exc)
            await self.commit(grader.on_error(code, str(exc)[:500], self.tracker, time.time()))
            self._set_state(device.id, state)
            return None
        if found.profile is None:
            msg = found.failure()[:500]
            await self.commit(grader.on_error(UNREADABLE, msg, self.tracker, time.time()))
            self._set_state(device.id, DeviceState.UNREADABLE)
            return None
        profile = found.profile
        try:
            known = with_profile(device, profile)
        except ValueError as exc:  # a site override names a check this profile lacks
            msg = f"identified as {profile.name}, but its checks: {exc}"[:500]
            await self.commit(grader.on_error(UNREADABLE, msg, self.tracker, time.time()))
            self._set_state(device.id, DeviceState.UNREADABLE)
            return None
        for i, d in enumerate(self.loaded.devices):
            if d.id == device.id:
                self.loaded.devices[i] = known
        self.graders[device.id] = self._grader(known)
        self.collectors[device.id] = make_collector(
            known.id,
            profile,
            known.target,
            snmp_engine=self.engine,
            known_hosts=self.loaded.agent.state_dir / "known_hosts",
        )
        self.outbox.set_device_classes(
            {d.id: str(d.profile.device_class) for d in self.loaded.devices}
        )
        logger.info(
            "site=%s device=%s identified as %s (%s %s) in %d SNMP requests%s",
            self.site,
            device.id,
            profile.name,
            profile.vendor,
            profile.model,
            found.requests,
            f"; not {', '.join(found.refused)} (none of their key OIDs answered)"
            if found.refused
            else "",
        )
        return known

    async def _poll_loop(self, device: Device, collector: Collector) -> None:
        interval = device.config.poll_interval_s or self.loaded.agent.intervals.poll_s
        budget = poll_budget(device, interval)
        loop = asyncio.get_running_loop()
        # Spread the first polls over the interval so a thousand devices don't fire at once.
        next_due = loop.time() + random.uniform(0, interval)  # noqa: S311
        while True:
            await asyncio.sleep(max(0.0, next_due - loop.time()))
            try:
                if device.profile is AUTO_PROFILE:
                    known = await self.identify(device)
                    if known is not None:
                        device, collector = known, self.collectors[device.id]
                if device.profile is not AUTO_PROFILE:
                    await self.poll_once(device, collector, budget)
            except Exception:
                logger.exception("site=%s device=%s poll failed", self.site, device.id)
            next_due += interval
            now = loop.time()
            if next_due < now:  # overran: keep the phase, skip missed slots
                next_due += interval * (int((now - next_due) // interval) + 1)

    async def upload_once(self) -> int:
        """Send one batch; return how many events left the outbox (stored by HQ, or refused by
        it for good and set aside)."""
        limit = self.loaded.agent.outbox.upload_batch
        shipped = await ship(self.outbox, self.uplink, limit, self._in_db)
        if shipped.requests:
            await self._in_db(self.outbox.set_meta, "last_upload_at", str(time.time()))
        return shipped.done

    async def _upload_loop(self) -> None:
        attempt = 0
        interval = self.loaded.agent.intervals.upload_s
        while True:
            try:
                sent = await self.upload_once()
            except UplinkError as exc:
                delay = backoff_delay(attempt, base=1.0, cap=300.0)
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, 3600.0))
                if isinstance(exc, UplinkRejected):
                    delay = max(delay, 30.0)
                attempt += 1
                logger.warning("site=%s upload failed (%s); retry in %.1f s", self.site, exc, delay)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if sent >= self.loaded.agent.outbox.upload_batch:
                continue  # more waiting: go on at once
            self._wake_upload.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_upload.wait(), timeout=interval)

    def heartbeat_payload(self) -> Heartbeat:
        """What the agent reports about itself."""
        host: dict[str, float] = {
            "cpu_percent": psutil.cpu_percent(interval=None),
            "mem_percent": psutil.virtual_memory().percent,
            "rss_mib": psutil.Process().memory_info().rss / 2**20,
        }
        with contextlib.suppress(OSError):
            host["disk_percent"] = psutil.disk_usage(str(self.loaded.agent.state_dir)).percent
        host |= self.listeners.suppressed()
        return Heartbeat(
            agent_version=__version__,
            sent_at=datetime.now(UTC),
            outbox_depth=self.outbox.depth(),
            dropped_events=self.outbox.dropped(),
            last_seq=self.outbox.last_seq(),
            set_aside_events=self.outbox.set_aside_count(),
            devices=dict(self.device_state),
            host=host,
        )

    def _save_states(self) -> None:
        """Persist device states for `stationwatch agent status` (a separate process)."""
        if self._states_dirty:
            self._states_dirty = False
            states = {k: v.value for k, v in self.device_state.items()}
            self.outbox.set_meta("device_states", json.dumps(states))

    async def _heartbeat_loop(self) -> None:
        interval = self.loaded.agent.intervals.heartbeat_s
        while True:
            await self._in_db(self._save_states)
            await self.listeners.quiet_clears()
            try:
                await self.uplink.heartbeat(await self._in_db(self.heartbeat_payload))
            except UplinkError as exc:
                logger.warning("site=%s heartbeat failed: %s", self.site, exc)
            await asyncio.sleep(interval)

    async def _watchdog_loop(self, notifier: Notifier, interval: float) -> None:
        # The event loop itself answering is what systemd's watchdog should vouch for.
        while True:
            notifier.notify(watchdog="1", status=self.status_line())
            await asyncio.sleep(interval)

    def status_line(self) -> str:
        """One line for `systemctl status`."""
        states = list(self.device_state.values())
        ok = sum(s is DeviceState.OK for s in states)
        return f"{ok}/{len(states)} devices OK, outbox {self.outbox.depth()} event(s)"

    @staticmethod
    def _grader(device: Device) -> DeviceGrader:
        return grader_for(device)

    def _install(self, loaded: LoadedConfig) -> None:
        """Adopt a (re)loaded config: graders, device states, classes for new events."""
        self.loaded = loaded
        self.site = loaded.agent.site
        self.graders = {d.id: self._grader(d) for d in loaded.devices}
        old = self.device_state
        self.device_state = {d.id: old.get(d.id, DeviceState.UNKNOWN) for d in loaded.devices}
        self.device_state |= {b.id: DeviceState.DISABLED for b in loaded.bad_devices if b.id}
        self._states_dirty = True
        classes = {d.id: str(d.profile.device_class) for d in loaded.devices}
        self.outbox.set_device_classes(classes)

    async def _start_devices(self) -> None:
        """Build collectors, reconcile faults with the config, start one poll loop per device."""
        cfg = self.loaded.agent
        if any(d.profile.protocol == "snmp" for d in self.loaded.devices):
            await self.engine.warm_up()
        for d in self.loaded.devices:
            if not d.config.enabled:
                self._set_state(d.id, DeviceState.DISABLED)
                continue
            self.collectors[d.id] = make_collector(
                d.id,
                d.profile,
                d.target,
                snmp_engine=self.engine,
                known_hosts=cfg.state_dir / "known_hosts",
            )
        await self.reconcile()
        for d in self.loaded.devices:
            if d.id in self.collectors:
                task = asyncio.create_task(self._poll_loop(d, self.collectors[d.id]))
                self._poll_tasks[d.id] = task

    async def _stop_devices(self) -> None:
        tasks = list(self._poll_tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._poll_tasks.clear()
        for c in self.collectors.values():
            with contextlib.suppress(Exception):
                await c.close()
        self.collectors.clear()
        self._inflight.clear()

    async def reload(self) -> bool:
        """Re-read the config file (SIGHUP); keep the outbox and fault memory. False if refused."""
        path = self.loaded.path
        try:
            loaded = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            for line in exc.problems:
                logger.error(
                    "site=%s reload refused, keeping the running config: %s", self.site, line
                )
            return False
        if loaded.agent.state_dir != self.loaded.agent.state_dir:
            logger.error(
                "site=%s reload refused: state_dir changed (restart the agent to move the outbox)",
                self.site,
            )
            return False
        old_hq = self.loaded.agent.hq
        await self._stop_devices()
        self._install(loaded)
        if loaded.agent.hq != old_hq:
            await self.uplink.aclose()
            hq = loaded.agent.hq
            self.uplink = Uplink(
                hq.url, self.uplink.token, ca_file=hq.ca_file, timeout_s=hq.timeout_s
            )
        await self._start_devices()
        logger.info(
            "site=%s config reloaded: %d device(s), %d disabled",
            self.site,
            len(self.collectors),
            len(loaded.bad_devices),
        )
        return True

    async def run(self, stop: asyncio.Event, reload: asyncio.Event | None = None) -> None:
        """Run until `stop` is set, reloading the config whenever `reload` is set."""
        notifier = Notifier()
        # Blocking collectors (SSH, serial) run in threads; a few hung devices must not use up
        # the default pool (5 threads on a 1-core box) and delay every other device.
        workers = min(256, 8 + 2 * len(self.loaded.devices))
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="collect")
        )
        reload = reload or asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            await self._start_devices()
            tasks.append(asyncio.create_task(self._upload_loop(), name="upload"))
            tasks.append(asyncio.create_task(self._heartbeat_loop(), name="heartbeat"))
            if self.jobs is not None:
                tasks.append(asyncio.create_task(self.jobs.run(), name="jobs"))
            if self.loaded.agent.backups.enabled:
                tasks.append(asyncio.create_task(self.backups.run(), name="backups"))
            self._listener_tasks = await self.listeners.start()
            if notifier.watchdog_interval_s:
                wd = self._watchdog_loop(notifier, notifier.watchdog_interval_s)
                tasks.append(asyncio.create_task(wd, name="watchdog"))
            notifier.notify(ready="1", status=f"polling {len(self.collectors)} device(s)")
            logger.info(
                "site=%s agent %s polling %d device(s) as %s",
                self.site,
                __version__,
                len(self.collectors),
                socket.gethostname(),
            )
            while not stop.is_set():
                waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reload.wait())}
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in pending:
                    w.cancel()
                if reload.is_set() and not stop.is_set():
                    reload.clear()
                    notifier.notify(reloading="1", monotonic_usec=str(time.monotonic_ns() // 1000))
                    if await self.reload():
                        await self._restart_listeners()
                    notifier.notify(ready="1", status=self.status_line())
        finally:
            notifier.notify(stopping="1")
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()
            logger.info("site=%s agent stopped", self.site)

    async def _restart_listeners(self) -> None:
        for t in self._listener_tasks:
            t.cancel()
        await asyncio.gather(*self._listener_tasks, return_exceptions=True)
        self.listeners.close()
        self.listeners = Listeners(self)
        self._listener_tasks = await self.listeners.start()

    async def close(self) -> None:
        """Stop polling and release everything (the outbox last, after a final state save)."""
        for t in self._listener_tasks:
            t.cancel()
        await asyncio.gather(*self._listener_tasks, return_exceptions=True)
        self.listeners.close()
        await self._stop_devices()
        await asyncio.to_thread(self._save_states)
        self.engine.close()
        await self.uplink.aclose()
        self._db.shutdown(wait=True)
        self.outbox.close()
