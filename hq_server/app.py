"""The HQ web application: the composition root of hq_server's packages.

`create_app` wires the database, the clock, the API routers and middleware, and one lifespan
that checks the schema and HQ's key file, then runs both schedulers of the process: the
escalation scheduler loop (hq_server.scheduler: maintenance windows, dead man's switch,
escalations, notifications) and APScheduler's job schedules (hq_server.jobs.schedules), and
checkpoints the SQLite WAL; it stops them in the reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hq_server.access import secretbox
from hq_server.access.throttle import LoginThrottle
from hq_server.api.audit import AuditMiddleware
from hq_server.api.errors import install_error_handlers
from hq_server.api.forwarded import ForwardedMiddleware
from hq_server.api.routes import (
    agent,
    agents,
    alarms,
    audit,
    auth,
    backups,
    calendars,
    chains,
    customers,
    enrollment,
    health,
    jobs,
    maintenance,
    oncall,
    reports,
    schedules,
    sites,
    tickets,
    tokens,
    users,
)
from hq_server.core.clock import Clock, SystemClock
from hq_server.core.settings import Settings
from hq_server.jobs.schedules import start_schedules
from hq_server.scheduler import Scheduler
from hq_server.store.db import Database, safe_url
from hq_server.web.console import install_console

logger = logging.getLogger(__name__)

# How long shutdown waits for the scheduler's current step to finish.
STOP_TIMEOUT_S = 30.0
# How often the SQLite WAL is checkpointed outside the requests' path.
CHECKPOINT_INTERVAL_S = 1.0


def _version() -> str:
    try:
        return version("stationwatch")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(
    settings: Settings, *, clock: Clock | None = None, database: Database | None = None
) -> FastAPI:
    """Build the HQ app; the database must already be migrated (checked at startup)."""
    db = database or Database(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )

    the_clock = clock or SystemClock()
    scheduler = Scheduler(db, the_clock, settings)

    @asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(db.check_schema)
            await run_in_threadpool(establish_key, db, settings, the_clock)
        except BaseException:
            await run_in_threadpool(scheduler.close)
            if database is None:
                db.dispose()
            raise
        logger.info("HQ ready on database %s", safe_url(db.url))
        task = asyncio.create_task(scheduler.run()) if settings.scheduler_enabled else None
        checkpoints = asyncio.create_task(_checkpoints(db)) if db.dialect == "sqlite" else None
        try:
            schedules = await run_in_threadpool(start_schedules, settings, db, the_clock)
            running.state.job_schedules = schedules
            try:
                yield
            finally:
                await run_in_threadpool(schedules.stop)
        finally:
            if checkpoints is not None:
                checkpoints.cancel()
                with suppress(asyncio.CancelledError):
                    await checkpoints
            if task is not None:
                scheduler.stop()
                try:
                    await asyncio.wait_for(task, timeout=STOP_TIMEOUT_S)
                except TimeoutError:  # a step stuck on a slow SMTP/webhook peer
                    logger.warning("scheduler did not stop within %s s", STOP_TIMEOUT_S)
            await run_in_threadpool(scheduler.close)
            if database is None:
                db.dispose()

    app = FastAPI(
        title="StationWatch HQ",
        version=_version(),
        description="Receives graded fault events from station agents; keeps alarms and tickets.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.clock = the_clock
    app.state.scheduler = scheduler
    # One login throttle for the API and the console (hq_server.access.throttle).
    app.state.login_throttle = LoginThrottle.of(
        settings.login_max_failures, settings.login_failure_window, settings.login_lockout
    )
    install_error_handlers(app)
    for routes in (
        health,
        agent,
        alarms,
        tickets,
        sites,
        auth,
        users,
        tokens,
        audit,
        agents,
        enrollment,
        calendars,
        chains,
        customers,
        maintenance,
        jobs,
        schedules,
        reports,
        backups,
        oncall,
    ):
        app.include_router(routes.router)
    install_console(app)
    app.add_middleware(AuditMiddleware)
    # Outermost, so that the audit row and the login throttle see the client it names.
    app.add_middleware(ForwardedMiddleware, trusted=settings.trusted_proxies)
    return app


def establish_key(db: Database, settings: Settings, clock: Clock) -> None:
    """Refuse to start with a key file that is not the database's; the first time, record it
    and seal the webhook keys stored before HQ sealed them (hq_server.access.secretbox)."""
    with db.writer() as session, session.begin():
        sealed = secretbox.establish(session, settings, clock.now())
    if sealed:
        logger.warning(
            "sealed the webhook keys of %d escalation chains and tickets with %s",
            sealed,
            secretbox.key_file(settings),
        )


async def _checkpoints(db: Database) -> None:
    """Checkpoint the SQLite WAL every second, in a worker thread (SQLite works without the
    GIL), so that commits do not have to."""
    while True:
        await asyncio.sleep(CHECKPOINT_INTERVAL_S)
        try:
            await run_in_threadpool(db.checkpoint)
        except (SQLAlchemyError, sqlite3.Error) as exc:  # requests will report it too
            logger.warning("WAL checkpoint failed: %s", exc)


def app_from_env() -> FastAPI:
    """An app configured from STATIONWATCH_* variables (for `uvicorn --factory`)."""
    return create_app(Settings.from_env())
