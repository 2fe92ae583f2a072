"""Who is calling: agent and user bearer tokens resolved to principals; API tokens: creation,
listing and revocation (a revoked or expired token is refused from the next request on: every
request looks its token up, nothing is cached). Agent tokens never expire; API tokens do."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hq_server.core.domain import Role
from hq_server.core.errors import AuthError, InvalidInput, NotFound, PermissionDenied
from hq_server.core.security import TokenKind, hash_token, new_token, token_kind
from hq_server.store.models import Agent, ApiToken, User

logger = logging.getLogger(__name__)

# The lifetime of an API token made without one (hq_server.core.settings: api_token_lifetime).
DEFAULT_API_TOKEN_LIFETIME = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    """An enrolled agent calling with its token."""

    agent_id: int
    site_id: int
    name: str


@dataclass(frozen=True, slots=True)
class UserPrincipal:
    """A person or script calling with an API token."""

    token_id: int
    name: str
    role: Role
    user_id: int | None = None

    def require(self, role: Role) -> None:
        """Raise PermissionDenied unless this user has at least `role`."""
        if not self.role.allows(role):
            raise PermissionDenied(f"this needs the {role.value} role; the token has {self.role}")


Principal = AgentPrincipal | UserPrincipal


def authenticate(session: Session, token: str, now: datetime) -> Principal:
    """The principal owning a bearer token; AuthError if it is unknown, revoked, expired (API
    tokens only: agent tokens do not expire) or malformed."""
    kind = token_kind(token)
    if kind is TokenKind.AGENT:
        agent = session.scalars(
            select(Agent).where(Agent.token_hash == hash_token(token), Agent.revoked_at.is_(None))
        ).one_or_none()
        if agent is None:
            raise AuthError("unknown or revoked agent token")
        return AgentPrincipal(agent_id=agent.id, site_id=agent.site_id, name=agent.name)
    if kind is TokenKind.USER:
        row = session.scalars(
            select(ApiToken).where(
                ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None)
            )
        ).one_or_none()
        if row is None:
            raise AuthError("unknown or revoked API token")
        if row.expires_at <= now:
            raise AuthError(
                f"this API token expired at {row.expires_at.isoformat(timespec='seconds')}: "
                "log in again (POST /api/v1/auth/token) or ask an admin for a new token"
            )
        if row.user_id is None:
            return UserPrincipal(token_id=row.id, name=row.name, role=Role(row.role))
        # A user's token carries the user's current role; disabling the user stops the token.
        user = session.get(User, row.user_id)
        if user is None or user.disabled:
            raise AuthError("the user of this API token is disabled")
        return UserPrincipal(
            token_id=row.id, name=user.username, role=Role(user.role), user_id=user.id
        )
    if kind is TokenKind.ENROLLMENT:
        raise AuthError("an enrollment token is not a bearer token: POST it to /api/v1/enroll")
    raise AuthError("malformed bearer token")


def active_agent(session: Session, agent_id: int, *, lock: bool = False) -> Agent:
    """The agent's row, checked again inside the caller's transaction; AuthError if it was
    revoked since the request was authenticated. `lock`: hold it (FOR SHARE on PostgreSQL)
    until the transaction ends, so a revocation waits for it."""
    agent = session.get(Agent, agent_id, with_for_update={"read": True} if lock else None)
    if agent is None or agent.revoked_at is not None:
        raise AuthError("unknown or revoked agent token")
    return agent


def create_api_token(
    session: Session,
    name: str,
    role: Role,
    now: datetime,
    *,
    user_id: int | None = None,
    lifetime: timedelta = DEFAULT_API_TOKEN_LIFETIME,
) -> str:
    """A new API token with `role` (of a user, or standalone), valid for `lifetime`; only its
    hash is stored."""
    if lifetime <= timedelta(0):
        raise InvalidInput("a token's lifetime must be positive", field="lifetime")
    token = new_token(TokenKind.USER)
    row = ApiToken(
        name=name,
        role=role.value,
        token_hash=hash_token(token),
        created_at=now,
        user_id=user_id,
        expires_at=now + lifetime,
    )
    session.add(row)
    session.flush()
    logger.info(
        "created API token %s (%r, role %s), expires %s", row.id, name, role.value, row.expires_at
    )
    return token


def revoke_user_tokens(
    session: Session, user_id: int, now: datetime, *, keep: int | None = None
) -> int:
    """Revoke every usable API token of a user (but `keep`, if given); how many were revoked."""
    stmt = update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    if keep is not None:
        stmt = stmt.where(ApiToken.id != keep)
    result = session.execute(
        stmt.values(revoked_at=now).execution_options(synchronize_session=False)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        logger.info("revoked %d API tokens of user %s", count, user_id)
    return count


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """An API token as admins see it: never the token or its hash."""

    id: int
    name: str
    role: Role
    user_id: int | None
    username: str | None
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime

    def state(self, now: datetime) -> str:
        """usable, revoked or expired."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= now else "usable"


def _info(row: ApiToken, user: User | None) -> TokenInfo:
    # A user's token acts with the user's current role (see authenticate), so that is shown.
    role = Role(user.role) if user is not None else Role(row.role)
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=role,
        user_id=row.user_id,
        username=user.username if user is not None else None,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        expires_at=row.expires_at,
    )


def list_api_tokens(
    session: Session,
    *,
    revoked: bool | None = None,
    user_id: int | None = None,
    usable_at: datetime | None = None,
) -> list[TokenInfo]:
    """API tokens by id, optionally only (not) revoked ones, those of one user, or those
    usable (neither revoked nor expired) at `usable_at`."""
    stmt = select(ApiToken, User).outerjoin(User, ApiToken.user_id == User.id)
    if revoked is not None:
        stmt = stmt.where(
            ApiToken.revoked_at.is_not(None) if revoked else ApiToken.revoked_at.is_(None)
        )
    if usable_at is not None:
        stmt = stmt.where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > usable_at)
    if user_id is not None:
        stmt = stmt.where(ApiToken.user_id == user_id)
    return [_info(row, user) for row, user in session.execute(stmt.order_by(ApiToken.id))]


def revoke_api_token(session: Session, token_id: int, now: datetime) -> tuple[TokenInfo, bool]:
    """Revoke an API token; NotFound if unknown. Idempotent: the first revocation time stays.

    Returns the token and whether this call revoked it.
    """
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None:
        raise NotFound(f"no API token {token_id}")
    newly = row.revoked_at is None
    if newly:
        row.revoked_at = now
        session.flush()
        logger.info("revoked API token %s (%r)", row.id, row.name)
    user = session.get(User, row.user_id) if row.user_id is not None else None
    return _info(row, user), newly
