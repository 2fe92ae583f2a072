"""Rows written straight into an agent's outbox file, as another agent version stored them
(shared by the shipping tests in tests/hq and the end-to-end test of poisoned events)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any


def put_raw(outbox: Path, seq: int, grade: int, body: dict[str, Any]) -> str:
    """Store `body` (with a new event_id and `seq`) as an outbox row exactly as given; its id."""
    event_id = str(uuid.uuid4())
    db = sqlite3.connect(outbox)
    try:
        db.execute(
            "INSERT INTO events (seq, event_id, grade, body) VALUES (?, ?, ?, ?)",
            (seq, event_id, grade, json.dumps(body | {"event_id": event_id, "seq": seq})),
        )
        db.commit()
    finally:
        db.close()
    return event_id
