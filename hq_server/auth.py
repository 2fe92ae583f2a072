"""Who is calling: agent and user bearer tokens resolved to principals; API token creation."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.domain import Role
from hq_server.errors import AuthError, PermissionDenied
from hq_server.models import Agent, ApiToken
from hq_server.models_ops import User
from hq_server.security import TokenKind, hash_token, new_token, token_kind

logger = logging.getLogger(__name__)


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


def authenticate(session: Session, token: str) -> Principal:
    """The principal owning a bearer token; AuthError if it is unknown, revoked or malformed."""
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


def create_api_token(
    session: Session, name: str, role: Role, now: datetime, *, user_id: int | None = None
) -> str:
    """A new API token with `role` (of a user, or standalone); only its hash is stored."""
    token = new_token(TokenKind.USER)
    row = ApiToken(
        name=name, role=role.value, token_hash=hash_token(token), created_at=now, user_id=user_id
    )
    session.add(row)
    session.flush()
    logger.info("created API token %s (%r, role %s)", row.id, name, role.value)
    return token
