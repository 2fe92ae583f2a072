"""Scheduled jobs per site (remote maintenance, inspection checklists) run by APScheduler 3.

The `job_schedules` table is the truth; each row has an APScheduler job (id "schedule:<uuid>")
in a SQLAlchemyJobStore on HQ's own database (table `apscheduler_jobs`, created by migration
0002j), so triggers survive restarts and a run missed during downtime runs once afterwards
(coalesce=True, misfire_grace_time). The job function, `fire_schedule`, is importable by
reference and takes only strings; it inserts one queued job row, deduplicated on
(schedule_id, scheduled_for): when several HQ replicas each run the trigger, the slot is made
once.

The app's lifespan (hq_server.app) starts this with `start_schedules(settings, db, clock)` and
stops it with `JobScheduleRunner.stop()`. Besides the schedules, the runner calls
`hq_server.jobs.queue.expire_jobs` every EXPIRY_EVERY seconds and re-syncs the job store with
the table every RECONCILE_EVERY seconds (jobs added by another replica are seen then;
APScheduler 3 does not watch a shared store). At its start, jobs stored by an HQ from before the
package layout are pointed at the job function's current place (`adopt_stored_jobs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pickle
import re
import threading
import uuid
import zoneinfo
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from hq_server.core.clock import Clock
from hq_server.core.errors import NotFound
from hq_server.core.settings import Settings
from hq_server.jobs.queue import NOTIFIER, JobRequestInvalid, check_shape, expire_jobs
from hq_server.store.db import Database, insert_ignoring_conflict, make_engine
from hq_server.store.models import (
    APSCHEDULER_TABLE,
    JobRecord,
    JobSchedule,
    JobState,
    Site,
    apscheduler_jobs,
)
from protocol.wire import ID_PATTERN, JobKind

logger = logging.getLogger(__name__)

FIRE_FUNC = "hq_server.jobs.schedules:fire_schedule"
# Where the job function was before HQ's package layout (issue 12): an older HQ's job store names
# it so, and APScheduler drops, with an error, a stored job whose function does not import.
_FORMER_FIRE_FUNCS = frozenset({"hq_server.schedules:fire_schedule"})
JOB_ID_PREFIX = "schedule:"
MISFIRE_GRACE = timedelta(hours=1)
EXPIRY_EVERY = 30.0
RECONCILE_EVERY = 300.0
_MAX_SLOT_STEPS = 10_000
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*/,\-]{1,64}$")
_DIGIT = re.compile(r"\d")


class NewSchedule(BaseModel):
    """A recurring job: cron fields (minute hour day month day_of_week) in `timezone`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="", max_length=100)
    kind: JobKind
    item: str = Field(default="", max_length=64, pattern=r"^$|" + ID_PATTERN)
    device_id: str | None = Field(default=None, pattern=ID_PATTERN)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict, max_length=50)
    timeout_s: int = Field(default=300, ge=1, le=3600)
    minute: str = Field(default="0", description="cron minute field, e.g. 0 or */15")
    hour: str = Field(default="*", description="cron hour field, e.g. 6 or 8-18")
    day: str = Field(default="*", description="cron day-of-month field")
    month: str = Field(default="*", description="cron month field")
    day_of_week: str = Field(
        default="*", description="names only (mon-fri, sat,sun): cron numbers are ambiguous"
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone; default: the site's timezone"
    )

    @field_validator("minute", "hour", "day", "month", "day_of_week")
    @classmethod
    def _cron_chars(cls, v: str) -> str:
        if not _CRON_FIELD.fullmatch(v):
            raise ValueError("a cron field is 1-64 of: letters, digits, * / , -")
        return v

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("name must not contain NUL characters")
        return v


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise JobRequestInvalid(f"unknown timezone {name!r}") from None


