"""Errors raised by HQ's domain code; the HTTP layer and the CLI map them at their boundary.

    HQError
    ├── ConfigError                  bad settings: a malformed database URL, a bad timezone, ...
    ├── DatabaseError
    │   ├── DatabaseUnavailable      the database cannot be reached or opened
    │   └── SchemaOutOfDate          the database is not migrated to the code's revision
    ├── AuthError                    -> 401, with WWW-Authenticate: Bearer
    │   └── EnrollmentTokenInvalid   unknown or expired enrollment token (-> 401)
    ├── LoginThrottled               too many failed logins: locked out for a while (-> 429)
    ├── EnrollmentTokenUsed          the one-time enrollment token was already used (-> 409)
    ├── PermissionDenied             the caller is known but may not do this (-> 403)
    ├── NotFound                     (-> 404)
    ├── Conflict                     the object's state forbids this (-> 409)
    │   └── InvalidTransition        a ticket action not allowed in the ticket's status
    ├── InvalidInput                 well-formed but unacceptable input (-> 422, naming the field)
    └── TooLarge                     over a configured size limit (-> 413)

Library errors (SQLAlchemy, psycopg, sqlite3) are mapped into these in `hq_server.store.db`; the
HTTP status of each is decided in `hq_server.api.errors`, never here. Unreadable request bodies
(400/413/415) are HTTP matters and answered in `hq_server.api.body`.
"""

from __future__ import annotations


class HQError(Exception):
    """Base of every error HQ raises on purpose; the message is safe to show to the caller."""


class ConfigError(HQError):
    """A setting is invalid (e.g. an unparsable database URL or an unknown timezone)."""


class DatabaseError(HQError):
    """The database cannot serve HQ."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached, opened or authenticated against."""


class SchemaOutOfDate(DatabaseError):
    """The database schema is not at the revision this code expects."""


class AuthError(HQError):
    """Missing, malformed, unknown or revoked credentials."""


class EnrollmentTokenInvalid(AuthError):
    """The enrollment token is unknown or has expired."""


class LoginThrottled(HQError):
    """Too many failed logins for this user name or from this address; retry later."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EnrollmentTokenUsed(HQError):
    """The one-time enrollment token has already been exchanged for an agent token."""


class PermissionDenied(HQError):
    """The caller is authenticated but its kind or role does not allow this call."""


class NotFound(HQError):
    """The requested object does not exist."""


class Conflict(HQError):
    """The request clashes with the current state (a taken name, a finished ticket, ...)."""


class InvalidTransition(Conflict):
    """A ticket action that its current status does not allow."""


class InvalidInput(HQError):
    """Input that passed schema validation but makes no sense (e.g. end before start)."""

    def __init__(
        self, message: str, field: str | None = None, *, loc: tuple[str | int, ...] = ()
    ) -> None:
        super().__init__(message)
        # Where in the body, e.g. ("levels", 0, "contacts", 1, "webhook_url"); `field` names a
        # top-level one.
        self.loc = loc or ((field,) if field else ())


class TooLarge(HQError):
    """Input over a configured size limit (e.g. a heartbeat naming too many devices)."""
