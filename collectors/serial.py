"""Serial line collector (pyserial): an ASCII request/response status protocol.

The port stays open between polls (opened exclusively, so no other program can talk over us) and
is reopened on the next poll after any port error (a USB adapter unplugged, a console server
restarted). pyserial blocks, so every poll runs in a worker thread.

One poll: drop stale input, send `request + terminator`, read lines until one starts with the
profile's `response_prefix` and carries KEY=VALUE tokens, or until timeout_s. Other lines (echo,
line noise, banners) are skipped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import termios
import threading
import time

import serial

from collectors import values
from collectors.base import Reading
from collectors.errors import DeviceUnreachable, DeviceUnreadable
from collectors.profiles import SerialSource
from collectors.targets import SerialTarget

logger = logging.getLogger(__name__)

MAX_DUMP_BYTES = 2_000_000  # a configuration or log dump larger than this is a runaway
MAX_LINE_BYTES = 4096  # a "line" longer than this is noise; keep reading for a real one
# pyserial raises SerialException or OSError, but lets termios.error from tcflush through.
_PORT_ERRORS = (serial.SerialException, OSError, termios.error)


def parse_tokens(text: str) -> dict[str, str]:
    """KEY=VALUE tokens of a status line (separated by whitespace); other words are ignored."""
    tokens: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key:
            tokens[key] = value
    return tokens


class SerialCollector:
    """Asks a serial status line from a device and maps its KEY=VALUE fields to Readings."""

    def __init__(self, device_id: str, target: SerialTarget, source: SerialSource) -> None:
        self.device_id = device_id
        self.target = target
        self.source = source
        self.garbage_lines = 0  # lines skipped since start (noise, echo, unknown replies)
        self.garbage_bytes = 0
        self._port: serial.Serial | None = None
        self._lock = threading.Lock()  # one conversation on the line at a time
        self._fields = {f.key: f for f in source.fields}

    # -- blocking part (worker thread) --------------------------------------------------------

    def _open(self) -> serial.Serial:
        if self._port is not None and self._port.is_open:
            return self._port
        t = self.target
        try:
            port = serial.Serial(
                port=t.port,
                baudrate=t.baudrate,
                bytesize=t.bytesize,
                parity=t.parity,
                stopbits=t.stopbits,
                timeout=t.timeout_s,
                write_timeout=t.timeout_s,
                exclusive=True,
            )
        except (*_PORT_ERRORS, ValueError) as exc:
            raise DeviceUnreachable(f"serial port {t.port} cannot be opened: {exc}") from None
        logger.info("%s: opened serial port %s", self.device_id, t.port)
        self._port = port
        return port

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except _PORT_ERRORS as exc:
                logger.debug("%s: closing serial port: %s", self.device_id, exc)

    def _poll(self) -> str:
        """Blocking: one request/response exchange; returns the status line's text."""
        with self._lock:
            port = self._open()
            try:
                return self._exchange(port)
            except _PORT_ERRORS as exc:
                # The adapter went away or the far end closed: reopen on the next poll.
                self._drop_port()
                raise DeviceUnreachable(f"serial port {self.target.port} failed: {exc}") from None

    def _exchange(self, port: serial.Serial) -> str:
        src = self.source
        port.reset_input_buffer()
        port.write((src.request + src.terminator).encode("ascii", errors="replace"))
        port.flush()
        deadline = time.monotonic() + self.target.timeout_s
        received = 0
        garbage_lines = 0
        garbage_bytes = 0
        pending = bytearray()
        while True:
            while b"\n" in pending or b"\r" in pending:
                cut = min(i for i in (pending.find(b"\n"), pending.find(b"\r")) if i >= 0)
                raw, pending = bytes(pending[:cut]), pending[cut + 1 :]
                text = raw.decode("ascii", errors="replace").strip()
                if not text:
                    continue
                if self._is_status(text):
                    if garbage_lines:
                        self._count_garbage(garbage_lines, garbage_bytes)
                    return text[len(src.response_prefix) :]
                garbage_lines += 1
                garbage_bytes += len(raw)
            if len(pending) > MAX_LINE_BYTES:
                garbage_lines += 1
                garbage_bytes += len(pending)
                pending.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            port.timeout = remaining
            chunk = port.read(max(1, port.in_waiting))
            received += len(chunk)
            pending += chunk
        garbage_bytes += len(pending)
        self._count_garbage(garbage_lines + (1 if pending else 0), garbage_bytes)
        if not received:
            raise DeviceUnreachable(
                f"no answer on serial port {self.target.port} within {self.target.timeout_s:g}s"
            )
        raise DeviceUnreadable(
            f"no valid {src.response_prefix.strip() or 'status'} line on serial port "
            f"{self.target.port} within {self.target.timeout_s:g}s "
            f"({received} bytes, {garbage_lines} other lines)"
        )

    def _is_status(self, text: str) -> bool:
        prefix = self.source.response_prefix
        if not text.startswith(prefix) or text == self.source.request:
            return False
        return bool(parse_tokens(text[len(prefix) :]))

    def _count_garbage(self, lines: int, nbytes: int) -> None:
        self.garbage_lines += lines
        self.garbage_bytes += nbytes
        if lines:
            logger.debug(
                "%s: skipped %d non-status lines (%d bytes) on %s",
                self.device_id,
                lines,
                nbytes,
                self.target.port,
            )

    def _dump(self, commands: list[str]) -> list[str]:
        """Blocking: run text-dump commands (config, logs) one after the other."""
        with self._lock:
            port = self._open()
            try:
                return [self._read_dump(port, command) for command in commands]
            except _PORT_ERRORS as exc:
                self._drop_port()
                raise DeviceUnreachable(f"serial port {self.target.port} failed: {exc}") from None

    def _read_dump(self, port: serial.Serial, command: str) -> str:
        """Send a command; collect lines until the end marker, or quiet after the first bytes."""
        src = self.source
        end = re.compile(src.dump_end)
        port.reset_input_buffer()
        port.write((command + src.terminator).encode("ascii", errors="replace"))
        port.flush()
        started = time.monotonic()
        last_data = started
        lines: list[str] = []
        pending = bytearray()
        received = 0
        while True:
            while b"\n" in pending:
                cut = pending.find(b"\n")
                raw, pending = bytes(pending[:cut]), pending[cut + 1 :]
                text = raw.decode("utf-8", errors="replace").rstrip("\r")
                if end.match(text.strip()):
                    return "\n".join(lines) + "\n"
                if text.strip() != command:  # the device's echo of our command
                    lines.append(text)
            now = time.monotonic()
            if received and now - last_data >= src.dump_idle_s:
                break
            if now - started >= self.target.timeout_s * (10 if received else 1):
                break
            if received > MAX_DUMP_BYTES:
                raise DeviceUnreadable(
                    f"serial dump of {command!r} on {self.target.port} exceeds "
                    f"{MAX_DUMP_BYTES} bytes"
                )
            port.timeout = 0.1
            chunk = port.read(max(1, port.in_waiting))
            if chunk:
                received += len(chunk)
                last_data = time.monotonic()
                pending += chunk
        if not received:
            raise DeviceUnreachable(
                f"no answer to {command!r} on serial port {self.target.port} "
                f"within {self.target.timeout_s:g}s"
            )
        if pending:
            lines.append(pending.decode("utf-8", errors="replace").rstrip("\r"))
        return "\n".join(lines) + "\n"

    # -- async interface ----------------------------------------------------------------------

    async def collect(self) -> list[Reading]:
        """Poll the device once; fields missing from the line are simply absent."""
        line = await asyncio.to_thread(self._poll)
        ts = time.time()
        readings: list[Reading] = []
        for key, raw in parse_tokens(line).items():
            spec = self._fields.get(key)
            if spec is None:
                continue
            readings.append(
                Reading(
                    device=self.device_id,
                    metric=spec.metric,
                    value=values.convert(spec, raw),
                    unit=spec.unit,
                    kind="state" if spec.is_state else "metric",
                    ts=ts,
                )
            )
        return readings

    async def run_commands(self, commands: list[str]) -> list[str]:
        """Text dumps of the commands (e.g. the profile's log_commands), in order."""
        return await asyncio.to_thread(self._dump, commands)

    async def fetch_config(self) -> str:
        """The raw configuration dump of the profile's serial config_command.

        Not scrubbed: pass it straight to collectors.backups (ConfigStore.record scrubs it).
        """
        if not self.source.config_command:
            raise ValueError(f"{self.device_id}: the profile has no serial config_command")
        return (await self.run_commands([self.source.config_command]))[0]

    def _close_blocking(self) -> None:
        with self._lock:
            self._drop_port()

    async def close(self) -> None:
        """Close the port; the next collect reopens it."""
        await asyncio.to_thread(self._close_blocking)
