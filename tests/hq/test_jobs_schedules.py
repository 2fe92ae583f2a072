"""Job schedules: APScheduler with its job store in HQ's database, through the real app."""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import create_engine, func, select, update

from hq_server.access.auth import create_api_token
from hq_server.app import create_app
from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.jobs.schedules import FIRE_FUNC, JOB_ID_PREFIX, JobScheduleRunner, fire_now
from hq_server.sites.registry import ensure_site
from hq_server.store.db import Database
from hq_server.store.models import APSCHEDULER_TABLE, JobRecord, apscheduler_jobs
from tests.hq.conftest import HQ, TestClient
from tests.hq.test_jobs import auth, poll, site_id

CHECKLIST = {"kind": "run_checklist", "item": "daily_inspection", "minute": "0", "hour": "6"}


def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until condition() holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def jobs_of(db: Database, schedule_id: str) -> list[JobRecord]:
    """The jobs a schedule queued."""
    with db.session() as session:
        return list(
            session.scalars(
                select(JobRecord).where(JobRecord.schedule_id == uuid.UUID(schedule_id))
            )
        )


def runner_of(client: TestClient) -> JobScheduleRunner:
    """The schedule runner of a started app."""
    runner: JobScheduleRunner = client.app.state.job_schedules  # type: ignore[attr-defined]
    return runner


def create_schedule(client: TestClient, token: str, site: int, **body: Any) -> dict[str, Any]:
    """POST a schedule, asserting success."""
    response = client.post(
        f"/api/v1/sites/{site}/schedules", json={**CHECKLIST, **body}, headers=auth(token)
    )
    assert response.status_code == 201, response.text
    schedule: dict[str, Any] = response.json()
    return schedule


def fire(client: TestClient, schedule_id: str) -> None:
    """Make APScheduler run the schedule's job now (its trigger is untouched)."""
    runner_of(client).scheduler.modify_job(  # type: ignore[union-attr]
        JOB_ID_PREFIX + schedule_id, jobstore="default", next_run_time=datetime.now(UTC)
    )


def test_a_schedule_fires_and_queues_a_job_for_the_site(hq: HQ) -> None:
    agent = hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    schedule = create_schedule(hq.client, engineer, site, name="daily")
    assert schedule["timezone"] == "UTC"
    next_run = datetime.fromisoformat(schedule["next_run_time"])
    assert (next_run.hour, next_run.minute) == (6, 0)
    listed = hq.get(engineer, f"/api/v1/sites/{site}/schedules").json()
    assert [s["id"] for s in listed] == [schedule["id"]]

    fire(hq.client, schedule["id"])
    wait_for(lambda: len(jobs_of(hq.db, schedule["id"])) == 1)
    job = jobs_of(hq.db, schedule["id"])[0]
    assert (job.kind, job.item, job.status) == ("run_checklist", "daily_inspection", "queued")
    assert job.requested_by == "schedule:daily"
    answer = poll(hq, agent)
    assert [j["job_id"] for j in answer["jobs"]] == [str(job.id)]
    # The trigger went on: the next run is again the next 06:00.
    runner = runner_of(hq.client)
    again = runner.next_run_time(uuid.UUID(schedule["id"]))
    assert again is not None and (again.hour, again.minute) == (6, 0)

    # Deleting the schedule keeps the jobs it made.
    path = f"/api/v1/sites/{site}/schedules/{schedule['id']}"
    assert hq.client.delete(path, headers=auth(engineer)).status_code == 204
    assert runner.next_run_time(uuid.UUID(schedule["id"])) is None
    response = hq.get(engineer, f"/api/v1/jobs/{job.id}")
    assert response.status_code == 200
    assert response.json()["schedule_id"] is None


