"""POST /api/v1/events and /heartbeat: gzip bodies, idempotency, validation, limits."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from hq_server.store.models import Agent, Event
from tests.hq.conftest import HQ


def _count_events(hq: HQ) -> int:
    with hq.db.session() as session:
        return session.scalar(select(func.count()).select_from(Event)) or 0


def test_gzip_batch_is_stored_and_acknowledged(hq: HQ) -> None:
    agent = hq.enroll()
    events = [hq.event(device_id=f"tx{i}") for i in range(5)]
    response = hq.post_events(agent, events, compress=True)
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": [e["event_id"] for e in events], "rejected": []}
    assert _count_events(hq) == 5
    with hq.db.session() as session:
        row = session.scalars(select(Agent)).one()
        assert row.last_seq == 5
        assert row.last_seen_at == hq.clock.now()


def test_plain_json_batch_is_accepted(hq: HQ) -> None:
    agent = hq.enroll()
    events = [hq.event()]
    response = hq.post_events(agent, events, compress=False)
    assert response.status_code == 200
    assert response.json()["stored"] == [events[0]["event_id"]]


def test_same_batch_twice_stores_each_event_once(hq: HQ) -> None:
    agent = hq.enroll()
    events = [hq.event(device_id=f"tx{i}") for i in range(3)]
    ids = [e["event_id"] for e in events]
    first = hq.post_events(agent, events)
    second = hq.post_events(agent, events)
    assert first.status_code == second.status_code == 200
    assert first.json()["stored"] == ids
    assert second.json()["stored"] == ids
    assert _count_events(hq) == 3
    # A batch mixing known and new events: all acknowledged, only the new one stored.
    extra = hq.event(device_id="tx9")
    third = hq.post_events(agent, [*events, extra])
    assert third.json()["stored"] == [*ids, extra["event_id"]]
    assert _count_events(hq) == 4
    assert len(hq.tickets(hq.user_token())) == 4


def test_duplicate_event_within_a_batch_is_stored_once(hq: HQ) -> None:
    agent = hq.enroll()
    event = hq.event()
    response = hq.post_events(agent, [event, event])
    assert response.json()["stored"] == [event["event_id"]]
    assert _count_events(hq) == 1


def test_event_id_of_another_agent_is_rejected(hq: HQ) -> None:
    first = hq.enroll(hostname="a")
    second = hq.enroll(hostname="b")
    event = hq.event()
    assert hq.post_events(first, [event]).status_code == 200
    response = hq.post_events(second, [event])
    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == []
    assert [r["event_id"] for r in body["rejected"]] == [event["event_id"]]


def test_invalid_events_are_rejected_with_the_error(hq: HQ) -> None:
    """Each invalid event is answered in `rejected` with its field (the batch is not a 422:
    see test_event_intake); an event with no event_id cannot be answered, so that is a 422."""
    agent = hq.enroll()
    bad = hq.event()
    bad["grade"] = 7
    response = hq.post_events(agent, [bad])
    assert response.status_code == 200
    [rejected] = response.json()["rejected"]
    assert rejected["event_id"] == bad["event_id"]
    assert rejected["reason"].startswith("grade: ")
    bad = hq.event()
    bad["device_id"] = "has space"
    assert hq.post_events(agent, [bad]).json()["stored"] == []
    missing = hq.event()
    del missing["event_id"]
    response = hq.post_events(agent, [missing])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 0]
    assert _count_events(hq) == 0


def test_malformed_json_is_422_not_500(hq: HQ) -> None:
    agent = hq.enroll()
    headers = {
        "Authorization": f"Bearer {agent}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    response = hq.client.post(
        "/api/v1/events", content=gzip.compress(b'{"events": [{'), headers=headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    response = hq.client.post(
        "/api/v1/events", content=gzip.compress(b'{"events": 3}'), headers=headers
    )
    assert response.status_code == 422


def test_oversize_gzip_body_is_413(hq: HQ) -> None:
    # The test app allows 1 MiB after decompression; this compresses to a few KiB.
    agent = hq.enroll()
    event = hq.event()
    event["detail"] = "x" * 2000
    body = json.dumps({"events": [{**event, "event_id": str(uuid.uuid4())} for _ in range(1000)]})
    compressed = gzip.compress(body.encode())
    assert len(compressed) < 1024 * 1024 < len(body)
    response = hq.client.post(
        "/api/v1/events",
        content=compressed,
        headers={
            "Authorization": f"Bearer {agent}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert _count_events(hq) == 0


def test_oversize_plain_body_is_413(hq: HQ) -> None:
    agent = hq.enroll()
    response = hq.client.post(
        "/api/v1/events",
        content=b" " * (1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {agent}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_bad_gzip_and_unknown_encoding(hq: HQ) -> None:
    agent = hq.enroll()
    headers = {"Authorization": f"Bearer {agent}", "Content-Type": "application/json"}
    raw = json.dumps({"events": [hq.event()]}).encode()
    not_gzip = hq.client.post(
        "/api/v1/events", content=raw, headers={**headers, "Content-Encoding": "gzip"}
    )
    assert not_gzip.status_code == 400
    assert "gzip" in not_gzip.json()["detail"]
    truncated = hq.client.post(
        "/api/v1/events",
        content=gzip.compress(raw)[:-10],
        headers={**headers, "Content-Encoding": "gzip"},
    )
    assert truncated.status_code == 400
    brotli = hq.client.post(
        "/api/v1/events", content=raw, headers={**headers, "Content-Encoding": "br"}
    )
    assert brotli.status_code == 415


def test_heartbeat_updates_the_agent(hq: HQ) -> None:
    agent = hq.enroll()
    hq.clock.advance(timedelta(minutes=5))
    body = {
        "agent_version": "0.2.0",
        "sent_at": hq.clock.now().isoformat(),
        "outbox_depth": 12,
        "dropped_events": 3,
        "last_seq": 40,
        "devices": {"tx1": "ok", "ups1": "unreachable"},
        "host": {"cpu": 3.5},
    }
    raw = gzip.compress(json.dumps(body).encode())
    response = hq.client.post(
        "/api/v1/heartbeat",
        content=raw,
        headers={
            "Authorization": f"Bearer {agent}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"server_time": hq.clock.now().isoformat().replace("+00:00", "Z")}
    with hq.db.session() as session:
        row = session.scalars(select(Agent)).one()
    assert row.version == "0.2.0"
    assert row.outbox_depth == 12
    assert row.dropped_events == 3
    assert row.reported_seq == 40
    assert row.last_seen_at == hq.clock.now()
    assert row.device_states == {"tx1": "ok", "ups1": "unreachable"}


def test_an_alarms_history_lists_its_events_newest_first(hq: HQ) -> None:
    agent, user = hq.enroll(), hq.user_token()
    sent = []
    for kind, grade in [("raise", 2), ("raise", 2), ("update", 1), ("clear", 1), ("raise", 3)]:
        hq.clock.advance(timedelta(minutes=1))
        event = hq.event(kind, grade=grade)
        sent.append(event)
        assert hq.post_events(agent, [event]).status_code == 200
    # Another fingerprint's events stay out of this history.
    hq.post_events(agent, [hq.event(device_id="tx2")])
    (alarm,) = [a for a in hq.alarms(user) if a["device_id"] == "tx1"]
    assert hq.get(user, f"/api/v1/alarms/{alarm['id']}").json()["grade"] == 3

    history = hq.get(user, f"/api/v1/alarms/{alarm['id']}/events").json()
    assert [h["event_id"] for h in history] == [e["event_id"] for e in reversed(sent)]
    assert [h["kind"] for h in history] == ["raise", "clear", "update", "raise", "raise"]
    # The repeated raise changed nothing; every other event moved the alarm.
    assert [h["applied"] for h in history] == [True, True, True, False, True]
    assert history[0]["values"] == {"forward_power_w": 0.0}

    older = hq.get(
        user, f"/api/v1/alarms/{alarm['id']}/events", before=history[1]["observed_at"], limit=2
    ).json()
    assert [h["event_id"] for h in older] == [sent[2]["event_id"], sent[1]["event_id"]]
    assert hq.get(user, "/api/v1/alarms/999999/events").status_code == 404
    assert hq.get(user, "/api/v1/alarms/999999").status_code == 404
