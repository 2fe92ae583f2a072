"""Sites and agent enrollment: an admin creates a one-time token for a site, an agent trades it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent.wire import EnrollRequest, EnrollResponse
from hq_server.errors import ConfigError, EnrollmentTokenInvalid, EnrollmentTokenUsed
from hq_server.models import Agent, EnrollmentToken, Site
from hq_server.security import TokenKind, hash_token, new_token, token_kind

logger = logging.getLogger(__name__)

_NEW_TOKEN_HINT = "ask an HQ admin for a new one (stationwatch hq site add SITE)"  # noqa: S105


def check_timezone(name: str) -> str:
    """Return `name` if it is a known IANA timezone, else raise ConfigError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown timezone {name!r}: use an IANA name like Asia/Shanghai"
        ) from None
    return name


def ensure_site(
    session: Session,
    name: str,
    now: datetime,
    *,
    customer: str = "",
    contact: str = "",
    timezone: str = "UTC",
) -> tuple[Site, bool]:
    """The site called `name`, created with these details if missing; True if it was created."""
    site = session.scalars(select(Site).where(Site.name == name)).one_or_none()
    if site is not None:
        return site, False
    site = Site(
        name=name,
        customer=customer,
        contact=contact,
        timezone=check_timezone(timezone),
        created_at=now,
    )
    session.add(site)
    session.flush()
    logger.info("created site %s (id %s)", name, site.id)
    return site, True


def create_enrollment_token(session: Session, site: Site, now: datetime, ttl: timedelta) -> str:
    """A new one-time enrollment token for `site`, valid for `ttl`; only its hash is stored."""
    token = new_token(TokenKind.ENROLLMENT)
    session.add(
        EnrollmentToken(
            token_hash=hash_token(token), site_id=site.id, created_at=now, expires_at=now + ttl
        )
    )
    session.flush()
    logger.info("created an enrollment token for site %s, expires %s", site.name, now + ttl)
    return token


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
    if row.expires_at <= now:
        raise EnrollmentTokenInvalid(
            f"this enrollment token expired at {row.expires_at.isoformat()}; {_NEW_TOKEN_HINT}"
        )
    # Claim it atomically: of two agents enrolling with the same token at once, one wins.
    claimed = session.execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == row.id, EnrollmentToken.used_at.is_(None))
        .values(used_at=now)
        .returning(EnrollmentToken.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if claimed is None:
        raise EnrollmentTokenUsed(f"this enrollment token was just used; {_NEW_TOKEN_HINT}")

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
    logger.info("site=%s: enrolled agent %s (%s)", site.name, agent.id, request.hostname)
    return EnrollResponse(
        agent_id=agent.id, site_id=site.id, site_name=site.name, agent_token=agent_token
    )