def make_trigger(
    minute: str, hour: str, day: str, month: str, day_of_week: str, timezone: str
) -> CronTrigger:
    """The CronTrigger of a schedule; JobRequestInvalid for a bad expression."""
    if _DIGIT.search(day_of_week):
        raise JobRequestInvalid(
            "day_of_week takes names (mon, tue, ..., sun; ranges like mon-fri): numbers mean "
            "different days in cron and in APScheduler"
        )
    try:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=_zone(timezone),
        )
    except ValueError as exc:
        raise JobRequestInvalid(f"bad cron expression: {exc}") from None


def trigger_of(row: JobSchedule) -> CronTrigger:
    """The trigger of a stored schedule."""
    return make_trigger(row.minute, row.hour, row.day, row.month, row.day_of_week, row.timezone)


def next_fire(row: JobSchedule, now: datetime) -> datetime | None:
    """When the schedule fires next after `now` (computed from its cron fields)."""
    result: datetime | None = trigger_of(row).get_next_fire_time(None, now)
    return result


def slot_of(trigger: CronTrigger, now: datetime, lookback: timedelta = MISFIRE_GRACE) -> datetime:
    """The fire time a run at `now` belongs to: the latest one in (now - lookback, now].

    A run with no fire time in that span (fired by hand) gets `now` itself.
    """
    last: datetime | None = None
    fire: datetime | None = trigger.get_next_fire_time(None, now - lookback)
    for _ in range(_MAX_SLOT_STEPS):
        if fire is None or fire > now:
            break
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return now if last is None else last


