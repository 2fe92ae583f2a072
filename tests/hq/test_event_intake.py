"""POST /api/v1/events judges each event on its own (issue 11, items 4 and 9): one bad event
is answered in `rejected` and the rest of its batch is stored; text a database cannot store
(NUL, lone surrogates) is cleaned the same way on SQLite and PostgreSQL; observed_at is bounded
and a time that cannot be expressed in UTC is a rejection, never a 500."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from hq_server.alarms.intake import EARLIEST_OBSERVED
from hq_server.core.clock import ManualClock
from hq_server.core.settings import Settings
from hq_server.store.models import Alarm, Event
from tests.hq.conftest import HQ, start_hq


def _stored(hq: HQ) -> dict[str, Event]:
    with hq.db.session() as session:
        return {str(e.event_id): e for e in session.scalars(select(Event))}


def _ack(hq: HQ, token: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = hq.post_events(token, events)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _reasons(ack: dict[str, Any]) -> dict[str, str]:
    return {r["event_id"]: r["reason"] for r in ack["rejected"]}


def test_nul_and_lone_surrogates_are_cleaned_and_the_batch_stored(hq: HQ) -> None:
    """The attack of item 4: one NUL in an event's text made PostgreSQL refuse the whole batch,
    a grade-1 event with it. Now every event is stored, the text cleaned the same on both
    databases, and the grade-1 event has its ticket."""
    agent, user = hq.enroll(), hq.user_token()
    off_air = hq.event(device_id="tx1", grade=1)
    poisoned = hq.event(device_id="tx2", code="fan_fail", grade=3, title="fan\x00 1")
    poisoned["detail"] = "bad\x00detail"
    poisoned["values"] = {"text\x00key": "v\x00al", "n": 1.5}
    # JSON can carry a lone surrogate ("\ud800"): it has no UTF-8 form, so no database takes it.
    surrogate = hq.event(device_id="tx3", code="temp_high", grade=3, title="temp \ud800 high")
    surrogate["device_class"] = "tx\udc80"
    surrogate["values"] = {"reading": "x\udfffy"}
    ack = _ack(hq, agent, [off_air, poisoned, surrogate])

    ids = [off_air["event_id"], poisoned["event_id"], surrogate["event_id"]]
    assert ack == {"stored": ids, "rejected": []}
    stored = _stored(hq)
    assert stored[poisoned["event_id"]].title == "fan\ufffd 1"
    assert stored[poisoned["event_id"]].detail == "bad\ufffddetail"
    assert stored[poisoned["event_id"]].values == {"text\ufffdkey": "v\ufffdal", "n": 1.5}
    assert stored[surrogate["event_id"]].title == "temp \ufffd high"
    assert stored[surrogate["event_id"]].device_class == "tx\ufffd"
    assert stored[surrogate["event_id"]].values == {"reading": "x\ufffdy"}
    tickets = {t["fault_key"]: t for t in hq.tickets(user)}
    assert tickets["tx1:off_air"]["grade"] == 1
    assert tickets["tx2:fan_fail"]["title"].endswith("fan\ufffd 1")


def test_non_finite_numbers_in_values_are_stored_as_null(hq: HQ) -> None:
    """Python's JSON reader takes NaN and Infinity, which are no JSON: PostgreSQL refused the
    batch. The agent itself sends them as null, so HQ stores null."""
    agent = hq.enroll()
    event = hq.event()
    raw = json.dumps({"events": [event | {"values": {"a": float("nan"), "b": float("inf")}}]})
    assert "NaN" in raw
    headers = {
        "Authorization": f"Bearer {agent}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    response = hq.client.post(
        "/api/v1/events", content=gzip.compress(raw.encode()), headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == [event["event_id"]]
    assert _stored(hq)[event["event_id"]].values == {"a": None, "b": None}


def test_an_invalid_event_is_rejected_alone(hq: HQ) -> None:
    """Events failing validation are answered one by one, with the field and what was expected;
    the others of the batch are stored and applied."""
    agent, user = hq.enroll(), hq.user_token()
    good = hq.event(device_id="tx1", grade=1)
    bad_grade = hq.event(device_id="tx2") | {"grade": 7}
    bad_device = hq.event(device_id="tx3") | {"device_id": "has space"}
    bad_component = hq.event(device_id="tx4") | {"component": "fan\x00"}
    unknown_field = hq.event(device_id="tx5") | {"colour": "red"}
    later = hq.event(device_id="tx6", grade=2)
    batch = [good, bad_grade, bad_device, bad_component, unknown_field, later]
    ack = _ack(hq, agent, batch)

    assert ack["stored"] == [good["event_id"], later["event_id"]]
    reasons = _reasons(ack)
    assert list(reasons) == [e["event_id"] for e in batch[1:5]]
    assert reasons[bad_grade["event_id"]].startswith("grade: ")
    assert "less than or equal to 5" in reasons[bad_grade["event_id"]]
    assert reasons[bad_device["event_id"]].startswith("device_id: ")
    assert reasons[bad_component["event_id"]].startswith("component: ")
    assert reasons[unknown_field["event_id"]].startswith("colour: ")
    assert set(_stored(hq)) == {good["event_id"], later["event_id"]}
    assert {t["fault_key"] for t in hq.tickets(user)} == {"tx1:off_air", "tx6:off_air"}
    # Sent again, a rejected event is rejected again (for good), the stored ones acknowledged.
    assert _ack(hq, agent, batch) == ack


@pytest.mark.parametrize(
    ("observed_at", "why"),
    [
        ("0001-01-01T00:00:00+14:00", "cannot be expressed in UTC"),
        ("9999-12-31T23:59:59-14:00", "cannot be expressed in UTC"),
        ("2026-03-02T08:00:00", "no UTC offset"),
        ("1970-01-01T00:00:00Z", "before 2000-01-01"),
        ("0001-01-01T00:00:00Z", "before 2000-01-01"),
    ],
)
def test_observed_at_out_of_range_is_a_rejection_not_a_500(
    hq: HQ, observed_at: str, why: str
) -> None:
    """Year 1 at +14:00 is 31 Dec of year 0 in UTC, which Python has not: it was a 500. Times
    with no offset, and times before 2000 (no station clock that was ever set), are refused."""
    agent = hq.enroll()
    good = hq.event(device_id="tx1")
    bad = hq.event(device_id="tx2") | {"observed_at": observed_at}
    ack = _ack(hq, agent, [bad, good])
    assert ack["stored"] == [good["event_id"]]
    reason = _reasons(ack)[bad["event_id"]]
    assert reason.startswith("observed_at: ") and why in reason, reason
    assert set(_stored(hq)) == {good["event_id"]}


def test_earliest_observed_at_is_accepted(hq: HQ) -> None:
    agent = hq.enroll()
    edge = hq.event(observed_at=EARLIEST_OBSERVED)
    assert _ack(hq, agent, [edge])["stored"] == [edge["event_id"]]
    assert _stored(hq)[edge["event_id"]].observed_at == EARLIEST_OBSERVED


def test_observed_at_far_ahead_of_hq_is_stored_with_the_receive_time(hq: HQ) -> None:
    """A station clock running fast must not pin an alarm's last change in the future (making
    the site's other agents' events "stale" until then), nor lose the fault: the event is
    stored with HQ's receive time, a sure upper bound of when it was observed. Within the
    tolerance the agent's time stands."""
    first, second, user = hq.enroll(hostname="a"), hq.enroll(hostname="b"), hq.user_token()
    now = hq.clock.now()
    near = hq.event(device_id="tx1", observed_at=now + timedelta(minutes=4))
    far = hq.event(device_id="tx2", observed_at=now + timedelta(days=400))
    ack = _ack(hq, first, [near, far])
    assert ack == {"stored": [near["event_id"], far["event_id"]], "rejected": []}
    stored = _stored(hq)
    assert stored[near["event_id"]].observed_at == now + timedelta(minutes=4)
    assert stored[far["event_id"]].observed_at == now
    with hq.db.session() as session:
        alarm = session.scalars(select(Alarm).where(Alarm.fault_key == "tx2:off_air")).one()
        assert alarm.last_change_at == now
    # The other agent of the site clears it a minute later: applied, not stale.
    hq.clock.advance(timedelta(minutes=1))
    clear = hq.event("clear", agent="b", device_id="tx2")
    assert _ack(hq, second, [clear])["stored"] == [clear["event_id"]]
    [tx2] = [a for a in hq.alarms(user) if a["fault_key"] == "tx2:off_air"]
    assert tx2["active"] is False


