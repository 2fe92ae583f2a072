"""Faults that arrive rather than being polled: SNMP traps, syslog, and device log files.

Each source feeds the same fault sink as polling: collectors receive and decode (what a trap
says, the new lines of a log), checks grade (the profile's trap rules and log patterns). Trap
and syslog sources are matched to devices by the address the device is configured with
(resolved once at start). A reload builds new Listeners from the new config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

from agent.config import Device, LoadedConfig
from agent.faults import FaultSink
from agent.state import StateDir
from checks.logpatterns import LogPatternChecker
from checks.traps import TrapJudge
from collectors.base import Collector, Reading
from collectors.errors import CollectorError
from collectors.logs import LogCollector, LogCursors
from collectors.syslog import SyslogListener, SyslogSettings
from collectors.traps import TrapDevice, TrapReceiver, TrapSettings, TrapV3User

logger = logging.getLogger(__name__)


def _address(device: Device) -> str | None:
    host = getattr(device.target, "host", None) or getattr(device.backup_target, "host", None)
    if not host:
        return None
    try:
        return str(socket.getaddrinfo(host, None)[0][4][0])
    except OSError:
        return None


class Listeners:
    """Trap receiver, syslog listener and device-log readers of one agent run."""

    def __init__(
        self, faults: FaultSink, loaded: LoadedConfig, collectors: Mapping[str, Collector]
    ) -> None:
        """`collectors`: the polling collectors by device id (device logs are read through
        the SSH and serial ones)."""
        self.faults = faults
        self.loaded = loaded
        self.site = loaded.agent.site
        self.collectors = collectors
        self.traps: TrapReceiver | None = None
        self.syslog: SyslogListener | None = None
        self.checkers: dict[str, LogPatternChecker] = {}
        self.cursors = LogCursors(StateDir(loaded.agent.state_dir).log_cursors)
        self.trap_port: int | None = None
        self.syslog_port: int | None = None

    async def start(self) -> list[asyncio.Task[None]]:
        """Bind what the config enables; the tasks that feed the tracker."""
        cfg = self.loaded.agent
        devices = [d for d in self.loaded.devices if d.config.enabled]
        self.checkers = {
            d.id: LogPatternChecker(d.profile.log_patterns)
            for d in devices
            if d.profile.log_patterns
        }
        tasks: list[asyncio.Task[None]] = []
        by_address = {a: d for d in devices if (a := await asyncio.to_thread(_address, d))}
        if cfg.traps.enabled:
            secrets: dict[str, Any] = self.loaded.trap_secrets
            settings = TrapSettings(
                host=cfg.traps.host,
                port=cfg.traps.port,
                communities=secrets.get("communities", []),
                v3_users=[TrapV3User.model_validate(u) for u in secrets.get("v3_users", [])],
                rate_per_s=cfg.traps.rate_per_s,
                burst=cfg.traps.burst,
            )
            trap_devices = {
                a: TrapDevice(d.id, d.profile.traps)
                for a, d in by_address.items()
                if d.profile.traps
            }
            judge = TrapJudge({d.id: d.profile.traps for d in by_address.values()})
            try:
                self.traps = TrapReceiver(settings, trap_devices)
                self.trap_port = await self.traps.start()
                logger.info(
                    "site=%s SNMP trap receiver on udp/%d for %d device(s)",
                    self.site,
                    self.trap_port,
                    len(trap_devices),
                )
                trap_loop = self._trap_loop(self.traps, judge)
                tasks.append(asyncio.create_task(trap_loop, name="traps"))
            except CollectorError as exc:
                logger.error("site=%s SNMP trap receiver not started: %s", self.site, exc)
                self.traps = None
        if cfg.syslog.enabled:
            self.syslog = SyslogListener(
                SyslogSettings(host=cfg.syslog.host, port=cfg.syslog.port),
                {a: d.id for a, d in by_address.items()},
            )
            try:
                self.syslog_port = await self.syslog.start()
                logger.info("site=%s syslog listener on udp/%d", self.site, self.syslog_port)
                tasks.append(asyncio.create_task(self._syslog_loop(self.syslog), name="syslog"))
            except (CollectorError, OSError) as exc:
                logger.error("site=%s syslog listener not started: %s", self.site, exc)
                self.syslog = None
        for d in devices:
            log_commands = self._log_commands(d)
            runner = self.collectors.get(d.id)
            if log_commands and runner is not None and hasattr(runner, "run_commands"):
                reader = LogCollector(d.id, runner, log_commands, self.cursors)  # type: ignore[arg-type]
                tasks.append(asyncio.create_task(self._log_loop(d, reader), name=f"logs-{d.id}"))
        return tasks

    @staticmethod
    def _log_commands(device: Device) -> list[Any]:
        source = device.profile.ssh if device.profile.protocol == "ssh" else device.profile.serial
        return list(getattr(source, "log_commands", []) or [])

    async def _grade_lines(self, device_id: str, lines: list[Reading]) -> None:
        checker = self.checkers.get(device_id)
        if checker is None:
            return
        view = self.faults.tracker.view(device_id)
        await self.faults.record(device_id, checker.evaluate(lines, view))

    async def _trap_loop(self, rx: TrapReceiver, judge: TrapJudge) -> None:
        tracker = self.faults.tracker
        while True:
            batch = await rx.next_batch(max_items=200)
            changes = []
            for trap in batch:
                changes += tracker.apply(trap.device_id, [judge.finding(trap)], trap.received_at)
            await self.faults.commit(changes)

    async def _syslog_loop(self, listener: SyslogListener) -> None:
        while True:
            readings = await listener.next_batch()
            by_device: dict[str, list[Reading]] = {}
            for r in readings:
                by_device.setdefault(r.device, []).append(r)
            for device_id, lines in by_device.items():
                await self._grade_lines(device_id, lines)

    async def _log_loop(self, device: Device, reader: LogCollector) -> None:
        interval = self.loaded.agent.logs.interval_s
        while True:
            try:
                lines = await asyncio.wait_for(reader.collect(), timeout=interval)
                await self._grade_lines(device.id, lines)
            except (CollectorError, TimeoutError) as exc:
                logger.warning("site=%s device=%s log read failed: %s", self.site, device.id, exc)
            await asyncio.sleep(interval)

    async def quiet_clears(self) -> None:
        """Let log patterns with clear_after_s clear when their lines stopped coming."""
        now = time.time()
        for device_id, checker in self.checkers.items():
            view = self.faults.tracker.view(device_id)
            await self.faults.record(device_id, checker.evaluate([], view, now), now)

    def suppressed(self) -> dict[str, float]:
        """Counts of what storm protection dropped, for the heartbeat."""
        out: dict[str, float] = {}
        if self.traps is not None:
            out["traps_suppressed"] = float(self.traps.suppressed_total())
        if self.syslog is not None:
            out["syslog_suppressed"] = float(
                sum(
                    c.rate_limited + getattr(c, "queue_full", 0)
                    for c in self.syslog.counters().values()
                )
            )
        return out

    def close(self) -> None:
        """Unbind the sockets."""
        for thing in (self.traps, self.syslog):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
