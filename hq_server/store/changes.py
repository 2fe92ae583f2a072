"""Changes marked on a database session and published (hq_server.core.changes) only once its
transaction commits, so that a watcher who looks again sees them; a rollback drops them."""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.orm import Session

from hq_server.core.changes import Change, Topic, feed

_KEY = "stationwatch_changes"


def mark(session: Session, topic: Topic, *ids: int | str) -> None:
    """Note that `ids` of `topic` changed in this session's transaction."""
    pending: dict[Topic, set[int | str]] = session.info.setdefault(_KEY, {})
    pending.setdefault(topic, set()).update(ids)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    pending: dict[Topic, set[int | str]] | None = session.info.pop(_KEY, None)
    if pending:
        feed.publish(
            *(Change(topic, tuple(sorted(ids, key=str))) for topic, ids in pending.items())
        )


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)
