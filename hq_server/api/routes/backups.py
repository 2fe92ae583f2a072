"""Config backups: agents upload (gzip accepted), users list versions, read one, diff two."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

from fastapi import APIRouter, Path, Query

from hq_server.api.body import BoundedBodyRoute
from hq_server.api.deps import AgentDep, ClockDep, DbDep, SiteId, ViewerDep
from hq_server.api.errors import AUTH_ERRORS, backup_errors, error, errors
from hq_server.api.schemas.backups import BackupDetailOut, BackupDiffOut, BackupVersionOut
from hq_server.core.errors import NotFound
from hq_server.jobs.backups import diff_versions, get_version, list_versions, store_backup
from hq_server.jobs.secret_check import SCRUB_MARKER
from hq_server.store.models import Site
from protocol.wire import API_PREFIX, ID_PATTERN, BackupAck, ConfigBackup

router = APIRouter(
    prefix=API_PREFIX,
    route_class=BoundedBodyRoute,
    responses=AUTH_ERRORS,
)

_INT32 = 2_147_483_647
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="The device's id")]
Version = Annotated[int, Path(ge=1, le=_INT32, description="A version number")]
_NOT_FOUND = error(404, "No such site, device or version")


@router.post(
    "/backups",
    response_model=BackupAck,
    tags=["agent"],
    responses={
        **error(400, "sha256 does not match the text; bad JSON/gzip"),
        **errors(408, 413, 415),
        422: {"description": f"Unscrubbed secrets (mark scrubbed ones {SCRUB_MARKER}) or bad body"},
    },
    description="A device configuration scrubbed of secrets by the agent (gzip welcome). "
    "Stored as a new version only when its text differs from the latest; idempotent.",
)
def post_backup(backup: ConfigBackup, agent: AgentDep, db: DbDep, clock: ClockDep) -> BackupAck:
    """Store a config backup of a device of the agent's site."""
    if backup.taken_at.tzinfo is None:
        backup = backup.model_copy(update={"taken_at": backup.taken_at.replace(tzinfo=UTC)})
    with backup_errors(), db.writer() as session, session.begin():
        return store_backup(
            session,
            site_id=agent.site_id,
            agent_id=agent.agent_id,
            backup=backup,
            now=clock.now(),
        )


def _site_exists(db: DbDep, site_id: int) -> None:
    with db.session() as session:
        if session.get(Site, site_id) is None:
            raise NotFound(f"no site {site_id}")


@router.get(
    "/sites/{site_id}/devices/{device_id}/backups",
    response_model=list[BackupVersionOut],
    tags=["backups"],
    responses=_NOT_FOUND,
)
def get_backups(
    site_id: SiteId, device_id: DeviceId, _user: ViewerDep, db: DbDep
) -> list[BackupVersionOut]:
    """The stored versions of a device's config, newest first (without text)."""
    _site_exists(db, site_id)
    with db.session() as session:
        return [
            BackupVersionOut.model_validate(r) for r in list_versions(session, site_id, device_id)
        ]


@router.get(
    "/sites/{site_id}/devices/{device_id}/backups/diff",
    response_model=BackupDiffOut,
    tags=["backups"],
    responses=_NOT_FOUND,
    description="Unified diff of two versions (default: the previous version against the latest).",
)
def get_backup_diff(
    site_id: SiteId,
    device_id: DeviceId,
    _user: ViewerDep,
    db: DbDep,
    from_: Annotated[int | None, Query(alias="from", ge=1, le=_INT32)] = None,
    to: Annotated[int | None, Query(ge=1, le=_INT32)] = None,
) -> BackupDiffOut:
    """Diff two versions of a device's config."""
    with db.session() as session:
        diff = diff_versions(session, site_id, device_id, from_, to)
    return BackupDiffOut(
        device_id=device_id,
        from_version=diff.from_version,
        to_version=diff.to_version,
        added=diff.added,
        removed=diff.removed,
        diff=diff.diff,
    )


@router.get(
    "/sites/{site_id}/devices/{device_id}/backups/{version}",
    response_model=BackupDetailOut,
    tags=["backups"],
    responses=_NOT_FOUND,
)
def get_backup(
    site_id: SiteId, device_id: DeviceId, version: Version, _user: ViewerDep, db: DbDep
) -> BackupDetailOut:
    """One version of a device's config, with its text."""
    with db.session() as session:
        return BackupDetailOut.model_validate(get_version(session, site_id, device_id, version))
