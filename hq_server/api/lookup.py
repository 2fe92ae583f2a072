"""Row lookups the routes share: a row by id or 404, a flush whose unique clash is a 409."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hq_server.core.errors import Conflict, NotFound

_T = TypeVar("_T")


def get_row(
    session: Session, model: type[_T], ident: int, what: str, for_update: bool = False
) -> _T:
    """The row of `model` with this id; NotFound naming `what` otherwise."""
    row = session.get(model, ident, with_for_update=for_update)
    if row is None:
        raise NotFound(f"no {what} {ident}")
    return row


def flush_unique(session: Session, what: str) -> None:
    """Flush, turning a unique-constraint clash into a 409."""
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None
