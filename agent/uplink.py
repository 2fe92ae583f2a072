"""The agent's only connection to HQ: httpx, keep-alive, gzip batches, bearer token.

The agent always connects out (stations sit behind NAT). Errors are mapped here into
agent.errors: UplinkError (try again later, maybe after Retry-After) or UplinkRejected.
"""

from __future__ import annotations

import gzip
import logging
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.main import IncEx

from agent import __version__
from agent.errors import ContentRefused, EnrollError, UplinkError, UplinkRejected
from protocol.wire import (
    API_PREFIX,
    BackupAck,
    BatchAck,
    ConfigBackup,
    EnrollRequest,
    EnrollResponse,
    EventBatch,
    FaultEvent,
    Heartbeat,
    HeartbeatAck,
    JobPoll,
    JobResult,
    unused_fields,
)

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


class _Ignored(BaseModel):
    """Any JSON object; for answers whose content the agent does not need."""

    model_config = ConfigDict(extra="allow")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _refusal(resp: httpx.Response) -> str:
    """HQ's reason for refusing a body, short: the first error's field and message (never the
    input HQ may echo), or its `detail` text."""
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = ".".join(str(p) for p in first.get("loc", []) if p != "body")
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        return f"{loc or 'body'}: {first.get('msg', '?')}{more}"[:300]
    if isinstance(detail, str):
        return detail[:300]
    return resp.reason_phrase or str(resp.status_code)


# Fields added within v1 (protocol/wire.py) that an HQ older than them refuses as unknown. The
# agent sends them; once HQ answers that it does not know one, it is left out from then on, so a
# newer agent keeps reporting to an older HQ (which shows the English title, no profiles).
NEWER_FIELDS = frozenset({"title_zh", "device_info", "set_aside_events"})
_UNKNOWN_FIELD = "Extra inputs are not permitted"


