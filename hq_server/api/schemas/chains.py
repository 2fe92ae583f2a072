"""Escalation chains: levels of contacts to notify (webhook keys are never shown)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, HttpUrl, model_validator

from hq_server.api.schemas.common import In, Out
from hq_server.store.models import EscalationChain

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class ContactIn(In):
    """Someone to notify: at least one of an e-mail address, a webhook and an HQ user (paged
    through their contact methods; `@on_duty`: the ticket's on-duty engineer)."""

    name: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    webhook_url: HttpUrl | None = None
    webhook_secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=200,
        description="HMAC-SHA256 key of the webhook. Never shown again. When a chain is "
        "replaced (PUT), a contact that leaves it out keeps the key the chain holds for the "
        "same contact (same name and webhook_url); null removes it.",
    )
    user: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="an HQ user paged through their contact methods, or @on_duty for the "
        "ticket's on-duty engineer",
    )

    @model_validator(mode="after")
    def _has_a_method(self) -> ContactIn:
        if self.email is None and self.webhook_url is None and self.user is None:
            raise ValueError(f"contact {self.name!r} needs an email, a webhook_url or a user")
        return self


class LevelIn(In):
    """One escalation level: who is told, and after how long (since the previous level)."""

    name: str = Field(min_length=1, max_length=100, examples=["department manager"])
    delay_minutes: int = Field(ge=0, le=525_600)
    delay_clock: Literal["working", "wall"] = Field(
        default="working", description="Count the delay in working time or wall-clock time"
    )
    contacts: list[ContactIn] = Field(min_length=1, max_length=20)


class ChainIn(In):
    """An escalation chain for a customer ('' = any) and grade (0 = any)."""

    name: str = Field(min_length=1, max_length=100)
    customer: str = Field(default="", max_length=200)
    grade: int = Field(default=0, ge=0, le=5)
    levels: list[LevelIn] = Field(min_length=1, max_length=10)

    def stored_levels(self) -> dict[str, Any]:
        """The levels as stored (and copied onto tickets)."""
        levels = [level.model_dump(mode="json") for level in self.levels]
        for level in levels:  # a contact without a user is stored as before
            for contact in level["contacts"]:
                if contact.get("user") is None:
                    contact.pop("user", None)
        return {"levels": levels}

    def keys_left_out(self) -> list[tuple[int, int]]:
        """(level, contact) positions of webhooks whose key the request left out (not null)."""
        return [
            (i, j)
            for i, level in enumerate(self.levels)
            for j, contact in enumerate(level.contacts)
            if contact.webhook_url is not None and "webhook_secret" not in contact.model_fields_set
        ]


class ContactOut(Out):
    """A contact, without the webhook secret."""

    name: str
    email: str | None
    webhook_url: str | None
    has_webhook_secret: bool
    user: str | None = None


class LevelOut(Out):
    """One escalation level."""

    name: str
    delay_minutes: int
    delay_clock: str
    contacts: list[ContactOut]


class ChainOut(Out):
    """A stored escalation chain."""

    id: int
    name: str
    customer: str
    grade: int
    levels: list[LevelOut]
    updated_at: datetime

    @classmethod
    def of(cls, row: EscalationChain) -> ChainOut:
        """From a stored chain."""
        levels = [
            LevelOut(
                name=level["name"],
                delay_minutes=level["delay_minutes"],
                delay_clock=level["delay_clock"],
                contacts=[
                    ContactOut(
                        name=c["name"],
                        email=c.get("email"),
                        webhook_url=c.get("webhook_url"),
                        has_webhook_secret=bool(c.get("webhook_secret")),
                        user=c.get("user"),
                    )
                    for c in level["contacts"]
                ],
            )
            for level in row.levels["levels"]
        ]
        return cls(
            id=row.id,
            name=row.name,
            customer=row.customer,
            grade=row.grade,
            levels=levels,
            updated_at=row.updated_at,
        )
