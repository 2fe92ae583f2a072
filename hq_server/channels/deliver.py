"""Sending a page through a contact's channels in order: a failed channel falls back to the next.

`deliver` tries one contact's channels one after another until one accepts the page, and
reports every attempt (Nornir style: a failing channel is a result, never an exception that
stops the others). `deliver_each` does that for several contacts at once, in threads, so a
slow or dead endpoint of one contact never holds back the pages of the others; each attempt
is bounded by its `Timeouts`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from hq_server.channels.base import Channel, Page, Prepared, Timeouts
from hq_server.channels.errors import DeliveryError, redact

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One channel's try: which channel, whether it worked, and why not."""

    kind: str
    target: str
    ok: bool
    error: str | None = None
    retryable: bool = False
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """Every attempt for one page, in order; delivered if one channel accepted it."""

    attempts: tuple[Attempt, ...]

    @property
    def delivered(self) -> bool:
        """Whether some channel accepted the page."""
        return any(attempt.ok for attempt in self.attempts)

    @property
    def delivered_by(self) -> Attempt | None:
        """The attempt that delivered the page, if any."""
        return next((attempt for attempt in self.attempts if attempt.ok), None)

    @property
    def retryable(self) -> bool:
        """Not delivered, and at least one failure may go away if tried later."""
        return not self.delivered and any(a.retryable for a in self.attempts)

    def summary(self) -> str:
        """One line per attempt, for a ticket's history (no secrets)."""
        return "; ".join(
            f"{a.target}: {'sent' if a.ok else 'failed (' + str(a.error) + ')'}"
            for a in self.attempts
        )


def attempt(channel: Channel, page: Page, timeouts: Timeouts, now: datetime) -> Attempt:
    """Render and send `page` through one channel; every failure becomes a failed Attempt."""
    started = time.monotonic()
    prepared: Prepared | None = None
    try:
        prepared = channel.render(page, now)
        channel.send(prepared, timeouts)
    except DeliveryError as exc:
        error, retryable = exc.reason, exc.retryable
    except Exception as exc:  # a channel's bug must not stop the fallback to the next one
        secrets = prepared.secrets if prepared is not None else ()
        error, retryable = redact(f"{type(exc).__name__}: {exc}", secrets), False
        logger.exception(
            "page %s: channel %s failed unexpectedly", page.idempotency_key, channel.kind
        )
    else:
        seconds = time.monotonic() - started
        logger.info("page %s sent by %s in %.2f s", page.idempotency_key, channel.target, seconds)
        return Attempt(channel.kind, channel.target, True, seconds=seconds)
    seconds = time.monotonic() - started
    logger.warning(
        "page %s: %s failed after %.2f s (%s): %s",
        page.idempotency_key,
        channel.target,
        seconds,
        "will retry" if retryable else "not retryable",
        error,
    )
    return Attempt(channel.kind, channel.target, False, error, retryable, seconds)


def deliver(
    page: Page,
    channels: Sequence[Channel],
    timeouts: Timeouts,
    now: datetime | None = None,
) -> DeliveryOutcome:
    """Try `channels` in order until one accepts `page`; every attempt is reported."""
    attempts: list[Attempt] = []
    for channel in channels:
        result = attempt(channel, page, timeouts, now or datetime.now(UTC))
        attempts.append(result)
        if result.ok:
            break
    if not channels:
        logger.warning("page %s: the contact has no channel", page.idempotency_key)
    return DeliveryOutcome(tuple(attempts))


def deliver_each(
    jobs: Sequence[tuple[Page, Sequence[Channel]]],
    timeouts: Timeouts,
    *,
    workers: int = 8,
) -> list[DeliveryOutcome]:
    """`deliver` for each (page, channels) at once in `workers` threads; outcomes in order."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = [pool.submit(deliver, page, channels, timeouts) for page, channels in jobs]
        return [future.result() for future in futures]