def unknown_field(reason: str) -> str | None:
    """The newer field HQ's refusal names as unknown ("title_zh: Extra inputs are not
    permitted"), or None for any other refusal."""
    field, _, message = reason.partition(": ")
    return field if field in NEWER_FIELDS and message.startswith(_UNKNOWN_FIELD) else None


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with "equal jitter": uniform in [d/2, d], d = min(cap, base * 2**n).

    Half the delay is guaranteed (HQ gets real relief), half is random (agents that lost HQ
    together don't come back in lockstep).
    """
    d = float(min(cap, base * (2 ** min(attempt, 20))))
    return d / 2 + random.uniform(0, d / 2)  # noqa: S311


class Uplink:
    """HTTP client for HQ's agent endpoints."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        ca_file: Path | None = None,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": f"stationwatch-agent/{__version__}"}
        self._token = token
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=timeout_s,
            verify=str(ca_file) if ca_file else True,
            transport=transport,
            trust_env=False,
        )
        # Newer fields this HQ said it does not know: left out of what is sent to it.
        self.unknown_fields: set[str] = set()

    @property
    def token(self) -> str | None:
        """The agent token in use."""
        return self._token

    async def aclose(self) -> None:
        """Close connections."""
        await self._client.aclose()

    def _auth(self) -> dict[str, str]:
        if not self._token:
            raise UplinkRejected("the agent is not enrolled: no agent token")
        return {"Authorization": f"Bearer {self._token}"}

    async def _post(
        self,
        path: str,
        model: BaseModel,
        answer: type[M],
        *,
        gzip_body: bool,
        auth: bool = True,
        exclude: IncEx | None = None,
    ) -> M:
        body = model.model_dump_json(exclude=exclude).encode()
        headers = {"Content-Type": "application/json"}
        if auth:
            headers |= self._auth()
        if gzip_body:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            resp = await self._client.post(API_PREFIX + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise UplinkError(f"HQ unreachable: {type(exc).__name__}: {exc}") from None
        return self._answer(resp, path, answer)

    def _answer(self, resp: httpx.Response, path: str, answer: type[M]) -> M:
        # 408: the body did not reach HQ within its body_timeout (a slow link), busy, down:
        # the same request may well succeed later.
        if resp.status_code in (408, 429, 503) or resp.status_code >= 500:
            raise UplinkError(f"HQ answered {resp.status_code}", _retry_after(resp))
        if resp.status_code in (413, 422):
            reason = _refusal(resp)
            raise ContentRefused(
                f"HQ refused {path}: {resp.status_code} {reason}", resp.status_code, reason
            )
        if resp.status_code >= 400:
            raise UplinkRejected(f"HQ refused {path}: {resp.status_code} {resp.text[:200]}")
        try:
            return answer.model_validate_json(resp.content)
        except ValidationError:
            raise UplinkError(f"HQ answered {path} with something unreadable") from None

    async def send_events(self, events: list[FaultEvent]) -> BatchAck:
        """Upload a batch; the answer lists what HQ has stored and what it refused for good.
        ContentRefused when HQ refused the batch as a whole (agent.shipping splits it). Events an
        older HQ refused only for a newer field it does not know are sent again without it."""
        ack = await self._post_events(events)
        refused = {r.event_id: unknown_field(r.reason) for r in ack.rejected}
        learnt = {f for f in refused.values() if f is not None} - self.unknown_fields
        if not learnt:
            return ack
        self._learn(learnt)
        again = [e for e in events if refused.get(e.event_id)]
        second = await self._post_events(again)
        retried = {e.event_id for e in again}
        return BatchAck(
            stored=[*ack.stored, *second.stored],
            rejected=[*(r for r in ack.rejected if r.event_id not in retried), *second.rejected],
        )

    async def _post_events(self, events: list[FaultEvent]) -> BatchAck:
        left_out: IncEx = {
            "events": {
                i: fields
                for i, e in enumerate(events)
                if (fields := unused_fields(e) | self.unknown_fields)
            }
        }
        return await self._post(
            "/events", EventBatch(events=events), BatchAck, gzip_body=True, exclude=left_out
        )

    def _learn(self, fields: set[str]) -> None:
        logger.warning(
            "HQ is older than this agent: it does not know %s; sending without it from now on",
            ", ".join(sorted(fields)),
        )
        self.unknown_fields |= fields

    async def heartbeat(self, hb: Heartbeat) -> HeartbeatAck:
        """Report in. Fields newer than some HQ versions are left out while 0 or empty, and
        from then on once HQ refuses one as unknown (its wire models refuse such fields)."""
        while True:
            exclude = set(self.unknown_fields)
            if hb.set_aside_events == 0:
                exclude.add("set_aside_events")
            if not hb.device_info:
                exclude.add("device_info")
            try:
                return await self._post(
                    "/heartbeat", hb, HeartbeatAck, gzip_body=False, exclude=exclude
                )
            except ContentRefused as exc:
                field = unknown_field(exc.reason)
                if field is None or field in self.unknown_fields:
                    raise
                self._learn({field})

    async def enroll(self, token: str, hostname: str) -> EnrollResponse:
        """Trade a one-time enrollment token for an agent token."""
        req = EnrollRequest(enrollment_token=token, hostname=hostname, agent_version=__version__)
        try:
            return await self._post("/enroll", req, EnrollResponse, gzip_body=False, auth=False)
        except UplinkError as exc:
            raise EnrollError(f"enrollment failed: {exc}") from None

    async def poll_jobs(self, wait_s: int) -> JobPoll:
        """Long-poll HQ for jobs (HQ answers at once when it has some)."""
        try:
            resp = await self._client.get(
                API_PREFIX + "/jobs/next",
                params={"wait": wait_s},
                headers=self._auth(),
                timeout=wait_s + 15.0,
            )
        except httpx.HTTPError as exc:
            raise UplinkError(f"HQ unreachable: {type(exc).__name__}: {exc}") from None
        return self._answer(resp, "/jobs/next", JobPoll)

    async def post_job_result(self, result: JobResult) -> None:
        """Report how a job ended."""
        path = f"/jobs/{result.job_id}/result"
        await self._post(path, result, _Ignored, gzip_body=True)

    async def upload_backup(self, backup: ConfigBackup) -> BackupAck:
        """Upload a scrubbed config backup."""
        return await self._post("/backups", backup, BackupAck, gzip_body=True)
