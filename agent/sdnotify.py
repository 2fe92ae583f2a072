"""systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING) without extra dependencies."""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends datagrams to $NOTIFY_SOCKET; does nothing when not run by systemd."""

    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self._addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        wanted = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Ping at half the watchdog period, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if wanted else None

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening."""
        return bool(self._addr)

    def notify(self, **fields: str) -> bool:
        """Send KEY=value lines (e.g. READY="1", STATUS="..."); False if it could not."""
        if not self._addr:
            return False
        msg = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(msg, self._addr)
        except OSError:
            return False
        return True
