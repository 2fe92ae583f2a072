"""Reading an event batch one event at a time, so one bad event never costs the others.

The request body is parsed as an envelope (`{"events": [...]}`, at most 5,000 JSON objects); a
broken envelope, or an invalid event without a readable `event_id` (nothing to answer it by), is
a 422 for the whole batch. Then the events are validated against the wire model
(protocol.wire.FaultEvent, which also cleans text no database can store): all in one call, and one
by one only if one of them is invalid. Each valid event's `observed_at` is checked against HQ's
clock:

- no UTC offset, or not expressible in UTC (year 1 at +14:00 is in year 0 in UTC): refused;
- before EARLIEST_OBSERVED (2000-01-01 UTC): refused. No running station produces one (systemd
  never lets a clock start earlier than its own build date); it is a sender's bug or an attack,
  and as an alarm's time it would break every deadline computed from it;
- further ahead of HQ's clock than `Settings.event_max_ahead` (default 5 minutes): stored with
  HQ's receive time instead. A station clock running fast must neither lose the fault (refusing
  a grade-1 "off air" because of a clock is the worse failure) nor pin the alarm's last change
  in the future (the site's other agents' events would be "stale" until then); HQ's receive time
  is a sure upper bound of when the change was observed. A warning names the agent.

Refused events go back to the agent in `BatchAck.rejected` with the reason (field: what was
expected); the agent sets them aside for good. The rest are ingested as a batch
(hq_server.alarms.ingest), so the per-event path adds no database statement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, ValidationError

import protocol.wire as wire
from protocol.wire import FaultEvent, RejectedEvent

logger = logging.getLogger(__name__)

EARLIEST_OBSERVED = datetime(2000, 1, 1, tzinfo=UTC)
MAX_BATCH_EVENTS = 5000
_REASON_MAX = 300


def _event_object(value: Any) -> dict[str, Any]:
    """An event as sent: a JSON object; what is in it is judged later, event by event."""
    if not isinstance(value, dict):
        raise ValueError("an event must be a JSON object")
    return value


def _event_id(event: dict[str, Any]) -> UUID | None:
    raw = event.get("event_id")
    if isinstance(raw, UUID):
        return raw
    if not isinstance(raw, str):
        return None
    try:
        return UUID(raw)
    except ValueError:
        return None


class UnanswerableEvent(ValueError):
    """An event without a readable event_id: HQ cannot answer it, so the batch is refused."""

    def __init__(self, index: int) -> None:
        super().__init__("an event needs an event_id (a UUID) for HQ to answer it by")
        self.index = index


# In the OpenAPI schema an event is a FaultEvent; HQ itself reads each one separately.
RawEvent = Annotated[
    dict[str, Any], PlainValidator(_event_object, json_schema_input_type=FaultEvent)
]
# All events of a batch in one call (the usual case: every event valid); the events of a batch
# with an invalid one are judged one by one only then.
_EVENTS = TypeAdapter(list[FaultEvent])


class EventBatch(BaseModel):
    """protocol.wire.EventBatch as HQ reads it (the same JSON, and the same name in the OpenAPI
    schema): a list of JSON objects, each judged by `screen` on its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[RawEvent] = Field(max_length=MAX_BATCH_EVENTS)


@dataclass(slots=True)
class Screened:
    """The events of a batch fit to ingest, and those refused for good."""

    batch: wire.EventBatch
    rejected: list[RejectedEvent] = field(default_factory=list)
    clamped: int = 0


def _reasons(exc: ValidationError) -> dict[int, str]:
    """Per event index, `field: message; ...` (never the input: it may be huge or junk)."""
    parts: dict[int, list[str]] = {}
    for err in exc.errors(include_url=False, include_input=False):
        index, *loc = err["loc"]
        assert isinstance(index, int), err
        parts.setdefault(index, []).append(f"{'.'.join(map(str, loc)) or 'event'}: {err['msg']}")
    return {i: "; ".join(p)[:_REASON_MAX] for i, p in parts.items()}


def _validated(raws: list[dict[str, Any]]) -> tuple[list[FaultEvent | None], dict[int, str]]:
    """Each event validated (None where invalid), and why each invalid one is."""
    try:
        return list(_EVENTS.validate_python(raws)), {}
    except ValidationError as exc:
        invalid = _reasons(exc)
    valid = [i for i in range(len(raws)) if i not in invalid]
    events: list[FaultEvent | None] = [None] * len(raws)
    for i, ev in zip(valid, _EVENTS.validate_python([raws[i] for i in valid]), strict=True):
        events[i] = ev
    return events, invalid


def _when(observed: datetime, now: datetime, max_ahead: timedelta) -> datetime | str:
    """observed_at in UTC (HQ's `now` if it is too far ahead), or why it is refused."""
    if observed.utcoffset() is None:
        return "observed_at: has no UTC offset (send e.g. 2026-03-02T08:00:00Z)"
    try:
        utc = observed.astimezone(UTC)
    except OverflowError:
        return f"observed_at: {observed.isoformat()} cannot be expressed in UTC"
    if utc < EARLIEST_OBSERVED:
        return (
            f"observed_at: {utc.isoformat()} is before {EARLIEST_OBSERVED.date().isoformat()} "
            "(the station's clock is wrong)"
        )
    return now if utc - now > max_ahead else utc


def screen(
    batch: EventBatch, now: datetime, max_ahead: timedelta, *, agent: object = "?"
) -> Screened:
    """Validate each event of `batch` on its own; the first copy of an event_id decides.
    Raises UnanswerableEvent for an invalid event without a readable event_id."""
    validated, invalid = _validated(batch.events)
    events: list[FaultEvent] = []
    rejected: list[RejectedEvent] = []
    seen: set[UUID] = set()
    clamped, latest = 0, now
    for index, ev in enumerate(validated):
        event_id = ev.event_id if ev is not None else _event_id(batch.events[index])
        if event_id is None:
            raise UnanswerableEvent(index)
        if event_id in seen:
            continue
        seen.add(event_id)
        if ev is None:
            rejected.append(RejectedEvent(event_id=event_id, reason=invalid[index]))
            continue
        when = _when(ev.observed_at, now, max_ahead)
        if isinstance(when, str):
            rejected.append(RejectedEvent(event_id=event_id, reason=when))
            continue
        if when is now and ev.observed_at - now > max_ahead:
            clamped += 1
            latest = max(latest, ev.observed_at)
            ev = ev.model_copy(update={"observed_at": now})
        events.append(ev)  # the same instant otherwise: ingest takes it in UTC
    if clamped:
        logger.warning(
            "agent=%s: %d event(s) observed more than %s ahead of HQ's clock (up to %s): "
            "stored with HQ's receive time; the station's clock is wrong",
            agent,
            clamped,
            max_ahead,
            latest.astimezone(UTC).isoformat(),
        )
    if rejected:
        logger.warning(
            "agent=%s: %d event(s) of %d rejected for good, first %s: %s",
            agent,
            len(rejected),
            len(batch.events),
            rejected[0].event_id,
            rejected[0].reason,
        )
    return Screened(wire.EventBatch.model_construct(events=events), rejected, clamped)