def test_the_future_tolerance_is_a_setting(
    migrated_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    assert Settings().event_max_ahead == timedelta(minutes=5)
    env = {"STATIONWATCH_EVENT_MAX_AHEAD": "3600"}
    assert Settings.from_env(env).event_max_ahead == timedelta(hours=1)
    with start_hq(migrated_url, clock, tmp_path, event_max_ahead=timedelta(hours=1)) as hq:
        agent, now = hq.enroll(), clock.now()
        kept = hq.event(device_id="tx1", observed_at=now + timedelta(minutes=59))
        clamped = hq.event(device_id="tx2", observed_at=now + timedelta(minutes=61))
        assert _ack(hq, agent, [kept, clamped])["rejected"] == []
        stored = _stored(hq)
        assert stored[kept["event_id"]].observed_at == now + timedelta(minutes=59)
        assert stored[clamped["event_id"]].observed_at == now


def test_a_repeated_event_id_is_judged_by_its_first_copy(hq: HQ) -> None:
    agent = hq.enroll()
    bad = hq.event() | {"grade": 0}
    good = bad | {"grade": 1}
    ack = _ack(hq, agent, [bad, good])
    assert ack["stored"] == []
    assert list(_reasons(ack)) == [bad["event_id"]]
    ack = _ack(hq, agent, [good, bad])
    assert ack == {"stored": [good["event_id"]], "rejected": []}


@pytest.mark.parametrize(
    "body",
    [
        {"events": 3},
        {"events": [3]},
        {"events": [{"grade": 1}]},  # no event_id: nothing to answer it by
        {"events": [{"event_id": "not-a-uuid"}]},
        {"events": [], "extra": 1},
        {},
    ],
)
def test_a_broken_envelope_is_still_422(hq: HQ, body: dict[str, Any]) -> None:
    agent = hq.enroll()
    headers = {"Authorization": f"Bearer {agent}"}
    response = hq.client.post("/api/v1/events", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", "events"] or body.get("extra")
    assert _stored(hq) == {}


def test_more_than_5000_events_is_422(hq: HQ) -> None:
    agent = hq.enroll()
    events = [{"event_id": str(uuid.uuid4())} for _ in range(5001)]
    response = hq.post_events(agent, events)
    assert response.status_code == 422
    assert "5000" in response.text


def test_the_schema_still_documents_fault_events(hq: HQ) -> None:
    """The OpenAPI schema keeps describing a batch of FaultEvents (agents and the fuzz test
    build requests from it), though HQ reads each event on its own."""
    spec = hq.client.get("/openapi.json").json()
    body = spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    events = spec["components"]["schemas"][ref]["properties"]["events"]
    assert events["items"] == {"$ref": "#/components/schemas/FaultEvent"}
    assert events["maxItems"] == 5000
    assert "observed_at" in spec["components"]["schemas"]["FaultEvent"]["properties"]


def test_observed_at_is_kept_in_utc(hq: HQ) -> None:
    """An offset other than UTC is converted, not refused."""
    agent = hq.enroll()
    event = hq.event() | {"observed_at": "2026-03-02T21:00:00+13:00"}
    assert _ack(hq, agent, [event])["stored"] == [event["event_id"]]
    assert _stored(hq)[event["event_id"]].observed_at == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
