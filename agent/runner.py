"""The agent daemon: its parts composed, and the loops that are the agent's own.

The parts (each taking what it uses through its constructor, none knowing this module):
`FaultSink` (agent.faults: fault memory, outbox, its database thread, the uploader's wake-up),
`DeviceSet` (agent.devices: collectors, graders, identification, poll loops), `BackupManager`
(agent.backups), `Listeners` (agent.listeners: traps, syslog, device logs) and `JobRunner`
(agent.jobs). Here: composing them, running them on one event loop with the upload, heartbeat
and watchdog loops, and reloading the config (SIGHUP) without losing the outbox or the fault
memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from agent import __version__
from agent.backups import BackupManager
from agent.config import Device, LoadedConfig, load_config
from agent.devices import DeviceSet
from agent.errors import ConfigError, UplinkError, UplinkRejected
from agent.faults import FaultSink
from agent.health import host_figures
from agent.jobs import JobRunner
from agent.listeners import Listeners
from agent.outbox import Outbox
from agent.sdnotify import Notifier
from agent.shipping import ship
from agent.state import LAST_UPLOAD_KEY, StateDir
from agent.uplink import Uplink, backoff_delay
from checks.tracker import FaultChange, FaultTracker
from collectors.base import Collector, Reading
from protocol.wire import DeviceInfo, DeviceState, FaultEvent, Heartbeat

logger = logging.getLogger(__name__)


class AgentRuntime:
    """The running agent: its parts, and the upload, heartbeat and watchdog loops."""

    def __init__(self, loaded: LoadedConfig, token: str | None) -> None:
        cfg = loaded.agent
        state = StateDir(cfg.state_dir)
        self.faults = FaultSink(Outbox(state.outbox, {}, cfg.outbox.max_events), cfg.site)
        self.devices = DeviceSet(self.faults, loaded)
        self._uplink = Uplink(cfg.hq.url, token, ca_file=cfg.hq.ca_file, timeout_s=cfg.hq.timeout_s)
        self.backups = BackupManager(self.faults, self.devices, self._uplink, cfg)
        self.listeners = Listeners(self.faults, loaded, self.devices.collectors)
        self.jobs: JobRunner | None = None
        if cfg.jobs.enabled:
            self.jobs = JobRunner(self.faults, self.devices, self.backups, self._uplink, cfg)
        self._listener_tasks: list[asyncio.Task[None]] = []

    @property
    def uplink(self) -> Uplink:
        """The HQ uplink."""
        return self._uplink

    @uplink.setter
    def uplink(self, uplink: Uplink) -> None:
        # The parts that talk to HQ get the new one too (a reload naming another HQ).
        self._uplink = self.backups.uplink = uplink
        if self.jobs is not None:
            self.jobs.uplink = uplink

    # ---- what the parts hold, for those who look at a running agent (tests, tools) ------

    @property
    def loaded(self) -> LoadedConfig:
        """The config in force."""
        return self.devices.loaded

    @property
    def site(self) -> str:
        """The site's name."""
        return self.loaded.agent.site

    @property
    def tracker(self) -> FaultTracker:
        """The fault memory."""
        return self.faults.tracker

    @property
    def outbox(self) -> Outbox:
        """The outbox."""
        return self.faults.outbox

    @property
    def device_state(self) -> dict[str, DeviceState]:
        """Each device's state."""
        return self.devices.states

    @property
    def collectors(self) -> dict[str, Collector]:
        """The polling collectors by device id."""
        return self.devices.collectors

    async def commit(self, changes: list[FaultChange]) -> list[FaultEvent]:
        """Write fault changes to disk and wake the uploader (FaultSink.commit)."""
        return await self.faults.commit(changes)

    async def identify(self, device: Device) -> Device | None:
        """Identify a device without a profile (DeviceSet.identify)."""
        return await self.devices.identify(device)

    async def poll_once(
        self, device: Device, collector: Collector, budget: float
    ) -> list[Reading] | None:
        """Poll one device once and grade it (DeviceSet.poll_once)."""
        return await self.devices.poll_once(device, collector, budget)

    # ---- the agent's own loops --------------------------------------------------------

    async def upload_once(self) -> int:
        """Send one batch; return how many events left the outbox (stored by HQ, or refused by
        it for good and set aside)."""
        limit = self.loaded.agent.outbox.upload_batch
        shipped = await ship(self.outbox, self.uplink, limit, self.faults.in_db)
        if shipped.requests:
            await self.faults.in_db(self.outbox.set_meta, LAST_UPLOAD_KEY, str(time.time()))
        return shipped.done

    async def _upload_loop(self) -> None:
        attempt = 0
        while True:
            interval = self.loaded.agent.intervals.upload_s
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
            self.faults.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.faults.wake.wait(), timeout=interval)

    def heartbeat_payload(self) -> Heartbeat:
        """What the agent reports about itself."""
        host = host_figures(self.loaded.agent.state_dir) | self.listeners.suppressed()
        return Heartbeat(
            agent_version=__version__,
            sent_at=datetime.now(UTC),
            outbox_depth=self.outbox.depth(),
            dropped_events=self.outbox.dropped(),
            last_seq=self.outbox.last_seq(),
            set_aside_events=self.outbox.set_aside_count(),
            devices=dict(self.devices.states),
            host=host,
            device_info={
                d.id: DeviceInfo(device_class=str(d.profile.device_class), profile=d.profile.name)
                for d in self.devices.devices
            },
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.faults.in_db(self.devices.save_states)
            await self.listeners.quiet_clears()
            try:
                await self.uplink.heartbeat(await self.faults.in_db(self.heartbeat_payload))
            except UplinkError as exc:
                logger.warning("site=%s heartbeat failed: %s", self.site, exc)
            await asyncio.sleep(self.loaded.agent.intervals.heartbeat_s)

    async def _watchdog_loop(self, notifier: Notifier, interval: float) -> None:
        # The event loop itself answering is what systemd's watchdog should vouch for.
        while True:
            notifier.notify(watchdog="1", status=self.status_line())
            await asyncio.sleep(interval)

    def status_line(self) -> str:
        """One line for `systemctl status`."""
        states = list(self.devices.states.values())
        ok = sum(s is DeviceState.OK for s in states)
        return f"{ok}/{len(states)} devices OK, outbox {self.outbox.depth()} event(s)"

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
        await self.devices.stop()
        self.devices.install(loaded)
        self.faults.site = loaded.agent.site
        self.backups.config = loaded.agent
        if self.jobs is not None:
            self.jobs.config = loaded.agent
        if loaded.agent.hq != old_hq:
            await self.uplink.aclose()
            hq = loaded.agent.hq
            self.uplink = Uplink(
                hq.url, self.uplink.token, ca_file=hq.ca_file, timeout_s=hq.timeout_s
            )
        await self.devices.start()
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
            await self.devices.start()
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

    async def _stop_listeners(self) -> None:
        for t in self._listener_tasks:
            t.cancel()
        await asyncio.gather(*self._listener_tasks, return_exceptions=True)
        self._listener_tasks = []
        self.listeners.close()

    async def _restart_listeners(self) -> None:
        await self._stop_listeners()
        self.listeners = Listeners(self.faults, self.loaded, self.devices.collectors)
        self._listener_tasks = await self.listeners.start()

    async def close(self) -> None:
        """Stop polling and release everything (the outbox last, after a final state save)."""
        await self._stop_listeners()
        await self.devices.stop()
        await asyncio.to_thread(self.devices.save_states)
        self.devices.close()
        await self.uplink.aclose()
        self.faults.close()
