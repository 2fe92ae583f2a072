"""A transmitter's serial maintenance port, simulated on a pseudo-terminal.

The simulator holds the pty master; clients open the slave through a stable symlink in the
work directory (`<workdir>/tx2.tty`), exactly as they would open /dev/ttyUSB0. Requests end
with CR, LF or CRLF; every answer ends with CRLF.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import tty
from pathlib import Path

from simulators.devices import SerialTxDevice, line_noise

logger = logging.getLogger(__name__)

MAX_LINE = 4096  # a longer run of bytes without a line end is dropped


class SerialPortServer:
    """Answers a transmitter's serial protocol on a pty, in a background thread."""

    def __init__(self, device: SerialTxDevice, link: Path) -> None:
        self.device = device
        self.link = link
        self._master = -1
        self._slave = -1
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> Path:
        """Open the pty, point the symlink at its slave and start answering."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing, no CR/LF translation
        os.set_blocking(self._master, False)  # a client that never reads must not stall us
        slave_name = os.ttyname(self._slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        self.link.symlink_to(slave_name)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._loop, name=f"sim-serial-{self.device.id}", daemon=True
        )
        self._thread.start()
        return self.link

    def stop(self) -> None:
        """Stop the thread, close the pty and remove the symlink."""
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = self._wake_r = self._wake_w = -1
        if self.link.is_symlink():
            with contextlib.suppress(OSError):
                self.link.unlink()

    def _loop(self) -> None:
        buffer = bytearray()
        while True:
            readable, _, _ = select.select([self._master, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                data = os.read(self._master, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                logger.warning("%s: pty read failed: %s", self.device.id, exc)
                return
            for byte in data:
                if byte in (0x0D, 0x0A):
                    if buffer:
                        self._answer(buffer.decode("ascii", errors="replace"))
                        buffer.clear()
                elif len(buffer) < MAX_LINE:
                    buffer.append(byte)
                else:
                    buffer.clear()

    def _answer(self, request: str) -> None:
        behaviour = self.device.behaviour
        if behaviour == "hang":
            return
        reply = line_noise() if behaviour == "garbage" else self.device.answer(request)
        try:
            os.write(self._master, reply)
        except BlockingIOError:
            logger.debug("%s: reply dropped, the client does not read", self.device.id)
        except OSError as exc:
            logger.warning("%s: pty write failed: %s", self.device.id, exc)
