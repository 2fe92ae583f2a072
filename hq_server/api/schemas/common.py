"""What the API's models share: their bases, error and health bodies, instants in queries."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict


class In(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Out(BaseModel):
    """A response body; built from a stored row (or a record of one) by its attributes where
    they map one to one (`model_validate(row)`), else by the model's `of`."""

    model_config = ConfigDict(frozen=True, from_attributes=True)


class ErrorOut(Out):
    """The body of every error response (422 has FastAPI's list of validation errors)."""

    detail: str


class HealthOut(Out):
    """Liveness and database reachability."""

    status: Literal["ok", "error"]
    db: str


def _plausible(value: datetime) -> datetime:
    # Far-off years overflow when converted to UTC or stored; nothing real needs them.
    if not 1970 <= value.year <= 2999:
        raise ValueError("instant must be between the years 1970 and 2999")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]
