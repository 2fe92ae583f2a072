"""A transmitter's serial maintenance port, simulated on a pseudo-terminal.

The simulator holds the pty master; clients open the slave through a stable symlink in the
work directory (`<workdir>/tx2.tty`), exactly as they would open /dev/ttyUSB0. Requests end
with CR, LF or CRLF; every answer ends with CRLF.

`unplugged` closes the pty and removes the symlink (an open client gets an I/O error, as when
a USB adapter is pulled); clearing it makes a new pty and points the symlink at it.
`disconnect` sends half of an answer and then does the same unplug-and-replug at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
import tty
from pathlib import Path

from simulators.devices import SerialTxDevice, SimDevice, line_noise
from simulators.errors import SimulatorError

logger = logging.getLogger(__name__)

MAX_LINE = 4096  # a longer run of bytes without a line end is dropped
OP_TIMEOUT_S = 5.0


class SerialPortServer:
    """Answers a transmitter's serial protocol on a pty, in a background thread."""

    def __init__(self, device: SerialTxDevice, link: Path) -> None:
        self.device = device
        self.link = link
        self.slave_name = ""  # the current pty (changes on every replug)
        self._master = -1
        self._slave = -1
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._ops: queue.SimpleQueue[tuple[str, threading.Event]] = queue.SimpleQueue()

    @property
    def plugged(self) -> bool:
        """Whether the pty exists (False while `unplugged`)."""
        return self._master >= 0

    def start(self) -> Path:
        """Open the pty, point the symlink at its slave and start answering."""
        self._wake_r, self._wake_w = os.pipe()
        if "unplugged" not in self.device.flags:
            self._open_pty()
        self._thread = threading.Thread(
            target=self._loop, name=f"sim-serial-{self.device.id}", daemon=True
        )
        self._thread.start()
        self.device.add_listener(self._on_change)
        return self.link

    def stop(self) -> None:
        """Stop the thread, close the pty and remove the symlink."""
        self.device.remove_listener(self._on_change)
        if self._thread is not None:
            self._command("stop")
            self._thread.join(timeout=5)
            self._thread = None
        self._close_pty()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._wake_r = self._wake_w = -1

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation
        os.set_blocking(master, False)  # a client that never reads must not stall us
        self._master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.slave_name)
        tmp.replace(self.link)  # atomic: a client never sees a missing link on replug

    def _close_pty(self, remove_link: bool = True) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = -1
        if remove_link and self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()

    def _on_change(self, device: SimDevice) -> None:
        want = "unplugged" not in device.flags
        if want != self.plugged:
            self._command("plug" if want else "unplug")

    def _command(self, op: str) -> None:
        """Have the serving thread (which owns the fds) do op; returns when it is done."""
        done = threading.Event()
        self._ops.put((op, done))
        os.write(self._wake_w, b"x")
        if not done.wait(OP_TIMEOUT_S):
            raise SimulatorError(f"{self.device.id}: the serial port did not {op} in time")

    def _run_ops(self) -> bool:
        """Do the queued operations; False when told to stop."""
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._wake_r, 4096)
        while True:
            try:
                op, done = self._ops.get_nowait()
            except queue.Empty:
                return True
            if op == "stop":
                done.set()
                return False
            if op == "unplug" and self.plugged:
                self._close_pty()
                logger.info("%s: serial adapter unplugged", self.device.id)
            elif op == "plug" and not self.plugged:
                self._open_pty()
                logger.info("%s: serial adapter plugged in as %s", self.device.id, self.slave_name)
            done.set()

    def _loop(self) -> None:
        buffer = bytearray()
        while True:
            fds = [self._wake_r] + ([self._master] if self._master >= 0 else [])
            readable, _, _ = select.select(fds, [], [])
            if self._wake_r in readable:
                if not self._run_ops():
                    return
                buffer.clear()
                continue
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                logger.warning("%s: pty read failed: %s", self.device.id, exc)
                self._close_pty()
                continue
            for byte in data:
                if byte in (0x0D, 0x0A):
                    if buffer:
                        self._answer(buffer.decode("ascii", errors="replace"))
                        buffer.clear()
                    if not self.plugged:
                        break
                elif len(buffer) < MAX_LINE:
                    buffer.append(byte)
                else:
                    buffer.clear()

    def _answer(self, request: str) -> None:
        behaviour = self.device.behaviour
        if behaviour == "hang":
            return
        reply = line_noise() if behaviour == "garbage" else self.device.answer(request)
        if behaviour == "disconnect":
            reply = reply[: len(reply) // 2]
        try:
            os.write(self._master, reply)
        except BlockingIOError:
            logger.debug("%s: reply dropped, the client does not read", self.device.id)
        except OSError as exc:
            logger.warning("%s: pty write failed: %s", self.device.id, exc)
        if behaviour == "disconnect":  # the line drops mid-answer; the adapter comes back
            self._close_pty(remove_link=False)  # replaced atomically: never a missing link
            self._open_pty()
            logger.info("%s: serial line dropped mid-line (disconnect)", self.device.id)
