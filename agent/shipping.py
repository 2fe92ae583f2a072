"""Shipping the outbox to HQ, one batch at a time, without ever being stuck on a bad event.

HQ answers a batch with the events it stored and those it refuses for good (`BatchAck.rejected`,
each with a reason): stored ones are deleted from the outbox, refused ones set aside there
(kept, counted, logged once; agent.outbox). An HQ that refuses the batch as a whole (422 from an
HQ that judges a batch all or nothing, as HQ did before it judged each event; 413 when the batch
is larger than HQ takes) gets it in halves, each half again in halves while it is refused, down to
single events: the refused events are found (about 2 x log2(batch) requests for each) and set
aside, everything else is delivered. Network errors and 5xx propagate (the caller backs off and
comes back to the same events; halves already delivered stay delivered).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.errors import ContentRefused
from agent.outbox import Outbox
from protocol.wire import BatchAck, FaultEvent

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """What shipping needs of the uplink."""

    async def send_events(self, events: list[FaultEvent]) -> BatchAck:
        """Upload a batch."""
        ...


# Runs an outbox call off the event loop (the fault sink's database thread, agent.faults).
InDb = Callable[..., Awaitable[Any]]


@dataclass(slots=True)
class Shipped:
    """What one call of `ship` did."""

    stored: int = 0
    set_aside: int = 0
    requests: int = 0

    @property
    def done(self) -> int:
        """Events that left the queue."""
        return self.stored + self.set_aside


async def ship(outbox: Outbox, sender: Sender, limit: int, in_db: InDb) -> Shipped:
    """Send the next batch of up to `limit` events; stored ones leave the outbox, refused ones
    are set aside."""
    batch: list[FaultEvent] = await in_db(outbox.pending, limit)
    shipped = Shipped()
    if batch:
        await _send(outbox, sender, batch, in_db, shipped)
    return shipped


async def _send(
    outbox: Outbox, sender: Sender, batch: list[FaultEvent], in_db: InDb, shipped: Shipped
) -> None:
    shipped.requests += 1
    try:
        ack = await sender.send_events(batch)
    except ContentRefused as exc:
        if len(batch) == 1:
            reason = f"HQ refused it ({exc.status}): {exc.reason}"
            moved = await in_db(outbox.set_aside, [(batch[0].event_id, reason)])
            shipped.set_aside += len(moved)
            return
        if shipped.requests == 1:
            logger.warning(
                "HQ refused a batch of %d events as a whole (%d: %s): sending it in halves to "
                "find the event(s) it refuses",
                len(batch),
                exc.status,
                exc.reason,
            )
        half = len(batch) // 2
        await _send(outbox, sender, batch[:half], in_db, shipped)
        await _send(outbox, sender, batch[half:], in_db, shipped)
        return
    sent = {e.event_id for e in batch}
    stored = [i for i in ack.stored if i in sent]
    refused = {r.event_id: r.reason for r in ack.rejected if r.event_id in sent}
    # An id both stored and refused (an HQ bug): stored wins, HQ has it.
    for event_id in stored:
        refused.pop(event_id, None)
    if stored:
        await in_db(outbox.ack, stored)
        shipped.stored += len(stored)
    if refused:
        moved = await in_db(
            outbox.set_aside, [(i, f"HQ refused it: {why}") for i, why in refused.items()]
        )
        shipped.set_aside += len(moved)
