"""HQ errors mapped to HTTP responses ({"detail": message}): the one place statuses are chosen."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from hq_server.errors import (
    AuthError,
    DatabaseError,
    EnrollmentTokenInvalid,
    EnrollmentTokenUsed,
    HQError,
    NotFound,
    PermissionDenied,
)

logger = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"description": "Missing, unknown or revoked bearer token"},
    403: {"description": "The token's kind or role does not allow this call"},
}


def status_of(exc: HQError) -> int:
    """The HTTP status for an HQ error."""
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, EnrollmentTokenUsed):
        return 409
    if isinstance(exc, DatabaseError):
        return 503
    return 400


async def _hq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HQError)
    status = status_of(exc)
    headers = {}
    if isinstance(exc, AuthError) and not isinstance(exc, EnrollmentTokenInvalid):
        headers["WWW-Authenticate"] = "Bearer"
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: database error: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers mapping HQ and database errors to responses."""
    app.add_exception_handler(HQError, _hq_error)
    app.add_exception_handler(OperationalError, _database_down)
