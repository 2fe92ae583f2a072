"""HQ errors mapped to HTTP responses ({"detail": message}): the one place statuses are chosen,
and the one place the OpenAPI error responses of the routes are declared."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

from hq_server.api.schemas.common import ErrorOut
from hq_server.core.errors import (
    AuthError,
    Conflict,
    DatabaseError,
    EnrollmentTokenInvalid,
    EnrollmentTokenUsed,
    HQError,
    InvalidInput,
    LoginThrottled,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from hq_server.jobs.backups import BackupHashMismatch, BackupRefused
from hq_server.jobs.queue import JobConflict, JobRequestInvalid

logger = logging.getLogger(__name__)

Responses = dict[int | str, dict[str, Any]]

_DESCRIPTIONS = {
    400: "Unreadable body (bad JSON or gzip)",
    401: "Missing, unknown, expired or revoked bearer token",
    403: "The token's kind or role does not allow this call",
    404: "No such object",
    408: "Body not all received within body_timeout (the connection is closed)",
    409: "The object's current state does not allow this",
    413: "Body larger than the limit (after decompression)",
    415: "Content-Encoding other than gzip",
}


def error(status: int, description: str | None = None) -> Responses:
    """The OpenAPI entry of an error status answered with an ErrorOut body; its usual
    description unless the route names what is missing or wrong more precisely."""
    return {status: {"model": ErrorOut, "description": description or _DESCRIPTIONS[status]}}


def errors(*statuses: int) -> Responses:
    """The OpenAPI entries of these error statuses, with their usual descriptions.

    422 is not listed: FastAPI documents it (HTTPValidationError), and InvalidInput is answered
    in that same shape.
    """
    return {code: spec for status in statuses for code, spec in error(status).items()}


# Every call with a bearer token (hq_server.api.deps).
AUTH_ERRORS = errors(401, 403)
# Every call that may carry a body (hq_server.api.body).
BODY_ERRORS = errors(400, 408, 413, 415)
# Logins (hq_server.access.throttle): an ErrorOut and Retry-After.
THROTTLED: Responses = {
    429: {
        "model": ErrorOut,
        "description": "Too many failed logins for this user name or from this address",
        "headers": {
            "Retry-After": {
                "description": "Seconds until a login is admitted again",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    }
}
# Calls whose 422 may also be a plain message (job_errors below).
INVALID: Responses = {
    422: {"description": "Invalid request (a message, or FastAPI's validation errors)"}
}
JOB_NOT_FOUND = error(404, "No such site, job or schedule")


@contextlib.contextmanager
def job_errors() -> Iterator[None]:
    """Answer job errors with their HTTP statuses (others go to the app's HQError handler)."""
    try:
        yield
    except JobRequestInvalid as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except JobConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@contextlib.contextmanager
def backup_errors() -> Iterator[None]:
    """Answer config backup errors with their HTTP statuses."""
    try:
        yield
    except BackupHashMismatch as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    except BackupRefused as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


def status_of(exc: HQError) -> int:
    """The HTTP status for an HQ error."""
    if isinstance(exc, AuthError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, EnrollmentTokenUsed | Conflict):
        return 409
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, TooLarge):
        return 413
    if isinstance(exc, LoginThrottled):
        return 429
    if isinstance(exc, DatabaseError):
        return 503
    return 400


async def _hq_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HQError)
    status = status_of(exc)
    headers = {}
    if isinstance(exc, AuthError) and not isinstance(exc, EnrollmentTokenInvalid):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, LoginThrottled):
        headers["Retry-After"] = str(exc.retry_after_s)
    if status >= 500:
        logger.error("%s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, InvalidInput):
        # The shape of FastAPI's own validation errors, so 422 has one schema in the OpenAPI.
        body = [{"loc": ["body", *exc.loc], "msg": str(exc), "type": "value_error"}]
        return JSONResponse({"detail": body}, status_code=422)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


async def _database_down(request: Request, exc: Exception) -> JSONResponse:
    logger.error("%s %s: database error: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # A concurrent change won a uniqueness race the route did not expect: ask for a retry.
    logger.warning("%s %s: integrity error: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "a concurrent change conflicts with this one; reload and retry"},
        status_code=409,
    )


async def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the schema let through (e.g. a NUL character on PostgreSQL,
    # a number out of the column's range): the input is at fault, not HQ.
    assert isinstance(exc, StatementError)
    if not isinstance(exc, DataError) and not isinstance(exc.orig, ValueError | OverflowError):
        raise exc
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
    logger.info(
        "%s %s: value refused by the database: %s", request.method, request.url.path, reason
    )
    # Calls without a body filter by query parameters: the value came from there.
    where = "body" if request.method in ("POST", "PUT", "PATCH") else "query"
    body = [
        {"loc": [where], "msg": f"value refused by the database: {reason}", "type": "value_error"}
    ]
    return JSONResponse({"detail": body}, status_code=422)


# Submitted values are shown back only from these parts of a request: a body or a header may
# hold a password, a token or a key, and its value is never echoed.
_ECHOED = frozenset({"query", "path"})
# A body wrong everywhere yields an error per item; the answer names the first ones.
MAX_REPORTED_ERRORS = 50


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own shape ({"detail": [{"type", "loc", "msg", ...}]}), without the submitted
    # values of body fields, and in text that always encodes (a lone surrogate is replaced).
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = [public_error(error) for error in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        detail.append(
            {
                "type": "too_many_errors",
                "loc": ["body"],
                "msg": f"and {len(errors) - MAX_REPORTED_ERRORS} more errors",
            }
        )
    return JSONResponse({"detail": detail}, status_code=422)


def public_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One validation error as it may be shown to the caller: the submitted value only for a
    query or path parameter, context values as plain text."""
    loc = [_plain(part) for part in error.get("loc", ())]
    out: dict[str, Any] = {
        "type": str(error.get("type", "value_error")),
        "loc": loc,
        "msg": _text(str(error.get("msg", ""))),
    }
    if loc and loc[0] in _ECHOED and "input" in error:
        out["input"] = _plain(error["input"])
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping) and ctx:
        out["ctx"] = {str(k): _plain(v) for k, v in ctx.items()}
    return out


def _plain(value: object) -> object:
    """A JSON-safe copy of a scalar or a list of them; anything else as its text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return _text(str(value))


def _text(value: str) -> str:
    """`value` with lone surrogates replaced by U+FFFD, so that it encodes as UTF-8."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers mapping HQ and database errors to responses."""
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(HQError, _hq_error)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(StatementError, _bad_value)
    app.add_exception_handler(OperationalError, _database_down)
