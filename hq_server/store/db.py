"""Database access: engines for SQLite and PostgreSQL, sessions, migrations, error mapping."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hq_server.core.errors import ConfigError, DatabaseUnavailable, SchemaOutOfDate
from hq_server.store.writelock import FairLock

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# Execution option read by the SQLite "begin" hook: DEFERRED (readers) or IMMEDIATE (writers).
_SQLITE_BEGIN = "stationwatch_sqlite_begin"
# pg_advisory_xact_lock key held while migrating, so replicas starting together migrate once.
_MIGRATION_LOCK_KEY = 0x5357_4851  # "SWHQ"
# SQLSTATEs worth retrying a whole transaction for: serialization failure, deadlock.
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def parse_url(url: str) -> URL:
    """Parse and check a database URL; raise ConfigError naming what is wrong."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"cannot parse database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r} in URL "
            f"{safe_url(parsed)!r}: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError("an in-memory SQLite database cannot be shared: give sqlite:///PATH")
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL with its password masked, for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError:
        return "<unparsable URL>"
    return parsed.render_as_string(hide_password=True)


def create_private(path: Path) -> bool:
    """Create `path` empty, mode 0600 whatever the umask, unless it exists; True if created.
    SQLite gives a database's -wal and -shm files the database file's mode, so a database
    created here keeps all three readable by HQ's user only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    return True


def make_engine(url: str, *, sqlite_busy_timeout_ms: int = 10_000) -> Engine:
    """An Engine for a SQLite file (WAL, busy timeout, foreign keys) or PostgreSQL (psycopg 3)."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        directory = Path(parsed.database).expanduser().resolve().parent
        if not directory.is_dir():
            raise DatabaseUnavailable(
                f"directory {directory} for the SQLite database does not exist"
            )
        try:
            # Created here, before SQLite opens it: SQLite would make it (and its -wal and
            # -shm files, which take its mode) readable by everyone under the usual umask.
            create_private(Path(parsed.database))
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the SQLite database {parsed.database}: {exc.strerror}"
            ) from None
        engine = create_engine(parsed)
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    try:
        return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except (NoSuchModuleError, ModuleNotFoundError) as exc:
        raise ConfigError(f"no driver for {safe_url(parsed)!r}: {exc}") from None


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """WAL + busy timeout + foreign keys on every connection; SQLAlchemy emits BEGIN itself."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, start transactions (needed for SAVEPOINT and
        # for BEGIN IMMEDIATE on writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # HQ checkpoints in the background (Database.checkpoint); a commit checkpoints
            # itself only when the WAL has grown to ~40 MB, so requests rarely pay for it.
            cursor.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
        finally:
            cursor.close()

    lock = _write_lock(engine)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(_SQLITE_BEGIN, "DEFERRED")
        if mode == "IMMEDIATE" and not conn.info.get(_HOLDS_LOCK):
            if not lock.acquire(busy_timeout_ms / 1000):
                locked = sqlite3.OperationalError("database is locked (waited for other writers)")
                raise OperationalError(f"BEGIN {mode}", None, locked)
            # Held until the connection goes back to the pool, after its COMMIT or ROLLBACK.
            conn.info[_HOLDS_LOCK] = True
        conn.exec_driver_sql(f"BEGIN {mode}")

    def _release(_dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_HOLDS_LOCK, False):
            lock.release()

    event.listen(engine, "checkin", _release)
    event.listen(engine, "invalidate", lambda c, record, _exc: _release(c, record))


WAL_AUTOCHECKPOINT_PAGES = 10_000
_HOLDS_LOCK = "stationwatch_write_lock"
# Weak: a lock lives as long as an engine's hooks use it (tests open many files).
_WRITE_LOCKS: weakref.WeakValueDictionary[str, FairLock] = weakref.WeakValueDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(engine: Engine) -> FairLock:
    """The writers' queue of one SQLite file, shared by every engine on it in this process."""
    path = str(Path(engine.url.database or "").expanduser().resolve())
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(path)
        if lock is None:
            lock = _WRITE_LOCKS[path] = FairLock()
        return lock


