"""The SQLite writers' queue: first come, first served, with a timeout that loses no place."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hq_server.store.db import Database, is_retryable, upgrade
from hq_server.store.writelock import FairLock


def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll a condition that another thread makes true (it cannot signal: it is blocked)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_waiters_get_the_lock_in_arrival_order() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    order: list[int] = []

    def worker(n: int) -> None:
        assert lock.acquire(30)
        order.append(n)
        lock.release()

    threads = []
    for n in range(8):
        thread = threading.Thread(target=worker, args=(n,))
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=n: lock.queued == n + 1)  # type: ignore[misc]
    lock.release()
    for thread in threads:
        thread.join(30)
    assert order == list(range(8))
    # Free again: an uncontended acquire does not wait.
    assert lock.acquire(0)


def test_a_waiter_that_times_out_leaves_the_queue() -> None:
    lock = FairLock()
    assert lock.acquire(1)
    assert not lock.acquire(0.05)
    assert lock.queued == 0
    lock.release()
    assert lock.acquire(0)


def test_sqlite_writers_queue_in_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hq.sqlite3'}"
    upgrade(url)
    db = Database(url, sqlite_busy_timeout_ms=200)
    try:
        with db.writer() as holder, holder.begin():
            holder.execute(text("SELECT 1"))
            # Another writer of the same file waits behind the holder and then gives up with a
            # retryable "database is locked" (HQ answers 503), not a hang.
            other = Database(url, sqlite_busy_timeout_ms=200)
            try:
                with pytest.raises(OperationalError) as info, other.writer() as s, s.begin():
                    s.execute(text("SELECT 1"))
                assert is_retryable(info.value)
            finally:
                other.dispose()
        # Released with the first writer's connection: the next one gets in at once.
        with db.writer() as session, session.begin():
            session.execute(text("SELECT 1"))
    finally:
        db.dispose()


def test_checkpoint_moves_the_wal_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "hq.sqlite3"
    upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}")
    try:
        with db.writer() as session, session.begin():
            assert session.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 10_000
            session.execute(text("CREATE TABLE filler (x BLOB)"))
            for _ in range(200):
                session.execute(text("INSERT INTO filler VALUES (randomblob(4000))"))
        before = path.stat().st_size  # the rows are in the WAL, below the autocheckpoint size
        db.checkpoint()
        assert path.stat().st_size > before + 200 * 4000
    finally:
        db.dispose()
