"""Faults that arrive rather than being polled: SNMP traps, syslog, and device log files.

Each source feeds the same fault tracker and outbox as polling. Trap and syslog sources are
matched to devices by the address the device is configured with (resolved once at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from checks.logpatterns import LogPatternChecker
from collectors.base import Reading
from collectors.errors import CollectorError
from collectors.logs import LogCollector, LogCursors
from collectors.syslog import SyslogListener, SyslogSettings
from collectors.traps import TrapDevice, TrapReceiver, TrapSettings, TrapV3User

if TYPE_CHECKING:
    from agent.config import Device
    from agent.runner import AgentRuntime

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

    def __init__(self, runtime: AgentRuntime) -> None:
        self.rt = runtime
        self.traps: TrapReceiver | None = None
        self.syslog: SyslogListener | None = None
        self.checkers: dict[str, LogPatternChecker] = {}
        self.cursors = LogCursors(runtime.loaded.agent.state_dir / "log_cursors.json")
        self.trap_port: int | None = None
        self.syslog_port: int | None = None

    async def start(self) -> list[asyncio.Task[None]]:
        """Bind what the config enables; the tasks that feed the tracker."""
        cfg = self.rt.loaded.agent
        devices = [d for d in self.rt.loaded.devices if d.config.enabled]
        self.checkers = {
            d.id: LogPatternChecker(d.profile.log_patterns)
            for d in devices
            if d.profile.log_patterns
        }
        tasks: list[asyncio.Task[None]] = []
        by_address = {a: d for d in devices if (a := await asyncio.to_thread(_address, d))}
        if cfg.traps.enabled:
            secrets: dict[str, Any] = self.rt.loaded.trap_secrets
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
            try:
                self.traps = TrapReceiver(settings, trap_devices)
                self.trap_port = await self.traps.start()
                logger.info(
                    "site=%s SNMP trap receiver on udp/%d for %d device(s)",
                    self.rt.site,
                    self.trap_port,
                    len(trap_devices),
                )
                tasks.append(asyncio.create_task(self._trap_loop(self.traps), name="traps"))
            except CollectorError as exc:
                logger.error("site=%s SNMP trap receiver not started: %s", self.rt.site, exc)
                self.traps = None
        if cfg.syslog.enabled:
            self.syslog = SyslogListener(
                SyslogSettings(host=cfg.syslog.host, port=cfg.syslog.port),
                {a: d.id for a, d in by_address.items()},
            )
            try:
                self.syslog_port = await self.syslog.start()
                logger.info("site=%s syslog listener on udp/%d", self.rt.site, self.syslog_port)
                tasks.append(asyncio.create_task(self._syslog_loop(self.syslog), name="syslog"))
            except (CollectorError, OSError) as exc:
                logger.error("site=%s syslog listener not started: %s", self.rt.site, exc)
                self.syslog = None
        for d in devices:
            log_commands = self._log_commands(d)
            runner = self.rt.collectors.get(d.id)
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
        view = self.rt.tracker.view(device_id)
        changes = self.rt.tracker.apply(device_id, checker.evaluate(lines, view))
        await self.rt.commit(changes)

    async def _trap_loop(self, rx: TrapReceiver) -> None:
        while True:
            batch = await rx.next_batch(max_items=200)
            changes = []
            for ev in batch:
                changes += self.rt.tracker.apply(ev.device_id, [ev.finding], ev.received_at)
            await self.rt.commit(changes)

    async def _syslog_loop(self, listener: SyslogListener) -> None:
        while True:
            readings = await listener.next_batch()
            by_device: dict[str, list[Reading]] = {}
            for r in readings:
                by_device.setdefault(r.device, []).append(r)
            for device_id, lines in by_device.items():
                await self._grade_lines(device_id, lines)

    async def _log_loop(self, device: Device, reader: LogCollector) -> None:
        interval = self.rt.loaded.agent.logs.interval_s
        while True:
            try:
                lines = await asyncio.wait_for(reader.collect(), timeout=interval)
                await self._grade_lines(device.id, lines)
            except (CollectorError, TimeoutError) as exc:
                logger.warning(
                    "site=%s device=%s log read failed: %s", self.rt.site, device.id, exc
                )
            await asyncio.sleep(interval)

    async def quiet_clears(self) -> None:
        """Let log patterns with clear_after_s clear when their lines stopped coming."""
        now = time.time()
        for device_id, checker in self.checkers.items():
            view = self.rt.tracker.view(device_id)
            changes = self.rt.tracker.apply(device_id, checker.evaluate([], view, now), now)
            await self.rt.commit(changes)

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
