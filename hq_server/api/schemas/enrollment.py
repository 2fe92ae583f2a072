"""Enrollment tokens: what a new one is for, one as admins see it, a new one shown once."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from hq_server.api.schemas.common import In, Out
from hq_server.sites.enrollment import EnrollmentInfo, EnrollmentState


class EnrollmentTokenIn(In):
    """What a new enrollment token is for."""

    ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30, description="Validity")
    replace_agent: bool = Field(
        default=False,
        description="Re-enrollment (the site's box was replaced): using the token retires the "
        "site's active agent (`agent_id` names it when the site has several)",
    )
    agent_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    additional: bool = Field(
        default=False,
        description="Enroll another agent at a site that already has an active one",
    )


class EnrollmentTokenOut(Out):
    """A one-time enrollment token (never the token or its hash)."""

    id: int
    site_id: int
    site: str
    created_at: datetime
    expires_at: datetime
    state: EnrollmentState
    used_at: datetime | None
    agent_id: int | None = Field(description="The agent that enrolled with it")
    revoked_at: datetime | None
    revoked_by: str | None
    replaces_agent_id: int | None = Field(
        description="Re-enrollment: the agent retired when it is used"
    )

    @classmethod
    def of(cls, info: EnrollmentInfo) -> EnrollmentTokenOut:
        """From a token as hq_server.sites.enrollment describes it."""
        return cls(
            id=info.id,
            site_id=info.site_id,
            site=info.site_name,
            created_at=info.created_at,
            expires_at=info.expires_at,
            state=info.state,
            used_at=info.used_at,
            agent_id=info.agent_id,
            revoked_at=info.revoked_at,
            revoked_by=info.revoked_by,
            replaces_agent_id=info.replaces_agent_id,
        )


class NewEnrollmentTokenOut(Out):
    """A new one-time enrollment token, shown once (HQ keeps only its hash)."""

    token: str
    site_id: int
    expires_at: datetime
    replaces_agent_id: int | None
