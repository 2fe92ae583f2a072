"""ASGI middleware writing an audit row for every mutating call under /api/v1, and for every
form the console (hq_server.web) posts: each is the action of an API call, audited alike.

Done once here, not per route: authentication (hq_server.api.deps) leaves the principal in the
request state, routes may add a summary and target ids (`deps.audit_note`); the status is taken
from the response; the client is the connection's address, or the one a trusted proxy names
(hq_server.api.forwarded). Text is cleaned, never refused (hq_server.access.audit.clean). Calls by
agents (events, heartbeats, job polls, backup uploads) are not audited.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hq_server.access.audit import AuditRecord, record
from hq_server.access.auth import AgentPrincipal, UserPrincipal
from hq_server.core.clock import Clock
from hq_server.store.db import Database
from protocol.wire import API_PREFIX

logger = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Agent traffic: high volume, authenticated by agent tokens, recorded in its own tables.
AGENT_PATHS = frozenset({f"{API_PREFIX}/events", f"{API_PREFIX}/heartbeat"})


def _audited(scope: Scope) -> bool:
    if scope["type"] != "http" or scope["method"] not in MUTATING:
        return False
    path: str = scope["path"]
    if path.startswith(API_PREFIX + "/"):
        return path not in AGENT_PATHS
    # The console's forms; its sessions leave a UserPrincipal (token_id 0) like a token does.
    return True


class AuditMiddleware:
    """Record who did what, when, from where, with what result."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the call on; afterwards append its audit row."""
        if not _audited(scope):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            await run_in_threadpool(self._write, scope, status)

    def _write(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        principal = state.get("principal")
        if isinstance(principal, AgentPrincipal):
            return  # agent endpoints (job results, backups) are the agent protocol, not admin
        app = scope["app"]
        db: Database = app.state.db
        clock: Clock = app.state.clock
        if isinstance(principal, UserPrincipal):
            actor, role = principal.name, principal.role.value
        else:
            actor, role = str(state.get("audit_actor", "anonymous")), ""
        route = scope.get("route")
        summary = state.get("audit_summary") or getattr(route, "name", None) or "unrouted"
        targets = {k: _plain(v) for k, v in scope.get("path_params", {}).items()}
        targets.update({k: _plain(v) for k, v in state.get("audit_targets", {}).items()})
        client = scope.get("client")
        entry = AuditRecord(
            at=clock.now(),
            actor=actor,
            role=role,
            method=scope["method"],
            path=scope["path"],
            summary=str(summary),
            target_ids=targets,
            client=str(client[0]) if client else "",
            status=status,
        )
        try:
            with db.writer() as session, session.begin():
                record(session, entry)
        except SQLAlchemyError:
            logger.exception("could not write the audit row for %s %s", entry.method, entry.path)


def _plain(value: object) -> object:
    return value if isinstance(value, int | float | str | bool) or value is None else str(value)