def test_one_slot_queues_one_job_however_often_it_fires(hq: HQ) -> None:
    hq.enroll()
    site = site_id(hq)
    schedule = create_schedule(hq.client, hq.user_token(Role.ENGINEER), site)
    schedule_id = uuid.UUID(schedule["id"])
    six = datetime(2026, 3, 3, 6, 0, tzinfo=UTC)
    # Two replicas firing the same slot, one of them a little late.
    assert fire_now(hq.db, six + timedelta(seconds=1), schedule_id) is not None
    assert fire_now(hq.db, six + timedelta(minutes=3), schedule_id) is None
    # The next day is another slot.
    job = fire_now(hq.db, six + timedelta(days=1, seconds=2), schedule_id)
    assert job is not None and job.scheduled_for == six + timedelta(days=1)
    assert len(jobs_of(hq.db, schedule["id"])) == 2


def test_schedule_validation_and_roles(hq: HQ) -> None:
    hq.enroll()
    site = site_id(hq)
    engineer = hq.user_token(Role.ENGINEER)
    path = f"/api/v1/sites/{site}/schedules"
    bad = [
        {"kind": "run_action", "item": "reboot"},  # needs an approval per occasion
        {"day_of_week": "1-5"},  # ambiguous numbers
        {"minute": "61"},
        {"hour": "x"},
        {"minute": "0 6"},
        {"timezone": "Mars/Olympus"},
        {"kind": "backup_config"},  # needs a device
        {"kind": "backup_config", "item": "", "device_id": "sw 1"},
    ]
    for change in bad:
        response = hq.client.post(path, json={**CHECKLIST, **change}, headers=auth(engineer))
        assert response.status_code == 422, (change, response.text)
    ok = {**CHECKLIST, "day_of_week": "mon-fri", "timezone": "Asia/Shanghai"}
    created = hq.client.post(path, json=ok, headers=auth(engineer))
    assert created.status_code == 201, created.text
    next_run = datetime.fromisoformat(created.json()["next_run_time"])
    assert next_run.utcoffset() is not None
    assert next_run.astimezone(UTC).hour == 22  # 06:00 in Shanghai

    viewer = hq.user_token()
    assert hq.client.post(path, json=CHECKLIST, headers=auth(viewer)).status_code == 403
    assert hq.get(viewer, path).status_code == 200
    assert (
        hq.client.post(
            "/api/v1/sites/999/schedules", json=CHECKLIST, headers=auth(engineer)
        ).status_code
        == 404
    )
    gone = f"{path}/{uuid.uuid4()}"
    assert hq.client.delete(gone, headers=auth(engineer)).status_code == 404
    schedule_id = created.json()["id"]
    assert hq.client.delete(f"{path}/{schedule_id}", headers=auth(viewer)).status_code == 403
    assert hq.client.delete(f"{path}/{schedule_id}", headers=auth(engineer)).status_code == 204
    assert runner_of(hq.client).next_run_time(uuid.UUID(schedule_id)) is None
    assert hq.get(viewer, path).json() == []


@contextmanager
def started_hq(url: str, data_dir: Path, *, schedules: bool = True) -> Iterator[TestClient]:
    """The app on `url`, started through its lifespan (its own scheduler loop off)."""
    settings = Settings(
        db_url=url, data_dir=data_dir, scheduler_enabled=False, job_schedules_enabled=schedules
    )
    app = create_app(settings, clock=ManualClock(datetime(2026, 3, 2, 8, 0, tzinfo=UTC)))
    with TestClient(app) as client:
        yield client


def _store_rows(client: TestClient) -> int:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(apscheduler_jobs)) or 0


