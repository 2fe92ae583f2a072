"""The durable outbox: fault events on disk until HQ acknowledges them.

SQLite in WAL mode with synchronous=FULL: when `record` returns, the events and the new set of
active faults are on disk together, in one transaction, so a kill -9 or power cut can neither lose
an event nor leave the agent believing a fault was reported when it was not. Only events HQ
acknowledged are deleted. When full, the lowest grades go first; grades 1 and 2 are never dropped.

An event HQ refuses for good (or one the outbox can no longer read, e.g. written by another
version) is moved to `set_aside` with the reason, in the same transaction: it is never sent
again and never holds up the queue, but it is kept (the newest SET_ASIDE_KEPT of them), counted
(`set_aside_count`, reported in the heartbeat) and logged once at ERROR.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from agent.private_files import private_dir, private_file
from checks.tracker import ActiveFault, FaultChange
from protocol.wire import FaultEvent, unused_fields

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    grade INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_grade ON events (grade, seq);
CREATE TABLE IF NOT EXISTS active_faults (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS set_aside (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    grade INTEGER NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    set_aside_at REAL NOT NULL
);
"""
NEVER_DROPPED_GRADE = 2  # grades 1 and 2 stay whatever the size
SET_ASIDE_KEPT = 10_000  # set-aside events kept for inspection (the count goes on)
_REASON_MAX = 500


@dataclass(frozen=True, slots=True)
class SetAside:
    """An event taken out of the queue for good, and why."""

    event_id: str
    seq: int
    grade: int
    reason: str
    set_aside_at: float


