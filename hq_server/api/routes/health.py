"""GET /healthz: no authentication; 200 when the database answers, 503 otherwise."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from hq_server.api.deps import DbDep
from hq_server.api.schemas.common import HealthOut
from hq_server.core.errors import DatabaseError

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database does not answer"}},
)
def healthz(db: DbDep) -> HealthOut | JSONResponse:
    """Liveness plus a trivial database query."""
    try:
        db.ping()
    except DatabaseError as exc:
        logger.warning("health check: %s", exc)
        body = HealthOut(status="error", db="unavailable")
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="ok", db="ok")
