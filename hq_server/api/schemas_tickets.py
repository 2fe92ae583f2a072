"""Request bodies of the ticket actions."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Text = Field(default="", max_length=4000)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoteIn(_In):
    """An optional note for the history entry."""

    note: str = Text


class AssignIn(_In):
    """Who works on the ticket (and who is on duty, if it changed)."""

    assignee: str = Field(min_length=1, max_length=100)
    on_duty: str | None = Field(default=None, max_length=100)


class CommentIn(_In):
    """A history entry: what was seen, what was done, time spent on it."""

    seen: str = Text
    done: str = Text
    time_spent_minutes: int = Field(default=0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _not_empty(self) -> CommentIn:
        if not (self.seen.strip() or self.done.strip()):
            raise ValueError("say what was seen or what was done")
        return self


class StatusIn(_In):
    """Move the ticket to in_progress (also "back" from pending_customer) or pending_customer."""

    status: Literal["in_progress", "pending_customer"]
    note: str = Text


class ResolveIn(_In):
    """The resolution: cause, fix, tested, confirmed by the customer, FAQ entry, time spent."""

    cause: str = Field(min_length=1, max_length=4000)
    fix: str = Field(min_length=1, max_length=4000)
    tested: bool
    confirmed_by_customer: bool
    faq: bool = False
    faq_text: str = Text
    time_spent_minutes: int = Field(default=0, ge=0, le=100_000)

    @model_validator(mode="after")
    def _faq_needs_text(self) -> ResolveIn:
        if self.faq and not self.faq_text.strip():
            raise ValueError("faq_text is required when faq is true")
        return self


class ReopenIn(_In):
    """Why the ticket is reopened."""

    reason: str = Field(min_length=1, max_length=4000)
