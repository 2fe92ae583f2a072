"""The PBX maintenance CLI: its state (trunks, alarms, running config) and command output.

Output formats are what the `generic_pbx_ssh` profile parses:
    show alarms   "  3  MAJOR     TRUNK-2      E1 loss of signal"
    show trunks   "TRUNK-1   E1   UP     30/30"
`clear alarms` (the profile's `clear_alarms` action) empties the alarm list; the conditions
behind the alarms stay (a trunk stays down), and their alarms come back when the conditions
change (set, clear, reset), as a PBX raises a standing fault again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from simulators.config import Alarm, PbxCli, PbxCondition, SshDeviceSpec, Trunk, TrunkState
from simulators.devices import ConditionValue, SimDevice

UNKNOWN_COMMAND = "% Unknown command"
EXIT_COMMANDS = frozenset({"exit", "quit", "logout"})
_PAGER = re.compile(r"^terminal length \d+$")


@dataclass(frozen=True, slots=True)
class PbxState:
    """Everything the CLI shows, for one set of active conditions."""

    trunks: tuple[tuple[Trunk, TrunkState], ...]
    alarms: tuple[Alarm, ...]
    running_config: str


def render_config(running_config: str, last_change: str, conditions: list[PbxCondition]) -> str:
    """The running config with the conditions' line replacements, additions and timestamp."""
    replace: dict[str, str] = {}
    append: list[str] = []
    for cond in conditions:
        replace.update({old.strip(): new for old, new in cond.config_replace.items()})
        append.extend(cond.config_append)
        last_change = cond.last_change or last_change
    lines = [replace.get(line.strip(), line) for line in running_config.splitlines()]
    end = max((i for i, line in enumerate(lines) if line.strip() == "end"), default=len(lines))
    lines[end:end] = append
    return "\n".join(lines).replace("{last_change}", last_change)


def render_alarms(alarms: tuple[Alarm, ...]) -> list[str]:
    """`show alarms` output lines."""
    lines = ["ID  SEVERITY  COMPONENT    DESCRIPTION"]
    if not alarms:
        return [*lines, "No active alarms"]
    for a in alarms:
        lines.append(f"{a.id:>3}  {a.severity:<10}{a.component:<13}{a.description}")
    return lines


def render_trunks(trunks: tuple[tuple[Trunk, TrunkState], ...]) -> list[str]:
    """`show trunks` output lines."""
    lines = ["TRUNK     TYPE STATE  CHANNELS"]
    for trunk, state in trunks:
        busy = trunk.channels if state == "UP" else 0
        lines.append(f"{trunk.name:<10}{trunk.type:<5}{state:<7}{busy}/{trunk.channels}")
    return lines


class PbxDevice(SimDevice):
    """A PBX whose CLI state follows the active conditions."""

    protocol = "ssh"
    spec: SshDeviceSpec

    def __init__(self, spec: SshDeviceSpec) -> None:
        super().__init__(spec)
        assert isinstance(spec.cli, PbxCli)
        self.cli: PbxCli = spec.cli
        self.prompt = f"{spec.hostname}> "
        self.banner = f"{spec.hostname} maintenance CLI"
        self.state = self._state([])

    def _state(self, active: list[tuple[str, ConditionValue]]) -> PbxState:
        cli = self.cli
        trunk_states: dict[str, TrunkState] = {t.name: "UP" for t in cli.trunks}
        alarms: dict[int, Alarm] = {a.id: a for a in cli.alarms}
        conditions = [self.spec.conditions[name] for name, _ in active]
        for cond in conditions:
            trunk_states.update(cond.trunks)
            alarms.update({a.id: a for a in cond.alarms})
        config = render_config(cli.running_config, cli.last_change, conditions)
        return PbxState(
            trunks=tuple((t, trunk_states[t.name]) for t in cli.trunks),
            alarms=tuple(alarms[i] for i in sorted(alarms)),
            running_config=config,
        )

    def _rebuild(self, active: list[tuple[str, ConditionValue]]) -> None:
        self.state = self._state(active)

    def run(self, command: str) -> tuple[str, bool]:
        """Output of one CLI command (lines ended by CRLF) and whether it was known."""
        command = " ".join(command.split())
        state = self.state
        if not command or _PAGER.match(command):
            return "", True
        if command == "clear alarms":
            lines = [self._clear_alarms()]
        elif command == "show alarms":
            lines = render_alarms(state.alarms)
        elif command == "show trunks":
            lines = render_trunks(state.trunks)
        elif command in ("show running-config", "show run"):
            lines = ["Building configuration...", "", *state.running_config.splitlines()]
        else:
            return UNKNOWN_COMMAND + "\r\n", False
        return "\r\n".join(lines) + "\r\n", True

    def _clear_alarms(self) -> str:
        """Empty the alarm list (until the conditions change); the CLI's answer."""
        with self._lock:  # not between a condition change and its new state
            count = len(self.state.alarms)
            self.state = replace(self.state, alarms=())
        if not count:
            return "No active alarms to clear"
        return f"{count} alarm{'s' if count != 1 else ''} cleared"
