"""Agent endpoints: enrollment (no bearer), event batches and heartbeats (agent tokens only)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from hq_server.alarms import ingest, intake
from hq_server.api.body import BoundedBodyRoute, cleans_text
from hq_server.api.deps import AgentDep, ClockDep, DbDep, SettingsDep
from hq_server.api.errors import AUTH_ERRORS, BODY_ERRORS, error
from hq_server.core.errors import TooLarge
from hq_server.sites.agents import record_heartbeat
from hq_server.sites.enrollment import enroll
from hq_server.tickets.policy import TicketPolicy
from protocol.wire import (
    API_PREFIX,
    MAX_HEARTBEAT_DEVICES,
    BatchAck,
    EnrollRequest,
    EnrollResponse,
    Heartbeat,
    HeartbeatAck,
)

router = APIRouter(prefix=API_PREFIX, tags=["agent"], route_class=BoundedBodyRoute)


@router.post(
    "/enroll",
    response_model=EnrollResponse,
    responses={
        **error(401, "Unknown, expired or revoked enrollment token"),
        **error(409, "Enrollment token already used"),
        **BODY_ERRORS,
    },
)
def post_enroll(request: EnrollRequest, db: DbDep, clock: ClockDep) -> EnrollResponse:
    """Trade a one-time enrollment token for an agent identity and token."""
    with db.writer() as session, session.begin():
        return enroll(session, request, clock.now())


@router.post(
    "/events",
    response_model=BatchAck,
    responses={**AUTH_ERRORS, **BODY_ERRORS},
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
        return ingest.receive(db, clock, settings, agent, batch)
    except intake.UnanswerableEvent as exc:
        loc = ("body", "events", exc.index)
        raise RequestValidationError(
            [{"type": "value_error", "loc": loc, "msg": str(exc)}]
        ) from None


@router.post(
    "/heartbeat",
    response_model=HeartbeatAck,
    responses={
        **AUTH_ERRORS,
        **BODY_ERRORS,
        **error(413, "Body over the limit, or more devices than `heartbeat_max_devices`"),
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
        record_heartbeat(session, agent.agent_id, heartbeat, now, TicketPolicy.of(settings))
    return HeartbeatAck(server_time=now)
