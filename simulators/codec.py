"""A video-conference codec's SSH CLI: error and call logs, version and running config.

    show log errors   "2026-11-16 09:14:02 ERROR H.323 gatekeeper registration lost"
    show log calls    "2026-11-16 09:20:11 CALL id=1042 dir=out remote=... result=completed"
    show version      the `version` text of the station file
    show conference ports   "Ports in use:      18" / "Ports licensed:    40"
    show alarms       as on the PBX: "  2  MAJOR     E1-1         E1 loss of signal"
    show running-config / show configuration / show config

Logs only grow: a condition's log lines are appended, stamped with the current UTC time, each
time the condition is set (clearing it or a reset does not erase history, as on a device);
the oldest lines drop off past `log_capacity`.
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass

from simulators.config import Alarm, CodecCli, SerialDeviceSpec, SnmpDeviceSpec, SshDeviceSpec
from simulators.devices import ConditionValue, SimDevice
from simulators.pbx import UNKNOWN_COMMAND, render_alarms, render_config

_PAGER = re.compile(r"^terminal length \d+$")


def stamp(now: float | None = None) -> str:
    """A log timestamp (UTC): 2026-11-16 09:14:02."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))


@dataclass(frozen=True, slots=True)
class CodecState:
    """Everything the CLI shows, for one set of active conditions."""

    error_log: tuple[str, ...]
    call_log: tuple[str, ...]
    running_config: str
    alarms: tuple[Alarm, ...]
    ports_in_use: int


class CodecDevice(SimDevice):
    """A video codec whose logs and configuration follow the active conditions."""

    protocol = "ssh"
    spec: SshDeviceSpec

    def __init__(self, spec: SshDeviceSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.cli, CodecCli)
        self.cli: CodecCli = spec.cli
        self.prompt = f"{spec.hostname}> "
        self.banner = f"{self.cli.version.splitlines()[0]}"
        self._errors: deque[str] = deque(self.cli.error_log, maxlen=self.cli.log_capacity)
        self._calls: deque[str] = deque(self.cli.call_log, maxlen=self.cli.log_capacity)
        self._previous: set[str] = set()
        self.state = self._state([])

    def replica(self, spec: SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec) -> CodecDevice:
        """A codec with the same data under another id and port."""
        assert isinstance(spec, SshDeviceSpec)
        return CodecDevice(spec)

    def _state(self, active: list[tuple[str, ConditionValue]]) -> CodecState:
        names = [name for name, _ in active]
        now = stamp()
        for name in names:
            if name not in self._previous:  # newly set: its events happen now
                cond = self.spec.conditions[name]
                self._errors.extend(f"{now} {line}" for line in cond.error_log)
                self._calls.extend(f"{now} {line}" for line in cond.call_log)
        self._previous = set(names)
        conditions = [self.spec.conditions[name] for name in names]
        config = render_config(self.cli.running_config, self.cli.last_change, conditions)
        alarms = {a.id: a for a in self.cli.alarms}
        ports = self.cli.ports_in_use
        for cond in conditions:
            alarms.update({a.id: a for a in cond.alarms})
            ports = cond.ports_in_use if cond.ports_in_use is not None else ports
        return CodecState(
            tuple(self._errors),
            tuple(self._calls),
            config,
            tuple(alarms[i] for i in sorted(alarms)),
            ports,
        )

    def _rebuild(self, active: list[tuple[str, ConditionValue]]) -> None:
        self.state = self._state(active)

    def run(self, command: str) -> tuple[str, bool]:
        """Output of one CLI command (lines ended by CRLF) and whether it was known."""
        command = " ".join(command.split())
        state = self.state
        if not command or _PAGER.match(command):
            return "", True
        if command == "show log errors":
            lines = list(state.error_log) or ["No errors logged"]
        elif command == "show log calls":
            lines = list(state.call_log) or ["No calls logged"]
        elif command == "show version":
            lines = self.cli.version.splitlines()
        elif command == "show alarms":
            lines = render_alarms(state.alarms)
        elif command == "show conference ports" and self.cli.ports_licensed:
            lines = [
                f"Ports in use:      {state.ports_in_use}",
                f"Ports licensed:    {self.cli.ports_licensed}",
            ]
        elif command in ("show running-config", "show run", "show configuration", "show config"):
            lines = ["Building configuration...", "", *state.running_config.splitlines()]
        else:
            return UNKNOWN_COMMAND + "\r\n", False
        return "\r\n".join(lines) + "\r\n", True