def is_retryable(exc: BaseException) -> bool:
    """True for a failure that a fresh attempt of the same transaction may not hit again."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


@contextmanager
def translate_errors(url: str | URL) -> Iterator[None]:
    """Map "cannot connect" failures of the driver to DatabaseUnavailable with a clear message."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"cannot use database {safe_url(url)}: {reason}") from exc


def insert_ignoring_conflict(
    dialect: str, model: type[Any], values: dict[str, Any], conflict_columns: list[str]
) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT (conflict_columns) DO NOTHING, for PostgreSQL or SQLite."""
    if dialect == "postgresql":
        return (
            postgresql.insert(model)
            .values(**values)
            .on_conflict_do_nothing(index_elements=conflict_columns)
        )
    return (
        sqlite.insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict_columns)
    )


class Database:
    """An engine plus session factories: `session()` for reads, `writer()` for writes."""

    def __init__(self, url: str, *, sqlite_busy_timeout_ms: int = 10_000) -> None:
        self.url = url
        self.engine = make_engine(url, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms)
        self.dialect = self.engine.dialect.name
        # On SQLite a writer takes the write lock at BEGIN, so two writers never both read and
        # then collide on upgrading their lock (which busy_timeout cannot resolve).
        write_bind = (
            self.engine.execution_options(**{_SQLITE_BEGIN: "IMMEDIATE"})
            if self.dialect == "sqlite"
            else self.engine
        )
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._writer = sessionmaker(bind=write_bind, expire_on_commit=False)

    def session(self) -> Session:
        """A session for reading (its transaction starts lazily and takes no write lock)."""
        return self._reader()

    def writer(self) -> Session:
        """A session for a transaction that writes."""
        return self._writer()

    def ping(self) -> None:
        """Run a trivial query; raise DatabaseUnavailable if the database does not answer."""
        with translate_errors(self.url), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def check_schema(self) -> None:
        """Raise SchemaOutOfDate unless the database is migrated to the code's head revision."""
        with translate_errors(self.url), self.engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
        heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
        if current != heads:
            raise SchemaOutOfDate(
                f"database {safe_url(self.url)} is at revision {sorted(current) or 'none'}, "
                f"the code needs {sorted(heads)}: run `stationwatch hq db upgrade`"
            )

    def checkpoint(self) -> None:
        """Copy the SQLite WAL into the database file without waiting for anyone (PASSIVE);
        nothing to do on PostgreSQL."""
        if self.dialect != "sqlite":
            return
        with self.engine.connect() as conn:
            # On the driver's connection: a checkpoint cannot run inside a transaction.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").close()

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()


def alembic_config() -> Config:
    """Alembic configuration built in code (no alembic.ini needed at runtime)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at `url` to `revision` (creates the schema on an empty database)."""
    _migrate(url, command.upgrade, revision)


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision` (for going back to an older version)."""
    try:
        _migrate(url, command.downgrade, revision)
    except CommandError as exc:  # an unknown revision, or one ahead of the database
        raise ConfigError(f"cannot downgrade to {revision!r}: {exc}") from None


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = OFF")
    finally:
        cursor.close()


def _migrate(url: str, step: Callable[[Config, str], None], revision: str) -> None:
    engine = make_engine(url)
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:
        # Batch mode copies a table and drops the old one, which enforced foreign keys forbid
        # for any table that other rows refer to (events to agents, ...): off while migrating
        # (SQLite ignores the pragma inside a transaction), and checked as a whole at the end.
        event.listen(engine, "connect", _foreign_keys_off)
    try:
        with translate_errors(url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            step(cfg, revision)
            if is_sqlite and (broken := conn.exec_driver_sql("PRAGMA foreign_key_check").all()):
                tables = sorted({row[0] for row in broken})
                raise SchemaOutOfDate(
                    f"migrating to {revision} would leave rows of {', '.join(tables)} referring "
                    "to rows that do not exist; nothing was changed"
                )
    finally:
        engine.dispose()
    logger.info("database %s is at revision %s", safe_url(url), revision)
