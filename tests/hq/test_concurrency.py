"""Concurrent ingest from real threads on separate connections: one condition, one ticket."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from hq_server.store.models import Alarm, Event, Ticket
from protocol.wire import EventKind
from tests.hq.conftest import HQ

THREADS = 20


def _post_all(hq: HQ, token: str, batches: list[list[dict[str, Any]]]) -> list[httpx.Response]:
    """POST every batch from its own thread, all released at the same instant."""
    barrier = threading.Barrier(len(batches))

    def post(batch: list[dict[str, Any]]) -> httpx.Response:
        barrier.wait(timeout=30)
        return hq.post_events(token, batch)

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        return list(pool.map(post, batches))


def _count(hq: HQ, model: type[Any]) -> int:
    with hq.db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_same_raise_from_many_threads_opens_one_ticket(hq: HQ) -> None:
    agent = hq.enroll()
    # Twenty distinct events (retries after a reconnect, say) of the same condition.
    batches = [[hq.event(EventKind.RAISE, grade=1)] for _ in range(THREADS)]
    responses = _post_all(hq, agent, batches)
    assert [r.status_code for r in responses] == [200] * THREADS
    for response, batch in zip(responses, batches, strict=True):
        assert response.json()["stored"] == [batch[0]["event_id"]]
    assert _count(hq, Event) == THREADS
    assert _count(hq, Alarm) == 1
    assert _count(hq, Ticket) == 1


def test_same_event_from_many_threads_is_stored_once(hq: HQ) -> None:
    agent = hq.enroll()
    event = hq.event(EventKind.RAISE)
    responses = _post_all(hq, agent, [[event] for _ in range(THREADS)])
    assert all(r.status_code == 200 for r in responses)
    assert all(r.json()["stored"] == [event["event_id"]] for r in responses)
    assert _count(hq, Event) == 1
    assert _count(hq, Ticket) == 1


def test_concurrent_tickets_get_unique_consecutive_numbers(hq: HQ) -> None:
    agents = [hq.enroll(site=f"site-{i % 4}", hostname=f"box{i}") for i in range(4)]
    batches = [[hq.event(device_id=f"tx{i}", agent=f"a{i}")] for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def post(i: int) -> int:
        barrier.wait(timeout=30)
        return hq.post_events(agents[i % 4], batches[i]).status_code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        assert list(pool.map(post, range(THREADS))) == [200] * THREADS
    with hq.db.session() as session:
        numbers = sorted(session.scalars(select(Ticket.number)))
    assert numbers == [f"SW-2026-{n:06d}" for n in range(1, THREADS + 1)]


def test_overlapping_batches_in_opposite_orders_do_not_deadlock(hq: HQ) -> None:
    # Batches touching the same alarms in different orders: fingerprint locks are taken in a
    # fixed order up front, so none of these fails on a deadlock.
    agents = [hq.enroll(hostname=f"box{i}") for i in range(THREADS)]
    devices = [f"tx{i}" for i in range(5)]
    batches: list[list[dict[str, Any]]] = []
    for i in range(THREADS):
        order = devices if i % 2 == 0 else list(reversed(devices))
        batches.append([hq.event(device_id=d, agent=f"a{i}") for d in order])
    barrier = threading.Barrier(THREADS)

    def post(i: int) -> int:
        barrier.wait(timeout=30)
        return hq.post_events(agents[i], batches[i]).status_code

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        assert list(pool.map(post, range(THREADS))) == [200] * THREADS
    assert _count(hq, Alarm) == len(devices)
    assert _count(hq, Ticket) == len(devices)