def test_schedules_survive_a_restart_and_a_missed_run_runs_once(
    migrated_url: str, tmp_path: Path
) -> None:
    with started_hq(migrated_url, tmp_path) as first:
        admin = _token(first, Role.ENGINEER)
        site = _site(first)
        schedule = create_schedule(first, admin, site, hour="*/6")
        schedule_id = uuid.UUID(schedule["id"])
        planned = runner_of(first).next_run_time(schedule_id)
        assert planned is not None
    assert not runner_of(first).running

    # While HQ is down the run time passes (moved into the past by another scheduler).
    store = SQLAlchemyJobStore(url=migrated_url, tablename=APSCHEDULER_TABLE)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    job = store.lookup_job(JOB_ID_PREFIX + str(schedule_id))
    missed = datetime.now(UTC) - timedelta(minutes=2)
    job._modify(next_run_time=missed)
    store.update_job(job)
    store.shutdown()

    with started_hq(migrated_url, tmp_path) as second:
        db: Database = second.app.state.db  # type: ignore[attr-defined]
        wait_for(lambda: len(jobs_of(db, str(schedule_id))) == 1)
        runner = runner_of(second)
        wait_for(lambda: (runner.next_run_time(schedule_id) or missed) > datetime.now(UTC))
        assert _store_rows(second) == 1
        second.app.state.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
        fire(second, str(schedule_id))
        wait_for(lambda: len(jobs_of(db, str(schedule_id))) == 2)


def test_jobs_stored_under_the_former_module_path_keep_their_missed_run(
    migrated_url: str, tmp_path: Path
) -> None:
    # An HQ from before the package layout stored its schedules' jobs naming the job function
    # at hq_server.schedules; APScheduler drops a stored job whose function does not import.
    with started_hq(migrated_url, tmp_path) as first:
        schedule = create_schedule(first, _token(first, Role.ENGINEER), _site(first), hour="*/6")
        schedule_id = uuid.UUID(schedule["id"])
    store = SQLAlchemyJobStore(url=migrated_url, tablename=APSCHEDULER_TABLE)
    store.start(BackgroundScheduler(timezone="UTC"), "default")
    job = store.lookup_job(JOB_ID_PREFIX + str(schedule_id))
    missed = datetime.now(UTC) - timedelta(minutes=2)
    job._modify(next_run_time=missed)
    store.update_job(job)
    store.shutdown()
    engine = create_engine(migrated_url)
    try:
        with engine.begin() as conn:
            blob = conn.execute(select(apscheduler_jobs.c.job_state)).scalar_one()
            state = pickle.loads(blob)  # noqa: S301 - the test's own row
            assert state["func"] == FIRE_FUNC
            state["func"] = "hq_server.schedules:fire_schedule"
            conn.execute(update(apscheduler_jobs).values(job_state=pickle.dumps(state)))
    finally:
        engine.dispose()

    with started_hq(migrated_url, tmp_path) as second:
        db: Database = second.app.state.db  # type: ignore[attr-defined]
        wait_for(lambda: len(jobs_of(db, str(schedule_id))) == 1)  # the missed run, once
        assert _store_rows(second) == 1
        stored = runner_of(second).scheduler.get_job(  # type: ignore[union-attr]
            JOB_ID_PREFIX + str(schedule_id), jobstore="default"
        )
        assert stored is not None and stored.func_ref == FIRE_FUNC


def test_schedules_made_while_disabled_are_registered_at_the_next_start(
    migrated_url: str, tmp_path: Path
) -> None:
    with started_hq(migrated_url, tmp_path, schedules=False) as off:
        token = _token(off, Role.ENGINEER)
        schedule = create_schedule(off, token, _site(off))
        assert schedule["next_run_time"] is not None  # computed from the cron fields
        assert not runner_of(off).running
        assert _store_rows(off) == 0
    with started_hq(migrated_url, tmp_path) as on:
        assert runner_of(on).next_run_time(uuid.UUID(schedule["id"])) is not None
        assert _store_rows(on) == 1


def _token(client: TestClient, role: Role) -> str:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.writer() as session, session.begin():
        return create_api_token(session, "t", role, datetime(2026, 3, 2, tzinfo=UTC))


def _site(client: TestClient) -> int:
    db: Database = client.app.state.db  # type: ignore[attr-defined]
    with db.writer() as session, session.begin():
        row, _ = ensure_site(session, "site-s", datetime(2026, 3, 2, tzinfo=UTC))
        return row.id
