"""Agent enrollment: an admin creates a one-time token for a site, an agent trades it.

A re-enrollment token (the site's box was replaced) names the agent it replaces: its use
retires that agent (hq_server.sites.agents.retire_replaced). Pending tokens can be revoked.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hq_server.core.errors import (
    Conflict,
    EnrollmentTokenInvalid,
    EnrollmentTokenUsed,
    InvalidInput,
    NotFound,
)
from hq_server.core.security import TokenKind, hash_token, new_token, token_kind
from hq_server.sites.agents import retire_replaced
from hq_server.sites.registry import active_agents
from hq_server.store.models import Agent, EnrollmentToken, Site
from protocol.wire import EnrollRequest, EnrollResponse

logger = logging.getLogger(__name__)

_NEW_TOKEN_HINT = "ask an HQ admin for a new one (stationwatch hq site add SITE)"  # noqa: S105


def create_enrollment_token(
    session: Session,
    site: Site,
    now: datetime,
    ttl: timedelta,
    *,
    replaces: Agent | None = None,
) -> str:
    """A new one-time enrollment token for `site`, valid for `ttl`; only its hash is stored.
    With `replaces` (an agent of the site), using it retires that agent."""
    if replaces is not None and replaces.site_id != site.id:
        raise InvalidInput(f"agent {replaces.id} is not an agent of site {site.name!r}")
    token = new_token(TokenKind.ENROLLMENT)
    session.add(
        EnrollmentToken(
            token_hash=hash_token(token),
            site_id=site.id,
            created_at=now,
            expires_at=now + ttl,
            replaces_agent_id=replaces.id if replaces is not None else None,
        )
    )
    session.flush()
    logger.info(
        "created an enrollment token for site %s, expires %s%s",
        site.name,
        now + ttl,
        f", replaces agent {replaces.id}" if replaces is not None else "",
    )
    return token


def reenrollment_target(session: Session, site: Site, agent_id: int | None) -> Agent:
    """The agent a re-enrollment of `site` replaces: `agent_id`, or the site's only active
    agent; Conflict when that is ambiguous or there is none."""
    agents = active_agents(session, site.id)
    if agent_id is not None:
        for agent in agents:
            if agent.id == agent_id:
                return agent
        raise Conflict(f"agent {agent_id} is not an active agent of site {site.name!r}")
    if not agents:
        raise Conflict(
            f"site {site.name!r} has no active agent to replace: `hq site add` gives it a token"
        )
    if len(agents) > 1:
        names = ", ".join(f"{a.id} ({a.name})" for a in agents)
        raise Conflict(f"site {site.name!r} has several active agents ({names}): name one")
    return agents[0]


def new_site_token(
    session: Session,
    site: Site,
    now: datetime,
    ttl: timedelta,
    *,
    additional: bool = False,
) -> str:
    """An enrollment token for a site (`hq site add`): refused while the site has an active
    agent, unless `additional` (a second agent at the site) — a replaced box is re-enrolled
    with a token that retires the old agent (reenrollment_target)."""
    agents = active_agents(session, site.id)
    if agents and not additional:
        names = ", ".join(f"{a.id} ({a.name})" for a in agents)
        command = f"stationwatch hq site reenroll {shlex.quote(site.name)}"
        raise Conflict(
            f"site {site.name!r} already has an active agent: {names}. To replace its box, use "
            f"`{command}` (the old agent is retired when the new one enrolls); to add another "
            "agent to the site, pass --additional"
        )
    return create_enrollment_token(session, site, now, ttl)


class EnrollmentState(StrEnum):
    """Where a one-time enrollment token is in its life."""

    PENDING = "pending"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class EnrollmentInfo:
    """An enrollment token as admins see it: never the token or its hash."""

    id: int
    site_id: int
    site_name: str
    created_at: datetime
    expires_at: datetime
    state: EnrollmentState
    used_at: datetime | None
    agent_id: int | None
    revoked_at: datetime | None
    revoked_by: str | None
    replaces_agent_id: int | None


def _state(row: EnrollmentToken, now: datetime) -> EnrollmentState:
    if row.used_at is not None:
        return EnrollmentState.USED
    if row.revoked_at is not None:
        return EnrollmentState.REVOKED
    return EnrollmentState.EXPIRED if row.expires_at <= now else EnrollmentState.PENDING


def _enrollment_info(row: EnrollmentToken, site: Site, now: datetime) -> EnrollmentInfo:
    return EnrollmentInfo(
        id=row.id,
        site_id=site.id,
        site_name=site.name,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=_state(row, now),
        used_at=row.used_at,
        agent_id=row.agent_id,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        replaces_agent_id=row.replaces_agent_id,
    )


def list_enrollment_tokens(
    session: Session, now: datetime, *, pending_only: bool = True
) -> list[EnrollmentInfo]:
    """Enrollment tokens by id: the pending ones (usable now), or all."""
    stmt = select(EnrollmentToken, Site).join(Site, Site.id == EnrollmentToken.site_id)
    if pending_only:
        stmt = stmt.where(
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
            EnrollmentToken.expires_at > now,
        )
    rows = session.execute(stmt.order_by(EnrollmentToken.id))
    return [_enrollment_info(row, site, now) for row, site in rows]


def revoke_enrollment_token(
    session: Session, token_id: int, now: datetime, who: str
) -> tuple[EnrollmentInfo, bool]:
    """Revoke an unused enrollment token; Conflict if it was used (revoke the agent instead).
    Idempotent; returns the token and whether this call revoked it."""
    row = session.get(EnrollmentToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no enrollment token {token_id}")
    if row.used_at is not None:
        raise Conflict(
            f"enrollment token {token_id} was used at {row.used_at.isoformat()} by agent "
            f"{row.agent_id}: revoke that agent instead"
        )
    newly = row.revoked_at is None
    if newly:
        row.revoked_at = now
        row.revoked_by = who[:100]
        session.flush()
        logger.info("enrollment token %s of site %s revoked by %s", row.id, row.site_id, who)
    return _enrollment_info(row, session.get_one(Site, row.site_id), now), newly


def enroll(session: Session, request: EnrollRequest, now: datetime) -> EnrollResponse:
    """Trade a valid, unused enrollment token for a new agent and its token (single use)."""
    if token_kind(request.enrollment_token) is not TokenKind.ENROLLMENT:
        raise EnrollmentTokenInvalid(
            f"not an enrollment token (they start with {TokenKind.ENROLLMENT.value})"
        )
    token_hash = hash_token(request.enrollment_token)
    row = session.scalars(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == token_hash)
    ).one_or_none()
    if row is None:
        raise EnrollmentTokenInvalid(f"unknown enrollment token; {_NEW_TOKEN_HINT}")
    if row.used_at is not None:
        raise EnrollmentTokenUsed(
            f"this enrollment token was already used at {row.used_at.isoformat()}; "
            f"{_NEW_TOKEN_HINT}"
        )
    if row.revoked_at is not None:
        raise EnrollmentTokenInvalid(f"this enrollment token was revoked; {_NEW_TOKEN_HINT}")
    if row.expires_at <= now:
        raise EnrollmentTokenInvalid(
            f"this enrollment token expired at {row.expires_at.isoformat()}; {_NEW_TOKEN_HINT}"
        )
    # Claim it atomically: of two agents enrolling with the same token at once, one wins.
    claimed = session.execute(
        update(EnrollmentToken)
        .where(
            EnrollmentToken.id == row.id,
            EnrollmentToken.used_at.is_(None),
            EnrollmentToken.revoked_at.is_(None),
        )
        .values(used_at=now)
        .returning(EnrollmentToken.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        raise EnrollmentTokenUsed(
            f"this enrollment token was just used or revoked; {_NEW_TOKEN_HINT}"
        )

    site = session.get_one(Site, row.site_id)
    agent_token = new_token(TokenKind.AGENT)
    agent = Agent(
        site_id=site.id,
        name=request.hostname,
        token_hash=hash_token(agent_token),
        version=request.agent_version,
        enrolled_at=now,
        last_seq=0,
        reported_seq=0,
        outbox_depth=0,
        dropped_events=0,
        device_states={},
    )
    session.add(agent)
    session.flush()
    session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == row.id)
        .values(agent_id=agent.id)
        .execution_options(synchronize_session=False)
    )
    if row.replaces_agent_id is not None:
        retire_replaced(session, row.replaces_agent_id, agent, now)
    logger.info("site=%s: enrolled agent %s (%s)", site.name, agent.id, request.hostname)
    return EnrollResponse(
        agent_id=agent.id, site_id=site.id, site_name=site.name, agent_token=agent_token
    )
