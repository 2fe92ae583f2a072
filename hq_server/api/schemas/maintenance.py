"""Maintenance windows: matched alarms open no ticket until the window ends."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, model_validator

from hq_server.api.schemas.common import In, Instant, Out


class WindowIn(In):
    """A maintenance window; unset matchers match everything."""

    site_id: int | None = Field(default=None, ge=1, le=2_147_483_647)
    device_id: str | None = Field(default=None, min_length=1, max_length=64)
    code: str | None = Field(default=None, min_length=1, max_length=64)
    starts_at: Instant
    ends_at: Instant
    reason: str = Field(min_length=1, max_length=4000)
    approval_ref: str = Field(default="", max_length=100, description="Customer approval")

    @model_validator(mode="after")
    def _ends_after_start(self) -> WindowIn:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class WindowOut(Out):
    """A stored maintenance window."""

    id: int
    site_id: int | None
    device_id: str | None
    code: str | None
    starts_at: datetime
    ends_at: datetime
    author: str
    reason: str
    approval_ref: str
    created_at: datetime
    released_at: datetime | None
