"""Device logs read over SSH or a serial port (MCU error/call logs, PBX alarm history): only
new lines.

A device prints its whole log (or its newest part) every time it is asked. `LogCursors` keeps,
per device and log, the last few lines already seen, in a JSON state file the agent owns; the
next read yields only the lines after them. When those lines are gone (log cleared or rotated)
the whole output is new. The first read of a log only sets the cursor: history is not replayed
as fresh faults.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from collectors.base import Reading
from collectors.profiles import LogCommand

logger = logging.getLogger(__name__)

TAIL_LINES = 5  # lines remembered per log to find the place again
MAX_NEW_LINES = 5000  # a larger burst is cut (oldest dropped), and the cut is reported


class CommandRunner(Protocol):
    """Runs commands on a device (SshCollector.run_commands, SerialCollector.run_commands)."""

    async def run_commands(self, commands: list[str]) -> list[str]:
        """The outputs of the commands, in order."""
        ...


class LogCursors:
    """Where each device log was last read up to, persisted in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._data: dict[str, list[str]] = self._load()

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            logger.warning("log cursor file %s unreadable, starting anew: %s", self.path, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: [str(x) for x in v] for k, v in data.items() if isinstance(v, list)}

    def new_lines(self, device_id: str, log: str, output: str) -> tuple[list[str], bool]:
        """The lines of `output` after the cursor, and whether this was the first read.

        Moves the cursor and saves it.
        """
        key = f"{device_id}/{log}"
        lines = [line for line in output.replace("\r\n", "\n").split("\n") if line.strip()]
        with self._lock:
            tail = self._data.get(key)
            first = tail is None
            new = [] if tail is None else _after(lines, tail)
            if lines:
                self._data[key] = lines[-TAIL_LINES:]
            self._save()
        return new, first

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self._data, f)
        os.replace(tmp, self.path)


def _after(lines: list[str], tail: list[str]) -> list[str]:
    """Lines after the last occurrence of `tail` (or of its longest suffix found)."""
    for size in range(len(tail), 0, -1):
        want = tail[-size:]
        for end in range(len(lines), size - 1, -1):
            if lines[end - size : end] == want:
                return lines[end:]
    return lines  # the remembered lines are gone: the log was cleared or rotated


class LogCollector:
    """Runs a profile's log commands and returns only their new lines as log Readings."""

    def __init__(
        self,
        device_id: str,
        runner: CommandRunner,
        logs: list[LogCommand],
        cursors: LogCursors,
    ) -> None:
        self.device_id = device_id
        self.runner = runner
        self.logs = logs
        self.cursors = cursors

    async def collect(self) -> list[Reading]:
        """New lines of every log since the last read (none on the very first read)."""
        if not self.logs:
            return []
        outputs = await self.runner.run_commands([log.command for log in self.logs])
        readings: list[Reading] = []
        for log, output in zip(self.logs, outputs, strict=True):
            new, first = self.cursors.new_lines(self.device_id, log.name, output)
            if first:
                logger.info(
                    "device=%s log %s: cursor set, history skipped", self.device_id, log.name
                )
            if len(new) > MAX_NEW_LINES:
                logger.warning(
                    "device=%s log %s: %d new lines, keeping the newest %d",
                    self.device_id,
                    log.name,
                    len(new),
                    MAX_NEW_LINES,
                )
                new = new[-MAX_NEW_LINES:]
            readings += [
                Reading(self.device_id, log.name, line, component="", kind="log") for line in new
            ]
        return readings

    async def close(self) -> None:
        """Nothing to release."""


SshLogCollector = LogCollector  # the name it was introduced under