def create_schedule(
    session: Session, site_id: int, request: NewSchedule, *, created_by: str, now: datetime
) -> JobSchedule:
    """Store a schedule after checking it; the caller registers it with the runner."""
    site = session.get(Site, site_id)
    if site is None:
        raise NotFound(f"no site {site_id}")
    if request.kind is JobKind.RUN_ACTION:
        raise JobRequestInvalid(
            "run_action cannot be scheduled: change actions need an approval per occasion"
        )
    check_shape(request.kind, request.item, request.device_id)
    timezone = request.timezone or site.timezone
    make_trigger(
        request.minute, request.hour, request.day, request.month, request.day_of_week, timezone
    )
    row = JobSchedule(
        id=uuid.uuid4(),
        site_id=site_id,
        name=request.name,
        kind=request.kind.value,
        item=request.item,
        device_id=request.device_id,
        params=dict(request.params),
        timeout_s=request.timeout_s,
        minute=request.minute,
        hour=request.hour,
        day=request.day,
        month=request.month,
        day_of_week=request.day_of_week,
        timezone=timezone,
        created_by=created_by[:200],
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_schedule(session: Session, site_id: int, schedule_id: uuid.UUID) -> JobSchedule:
    """A schedule of the site, or NotFound."""
    row = session.get(JobSchedule, schedule_id)
    if row is None or row.site_id != site_id:
        raise NotFound(f"no schedule {schedule_id} at site {site_id}")
    return row


# ---- The job function and the per-process registry it finds its database in ---------------


class _Runtime:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock


_RUNTIMES: dict[str, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def store_key(url: str) -> str:
    """A stable, secret-free key of a database URL (stored, pickled, in job arguments)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _runtime(key: str) -> _Runtime | None:
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is None and len(_RUNTIMES) == 1:
            # The URL changed (e.g. new credentials) since the job was stored: one HQ per process.
            runtime = next(iter(_RUNTIMES.values()))
        return runtime


def fire_schedule(key: str, schedule_id: str) -> None:
    """APScheduler job function: queue the schedule's job for the current slot (once)."""
    runtime = _runtime(key)
    if runtime is None:
        logger.error("schedule %s fired but no HQ database is registered in this process", key)
        return
    fire_now(runtime.db, runtime.clock.now(), uuid.UUID(schedule_id))


def fire_now(db: Database, now: datetime, schedule_id: uuid.UUID) -> JobRecord | None:
    """Insert the queued job of a schedule's slot at `now`; None if the slot already has one."""
    with db.writer() as session, session.begin():
        row = session.get(JobSchedule, schedule_id)
        if row is None:
            logger.warning("schedule %s fired but no longer exists", schedule_id)
            return None
        slot = slot_of(trigger_of(row), now)
        job_id = uuid.uuid4()
        values: dict[str, Any] = {
            "id": job_id,
            "site_id": row.site_id,
            "kind": row.kind,
            "item": row.item,
            "device_id": row.device_id,
            "params": row.params,
            "timeout_s": row.timeout_s,
            "status": JobState.QUEUED.value,
            "requested_by": f"schedule:{row.name or row.id}"[:200],
            "schedule_id": row.id,
            "scheduled_for": slot,
            "created_at": now,
        }
        stmt = insert_ignoring_conflict(
            db.dialect, JobRecord, values, ["schedule_id", "scheduled_for"]
        )
        inserted = session.execute(stmt.returning(JobRecord.id)).scalar() is not None
        job = session.get(JobRecord, job_id) if inserted else None
        site_id = row.site_id
    if job is None:
        logger.info("schedule %s: slot %s already queued", schedule_id, slot.isoformat())
        return None
    logger.info("site=%s schedule %s queued job %s for %s", site_id, schedule_id, job_id, slot)
    NOTIFIER.notify(site_id)
    return job


def adopt_stored_jobs(engine: Engine) -> int:
    """Point the jobs an older HQ stored at the job function's current place (FIRE_FUNC), so
    that APScheduler keeps them with their next run time (a run missed while HQ was down
    included); how many changed. Run before APScheduler reads its store."""
    table = apscheduler_jobs
    changed = 0
    with engine.begin() as conn:
        for job_id, blob in conn.execute(select(table.c.id, table.c.job_state)).all():
            # HQ's own table, unpickled the same way by APScheduler's job store.
            state = pickle.loads(blob)  # noqa: S301
            if not isinstance(state, dict) or state.get("func") not in _FORMER_FIRE_FUNCS:
                continue
            state["func"] = FIRE_FUNC
            blob = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
            conn.execute(update(table).where(table.c.id == job_id).values(job_state=blob))
            changed += 1
    if changed:
        logger.info("%d stored schedule jobs now name %s", changed, FIRE_FUNC)
    return changed


# ---- The runner -----------------------------------------------------------------------------


class JobScheduleRunner:
    """APScheduler on HQ's database for one app; `scheduler` is None when disabled."""

    def __init__(self, db: Database, clock: Clock, *, enabled: bool) -> None:
        self.db = db
        self.clock = clock
        self.key = store_key(db.url)
        self.scheduler: BackgroundScheduler | None = None
        self._store_engine: Engine | None = None
        self._stopping = False
        if enabled:
            self._store_engine = make_engine(db.url)
            store = SQLAlchemyJobStore(engine=self._store_engine, tablename=APSCHEDULER_TABLE)
            self.scheduler = BackgroundScheduler(
                jobstores={"default": store, "local": MemoryJobStore()},
                executors={"default": {"type": "threadpool", "max_workers": 2}},
                job_defaults={
                    "coalesce": True,
                    "misfire_grace_time": int(MISFIRE_GRACE.total_seconds()),
                    "max_instances": 1,
                },
                timezone="UTC",
            )

    @property
    def running(self) -> bool:
        """True while APScheduler runs in this process."""
        return self.scheduler is not None and self.scheduler.running and not self._stopping

    def start(self) -> None:
        """Register the database for the job function, start APScheduler, sync the store."""
        if self.scheduler is None:
            return
        with _RUNTIMES_LOCK:
            _RUNTIMES[self.key] = _Runtime(self.db, self.clock)
        assert self._store_engine is not None
        adopt_stored_jobs(self._store_engine)
        self.scheduler.start()
        self.reconcile()
        self.scheduler.add_job(
            self.expire,
            "interval",
            seconds=EXPIRY_EVERY,
            id="hq:expire-jobs",
            jobstore="local",
            replace_existing=True,
        )
        self.scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=RECONCILE_EVERY,
            id="hq:reconcile-schedules",
            jobstore="local",
            replace_existing=True,
        )
        logger.info("job schedules running (APScheduler on %s)", APSCHEDULER_TABLE)

    def stop(self) -> None:
        """Stop APScheduler (waiting for a running job) and unregister the database."""
        if self.scheduler is None:
            return
        self._stopping = True
        if self.scheduler.running:
            # APScheduler 3's thread processes due jobs once more after shutdown(): with the
            # executor already gone, a schedule due at that instant would be marked run
            # without running. Detach the persistent store first (this waits for a pass in
            # progress), so such a run stays due for the next start.
            self.scheduler.pause()
            self.scheduler.remove_jobstore("default", shutdown=False)
            self.scheduler.shutdown(wait=True)
        if self._store_engine is not None:
            self._store_engine.dispose()
        with _RUNTIMES_LOCK:
            _RUNTIMES.pop(self.key, None)

    def expire(self) -> int:
        """Expire overdue jobs (periodic)."""
        with self.db.writer() as session, session.begin():
            return expire_jobs(session, self.clock.now())

    def _add(self, row: JobSchedule, *, replace: bool) -> None:
        assert self.scheduler is not None
        self.scheduler.add_job(
            FIRE_FUNC,
            trigger=trigger_of(row),
            args=[self.key, str(row.id)],
            id=JOB_ID_PREFIX + str(row.id),
            name=f"site {row.site_id}: {row.kind} {row.item}".strip()[:100],
            jobstore="default",
            replace_existing=replace,
        )

    def register(self, row: JobSchedule) -> None:
        """Add (or replace) the APScheduler job of a stored schedule, when running."""
        if self.running:
            self._add(row, replace=True)

    def unregister(self, schedule_id: uuid.UUID) -> None:
        """Remove the APScheduler job of a schedule, when running."""
        if not self.running:
            return
        assert self.scheduler is not None
        with contextlib.suppress(JobLookupError):
            self.scheduler.remove_job(JOB_ID_PREFIX + str(schedule_id), jobstore="default")

    def next_run_time(self, schedule_id: uuid.UUID) -> datetime | None:
        """When APScheduler will fire the schedule next (None when not running or unknown)."""
        if not self.running:
            return None
        assert self.scheduler is not None
        job = self.scheduler.get_job(JOB_ID_PREFIX + str(schedule_id), jobstore="default")
        when: datetime | None = None if job is None else job.next_run_time
        return when

    def reconcile(self) -> None:
        """Make the job store match the table: add missing jobs, drop orphans, fix arguments.

        Existing jobs keep their next run time (re-adding them would forget a missed run).
        """
        if not self.running:
            return
        assert self.scheduler is not None
        with self.db.session() as session:
            rows = {str(r.id): r for r in session.scalars(select(JobSchedule))}
        stored = {
            job.id: job
            for job in self.scheduler.get_jobs(jobstore="default")
            if job.id.startswith(JOB_ID_PREFIX)
        }
        for job_id, job in stored.items():
            schedule_id = job_id.removeprefix(JOB_ID_PREFIX)
            if schedule_id not in rows:
                self.unregister(uuid.UUID(schedule_id))
            elif list(job.args) != [self.key, schedule_id]:
                self.scheduler.modify_job(job_id, jobstore="default", args=[self.key, schedule_id])
        for schedule_id, row in rows.items():
            if JOB_ID_PREFIX + schedule_id not in stored:
                self._add(row, replace=True)


def start_schedules(settings: Settings, db: Database, clock: Clock) -> JobScheduleRunner:
    """Start the job schedules of an app (a disabled runner if settings turn them off)."""
    runner = JobScheduleRunner(db, clock, enabled=settings.job_schedules_enabled)
    runner.start()
    return runner