class Outbox:
    """A bounded, crash-safe queue of FaultEvents plus the agent's active-fault memory."""

    def __init__(self, path: Path, device_classes: dict[str, str], max_events: int = 100_000):
        private_dir(path.parent)
        private_file(path)  # before SQLite opens it: its -wal and -shm take its mode (0600)
        self.path = path
        self.max_events = max_events
        self._classes = device_classes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def set_device_classes(self, classes: dict[str, str]) -> None:
        """Device classes stamped on new events (updated on config reload)."""
        self._classes = dict(classes)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _meta_int(self, key: str) -> int:
        row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int | str) -> None:
        self._db.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (key, str(value)),
        )

    def load_active(self) -> dict[str, ActiveFault]:
        """The active faults as last recorded."""
        with self._lock:
            rows = self._db.execute("SELECT key, body FROM active_faults").fetchall()
        return {k: ActiveFault.from_dict(json.loads(b)) for k, b in rows}

    def record(
        self, changes: list[FaultChange], active: dict[str, ActiveFault]
    ) -> list[FaultEvent]:
        """Persist changes as events and the resulting active set, atomically; return the events."""
        if not changes:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = self._meta_int("last_seq")
                events = []
                for ch in changes:
                    seq += 1
                    events.append(self._to_event(ch, seq))
                self._db.executemany(
                    "INSERT INTO events (seq, event_id, grade, body) VALUES (?, ?, ?, ?)",
                    [
                        (
                            e.seq,
                            str(e.event_id),
                            e.grade,
                            e.model_dump_json(exclude=unused_fields(e)),
                        )
                        for e in events
                    ],
                )
                self._set_meta("last_seq", seq)
                touched = {ch.key for ch in changes}
                for key in touched:
                    if key in active:
                        self._db.execute(
                            "INSERT OR REPLACE INTO active_faults (key, body) VALUES (?, ?)",
                            (key, json.dumps(active[key].to_dict())),
                        )
                    else:
                        self._db.execute("DELETE FROM active_faults WHERE key = ?", (key,))
                self._enforce_bound()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return events

    def _to_event(self, ch: FaultChange, seq: int) -> FaultEvent:
        return FaultEvent(
            event_id=uuid.uuid4(),
            seq=seq,
            kind=ch.kind,
            device_id=ch.device_id,
            device_class=self._classes.get(ch.device_id, "unknown"),
            code=ch.code,
            component=ch.component[:128],
            grade=int(ch.grade),
            title=ch.title[:200],
            title_zh=ch.title_zh[:200],
            detail=ch.detail[:2000],
            observed_at=datetime.fromtimestamp(ch.observed_at, UTC),
            values={k: v for k, v in list(ch.values.items())[:20]},
        )

    def _enforce_bound(self) -> None:
        depth = int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])
        excess = depth - self.max_events
        if excess <= 0:
            return
        # Lowest grade (largest number) first, oldest first within a grade.
        cur = self._db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE grade > ? "
            "ORDER BY grade DESC, seq ASC LIMIT ?)",
            (NEVER_DROPPED_GRADE, excess),
        )
        if cur.rowcount:
            self._set_meta("dropped", self._meta_int("dropped") + cur.rowcount)

    def pending(self, limit: int = 500) -> list[FaultEvent]:
        """Events not yet acknowledged, most severe grade first, then in order; one that can
        no longer be read is set aside instead (it would fail every upload)."""
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT event_id, body FROM events ORDER BY grade ASC, seq ASC LIMIT ?",
                    (limit,),
                ).fetchall()
            events, unreadable = [], []
            for event_id, body in rows:
                try:
                    events.append(FaultEvent.model_validate_json(body))
                except ValidationError as exc:
                    unreadable.append((event_id, f"unreadable in the outbox: {_why(exc)}"))
            if not unreadable:
                return events
            self.set_aside(unreadable)

    def set_aside(self, refused: Iterable[tuple[uuid.UUID | str, str]]) -> list[SetAside]:
        """Move these events (id, reason) out of the queue into `set_aside`, count them and log
        each once at ERROR; ids no longer queued are skipped. The ones moved."""
        wanted = {str(event_id): reason[:_REASON_MAX] for event_id, reason in refused}
        if not wanted:
            return []
        now = time.time()
        moved: list[SetAside] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for event_id, reason in wanted.items():
                    row = self._db.execute(
                        "SELECT seq, grade, body FROM events WHERE event_id = ?", (event_id,)
                    ).fetchone()
                    if row is None:
                        continue
                    seq, grade, body = row
                    self._db.execute(
                        "INSERT OR REPLACE INTO set_aside "
                        "(seq, event_id, grade, body, reason, set_aside_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (seq, event_id, grade, body, reason, now),
                    )
                    self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                    moved.append(SetAside(event_id, seq, grade, reason, now))
                if moved:
                    self._set_meta("set_aside", self._meta_int("set_aside") + len(moved))
                    self._db.execute(
                        "DELETE FROM set_aside WHERE seq NOT IN "
                        "(SELECT seq FROM set_aside ORDER BY seq DESC LIMIT ?)",
                        (SET_ASIDE_KEPT,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        for item in moved:
            logger.error(
                "event %s (seq %d, grade %d) set aside for good, not sent again: %s",
                item.event_id,
                item.seq,
                item.grade,
                item.reason,
            )
        return moved

    def set_aside_count(self) -> int:
        """How many events were set aside so far (all of them, also those no longer kept)."""
        with self._lock:
            return self._meta_int("set_aside")

    def set_aside_events(self, limit: int = 100) -> list[SetAside]:
        """The most recently set-aside events still kept, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT event_id, seq, grade, reason, set_aside_at FROM set_aside "
                "ORDER BY set_aside_at DESC, seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [SetAside(str(e), int(s), int(g), str(r), float(t)) for e, s, g, r, t in rows]

    def ack(self, event_ids: Iterable[uuid.UUID]) -> int:
        """Delete events HQ has stored; return how many were deleted."""
        ids = [(str(e),) for e in event_ids]
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            before = self._db.total_changes
            self._db.executemany("DELETE FROM events WHERE event_id = ?", ids)
            self._db.execute("COMMIT")
            return self._db.total_changes - before

    def depth(self) -> int:
        """How many events wait for HQ."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])

    def dropped(self) -> int:
        """How many events were dropped because the outbox was full."""
        with self._lock:
            return self._meta_int("dropped")

    def last_seq(self) -> int:
        """The highest sequence number assigned."""
        with self._lock:
            return self._meta_int("last_seq")

    def get_meta(self, key: str) -> str | None:
        """A small persisted value (e.g. last upload time)."""
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Persist a small value."""
        with self._lock:
            self._set_meta(key, value)


def _why(exc: ValidationError) -> str:
    """The fields and messages of a validation error, without the input (it may hold anything)."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return "; ".join(parts)
