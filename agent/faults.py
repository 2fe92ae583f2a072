"""The fault sink: where every fault change of the agent goes, whoever found it.

Polls, traps, syslog, device logs, config backups and inspections all hand their findings to
one `FaultSink`: the tracker (the agent's memory of raised faults) turns them into changes, the
outbox writes the changes and the new active set to disk in one transaction (on the sink's own
database thread, off the event loop), and only then is the uploader woken. Nothing reaches HQ
that is not on disk first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from agent.outbox import Outbox
from checks.base import Finding
from checks.tracker import FaultChange, FaultTracker
from protocol.wire import FaultEvent

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class FaultSink:
    """The tracker, the outbox and its database thread, and the uploader's wake-up call."""

    def __init__(self, outbox: Outbox, site: str = "") -> None:
        self.outbox = outbox
        self.tracker = FaultTracker(outbox.load_active())
        self.site = site  # for log lines; a reload may rename it
        # Set after each commit; the uploader waits on it between its rounds.
        self.wake = asyncio.Event()
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")

    async def in_db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run an outbox call on the sink's database thread (one at a time, in order)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    async def commit(self, changes: list[FaultChange]) -> list[FaultEvent]:
        """Write changes and the active set to disk, then wake the uploader."""
        if not changes:
            return []
        events = await self.in_db(self.outbox.record, changes, dict(self.tracker.active))
        for e in events:
            logger.info(
                "site=%s device=%s fault %s %s grade=%d %s",
                self.site,
                e.device_id,
                e.kind.value.upper(),
                e.fault_key,
                e.grade,
                e.detail,
            )
        self.wake.set()
        return events

    async def record(
        self, device_id: str, findings: list[Finding], now: float | None = None
    ) -> list[FaultEvent]:
        """Apply one device's findings to the fault memory and commit what changed."""
        return await self.commit(self.tracker.apply(device_id, findings, now))

    def close(self) -> None:
        """Finish pending writes and close the outbox."""
        self._db.shutdown(wait=True)
        self.outbox.close()
