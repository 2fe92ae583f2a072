"""The HQ web application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from hq_server.api import agent_routes, health_routes, user_routes
from hq_server.api.errors import install_error_handlers
from hq_server.clock import Clock, SystemClock
from hq_server.db import Database, safe_url
from hq_server.settings import Settings

logger = logging.getLogger(__name__)


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

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(db.check_schema)
        logger.info("HQ ready on database %s", safe_url(db.url))
        try:
            yield
        finally:
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
    app.state.clock = clock or SystemClock()
    install_error_handlers(app)
    app.include_router(health_routes.router)
    app.include_router(agent_routes.router)
    app.include_router(user_routes.router)
    return app


def app_from_env() -> FastAPI:
    """An app configured from STATIONWATCH_* variables (for `uvicorn --factory`)."""
    return create_app(Settings.from_env())
