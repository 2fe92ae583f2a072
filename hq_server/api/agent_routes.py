"""Agent endpoints: enrollment (no bearer), event batches and heartbeats (agent tokens only)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError

from hq_server import deadman, intake
from hq_server.access.auth import active_agent
from hq_server.api.body import BoundedBodyRoute, cleans_text
from hq_server.api.deps import AgentDep, ClockDep, DbDep, SettingsDep
from hq_server.api.errors import ERROR_RESPONSES
from hq_server.api.schemas import ErrorOut
from hq_server.core.errors import TooLarge
from hq_server.ingest import RetryBatch, ingest_batch
from hq_server.sites.agents import health_figures
from hq_server.sites.enrollment import enroll
from hq_server.store.db import is_retryable
from hq_server.tickets.policy import TicketPolicy
from hq_server.tickets.records import ConcurrentTicket
from protocol.wire import (
    API_PREFIX,
    MAX_HEARTBEAT_DEVICES,
    BatchAck,
    EnrollRequest,
    EnrollResponse,
    Heartbeat,
    HeartbeatAck,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix=API_PREFIX, tags=["agent"], route_class=BoundedBodyRoute)

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    code: {**spec, "model": ErrorOut} for code, spec in ERROR_RESPONSES.items()
}
_BODY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorOut, "description": "Invalid gzip body"},
    413: {"model": ErrorOut, "description": "Body larger than the limit (after decompression)"},
    415: {"model": ErrorOut, "description": "Content-Encoding other than gzip"},
}


@router.post(
    "/enroll",
    response_model=EnrollResponse,
    responses={
        401: {"model": ErrorOut, "description": "Unknown, expired or revoked enrollment token"},
        409: {"model": ErrorOut, "description": "Enrollment token already used"},
        **_BODY_ERRORS,
    },
)
def post_enroll(request: EnrollRequest, db: DbDep, clock: ClockDep) -> EnrollResponse:
    """Trade a one-time enrollment token for an agent identity and token."""
    with db.writer() as session, session.begin():
        return enroll(session, request, clock.now())


@router.post(
    "/events",
    response_model=BatchAck,
    responses={**_AUTH_ERRORS, **_BODY_ERRORS},
    description="A batch of fault events (send it gzip with `Content-Encoding: gzip`). "
    "Idempotent on event_id: the ack lists every event HQ has stored, new or already known, "
    "and every event it refuses for good with the reason (`rejected`). Each event is judged on "
    "its own: one invalid event does not fail the batch. NUL and lone surrogates in text are "
    "replaced by U+FFFD; an observed_at before 2000-01-01 or without a UTC offset is refused, "
    "one too far ahead of HQ's clock is stored with HQ's receive time. 422 only when the batch "
    "itself is unreadable (not a list of objects each with an event_id, or over 5000 events).",
)
@cleans_text
def post_events(
    batch: intake.EventBatch, agent: AgentDep, db: DbDep, clock: ClockDep, settings: SettingsDep
) -> BatchAck:
    """Store a batch of events in one transaction and apply them to alarms and tickets."""
    try:
        screened = intake.screen(batch, clock.now(), settings.event_max_ahead, agent=agent.agent_id)
    except intake.UnanswerableEvent as exc:
        loc = ("body", "events", exc.index)
        raise RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": str(exc)}]
        ) from None
    attempts = settings.max_batch_retries
    for attempt in range(1, attempts + 1):
        try:
            with db.writer() as session, session.begin():
                row = active_agent(session, agent.agent_id)
                result = ingest_batch(
                    session, row, screened.batch, clock.now(), TicketPolicy.of(settings)
                )
            return BatchAck(stored=result.stored, rejected=[*screened.rejected, *result.rejected])
        except (DBAPIError, RetryBatch, ConcurrentTicket) as exc:
            if attempt == attempts or not _retryable(exc):
                raise
            logger.warning(
                "agent=%s site=%s: batch attempt %d/%d failed (%s), retrying",
                agent.agent_id,
                agent.site_id,
                attempt,
                attempts,
                type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__,
            )
    raise AssertionError("unreachable")


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, (RetryBatch, ConcurrentTicket)) or is_retryable(exc)


@router.post(
    "/heartbeat",
    response_model=HeartbeatAck,
    responses={
        **_AUTH_ERRORS,
        **_BODY_ERRORS,
        413: {
            "model": ErrorOut,
            "description": "Body over the limit, or more devices than `heartbeat_max_devices`",
        },
    },
    description="The agent is alive: its version, queue state, device states and host figures. "
    f"At most {MAX_HEARTBEAT_DEVICES} devices (fewer if HQ's `heartbeat_max_devices` says so: "
    "413), each named like a device id (422 otherwise). HQ keeps every figure but the device "
    "map as the agent's `health` (GET /api/v1/agents).",
)
def post_heartbeat(
    heartbeat: Heartbeat, agent: AgentDep, db: DbDep, clock: ClockDep, settings: SettingsDep
) -> HeartbeatAck:
    """Record that the agent is alive, with its version and queue state; answer HQ's time."""
    if len(heartbeat.devices) > settings.heartbeat_max_devices:
        raise TooLarge(
            f"devices: the heartbeat names {len(heartbeat.devices)} devices, HQ accepts at most "
            f"{settings.heartbeat_max_devices} (setting heartbeat_max_devices)"
        )
    now = clock.now()
    with db.writer() as session, session.begin():
        row = active_agent(session, agent.agent_id)
        row.last_seen_at = now
        row.version = heartbeat.agent_version
        row.outbox_depth = heartbeat.outbox_depth
        row.dropped_events = heartbeat.dropped_events
        row.reported_seq = heartbeat.last_seq
        row.device_states = {name: state.value for name, state in heartbeat.devices.items()}
        row.health = health_figures(heartbeat)
        row.health_at = now
        deadman.heard_from(session, row.site_id, now, TicketPolicy.of(settings))
    return HeartbeatAck(server_time=now)
