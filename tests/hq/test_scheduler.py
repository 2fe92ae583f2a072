"""The scheduler loop itself: one leader among replicas on PostgreSQL, the loop in the app's
lifespan starts and stops cleanly."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from hq_server.core.clock import ManualClock
from hq_server.core.domain import Role
from hq_server.core.settings import Settings
from hq_server.scheduler import Scheduler
from hq_server.store.db import Database
from hq_server.store.models import Ticket, TicketEvent
from hq_server.tickets.escalation import TimerOutcome
from tests.hq.conftest import START, start_hq


def test_only_one_scheduler_leads_on_postgresql(migrated_url: str, tmp_path: Path) -> None:
    settings = Settings(db_url=migrated_url, data_dir=tmp_path)
    clock = ManualClock(START)
    dbs = [Database(migrated_url) for _ in range(3)]
    schedulers = [Scheduler(db, clock, settings) for db in dbs]
    try:
        leaders = [s.step().leader for s in schedulers]
        if dbs[0].dialect == "sqlite":
            assert leaders == [True, True, True]  # one process per SQLite database
            return
        assert leaders == [True, False, False]
        assert [s.step().leader for s in schedulers] == [True, False, False]
        schedulers[0].close()  # the leader stops: another takes over
        assert schedulers[1].step().leader is True
        assert schedulers[2].step().leader is False
    finally:
        for s in schedulers:
            s.close()
        for db in dbs:
            db.dispose()


def test_lifespan_runs_the_loop(migrated_url: str, tmp_path: Path) -> None:
    clock = ManualClock(START)
    with start_hq(
        migrated_url,
        clock,
        tmp_path,
        scheduler_enabled=True,
        scheduler_interval=0.05,
    ) as hq:
        agent, admin = hq.enroll(), hq.user_token(Role.ADMIN)
        hq.post_events(agent, [hq.event(grade=1)])
        ticket_id = hq.tickets(admin)[0]["id"]
        clock.advance(timedelta(minutes=10))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            history = hq.get(admin, f"/api/v1/tickets/{ticket_id}").json()["history"]
            if any(h["what"] == "escalated" for h in history):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the scheduler loop did not escalate within 10 s")


def test_tunables_come_from_the_environment() -> None:
    env = {
        "STATIONWATCH_HEARTBEAT_TIMEOUT": "90",
        "STATIONWATCH_SMTP_HOST": "mail.example.com",
        "STATIONWATCH_SMTP_PORT": "2525",
        "STATIONWATCH_WEBHOOK_SECRETS": '{"https://hooks.example.com/x": "s3cret-key"}',
        "STATIONWATCH_SCHEDULER_ENABLED": "false",
    }
    settings = Settings.from_env(env)
    assert settings.heartbeat_timeout == timedelta(seconds=90)
    assert (settings.smtp_host, settings.smtp_port) == ("mail.example.com", 2525)
    assert settings.webhook_secrets == {"https://hooks.example.com/x": "s3cret-key"}
    assert settings.scheduler_enabled is False
    with pytest.raises(ValueError, match="smtp_port"):
        Settings.from_env({"STATIONWATCH_SMTP_PORT": "twenty-five"})


def test_concurrent_claims_escalate_each_step_once(migrated_url: str, tmp_path: Path) -> None:
    clock = ManualClock(START)
    with start_hq(migrated_url, clock, tmp_path) as hq:
        agent = hq.enroll()
        hq.post_events(agent, [hq.event(device_id=f"tx{i}", grade=1) for i in range(6)])
    clock.set(START + timedelta(hours=1))  # ack levels 1-4 of the built-in chain are due
    settings = Settings(db_url=migrated_url, data_dir=tmp_path)
    dbs = [Database(migrated_url) for _ in range(3)]
    schedulers = [Scheduler(db, clock, settings) for db in dbs]
    outcomes: list[str | None] = []
    lock = threading.Lock()

    def drain(scheduler: Scheduler) -> None:
        while True:
            outcome = scheduler.fire_one_timer(clock.now())
            with lock:
                outcomes.append(outcome)
            if outcome is None:
                return

    try:
        threads = [threading.Thread(target=drain, args=(s,)) for s in schedulers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with dbs[0].session() as session:
            rows = session.execute(
                select(TicketEvent.ticket_id, TicketEvent.data).where(
                    TicketEvent.what == "escalated"
                )
            ).all()
    finally:
        for db in dbs:
            db.dispose()
    # Built-in chain: levels due at 08:10 and 08:40; level 3 (09:40) is not due at 09:00.
    steps = [(ticket_id, data["kind"], data["level"]) for ticket_id, data in rows]
    assert len(steps) == len(set(steps))  # no step twice
    assert outcomes.count("escalated") == len(steps)
    assert {level for _, _, level in steps} == {1, 2}
    assert len(steps) == 12


def test_a_ticket_held_elsewhere_does_not_hold_up_other_escalations(
    migrated_url: str, tmp_path: Path
) -> None:
    if migrated_url.startswith("sqlite"):
        pytest.skip("row locks are PostgreSQL's: SQLite has one writer at a time")
    clock = ManualClock(START)
    with start_hq(migrated_url, clock, tmp_path) as hq:
        agent = hq.enroll()
        hq.post_events(agent, [hq.event(device_id=f"tx{i}", grade=1) for i in range(2)])
    clock.set(START + timedelta(minutes=15))  # level 1 of both ack escalations is due
    settings = Settings(db_url=migrated_url, data_dir=tmp_path)
    db, holder = Database(migrated_url), Database(migrated_url)
    try:
        with holder.engine.connect() as conn, conn.begin():
            # Another transaction (ingest, an engineer) holds the ticket due first.
            first = conn.execute(
                select(Ticket.id)
                .order_by(Ticket.ack_escalation_at, Ticket.id)
                .limit(1)
                .with_for_update()
            ).scalar_one()
            outcome = Scheduler(db, clock, settings).fire_one_timer(clock.now())
            with db.session() as session:
                escalated = session.scalars(
                    select(TicketEvent.ticket_id).where(TicketEvent.what == "escalated")
                ).all()
                others = session.scalars(select(Ticket.id).where(Ticket.id != first)).all()
    finally:
        db.dispose()
        holder.dispose()
    assert outcome == TimerOutcome.ESCALATED
    assert escalated == others  # the other ticket's step went ahead
