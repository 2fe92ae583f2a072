"""The trap/inform receiver against net-snmp's snmptrap and snmpinform (v2c and v3 authPriv),
and a storm of 2,000 valid v2c traps showing rate limiting, dedup and their counters."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyasn1.codec.ber import encoder
from pydantic import SecretStr
from pysnmp.proto.api import v2c

from checks.base import Finding
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from checks.traps import TrapJudge
from collectors.profiles import TrapSpec
from collectors.snmp import SnmpCollector, SnmpEngineHolder
from collectors.targets import SnmpTarget
from collectors.traps import TrapDevice, TrapEvent, TrapReceiver, TrapSettings, TrapV3User
from protocol.wire import EventKind
from tests.peers import require_binary
from tests.snmprec_agent import SnmprecAgent

pytestmark = pytest.mark.integration

FAN_FAIL = "1.3.6.1.4.1.2011.5.25.219.2.6.1"  # HUAWEI-ENTITY-TRAP-MIB hwFanFail
FAN_OK = "1.3.6.1.4.1.2011.5.25.219.2.6.2"
ENT_NAME = "1.3.6.1.2.1.47.1.1.1.1.7"
ENGINE_ID = "0x8000000001020304"
DATA = Path(__file__).resolve().parent.parent / "data" / "snmprec"


def _settings(**kw: object) -> TrapSettings:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "communities": [SecretStr("trapcomm")],
        "v3_users": [
            TrapV3User(
                username="trapuser",
                auth_protocol="SHA",
                auth_key=SecretStr("authpass1"),
                priv_protocol="AES",
                priv_key=SecretStr("privpass1"),
                engine_id=ENGINE_ID,
            ),
            TrapV3User(
                username="informuser",
                auth_protocol="SHA",
                auth_key=SecretStr("authpass2"),
                priv_protocol="AES",
                priv_key=SecretStr("privpass2"),
            ),
        ],
    }
    return TrapSettings.model_validate(base | kw)


def _devices() -> dict[str, TrapDevice]:
    return {"127.0.0.1": TrapDevice("sw1", builtin_profiles()["huawei_vrp"].traps)}


@dataclass(frozen=True)
class Graded:
    """A queued trap and the finding checks.traps grades it to."""

    device_id: str
    trap_oid: str
    finding: Finding


class GradedReceiver(TrapReceiver):
    """The receiver as the agent's listeners use it: each queued trap graded by its device's
    trap rules (checks.traps.TrapJudge)."""

    def __init__(self, settings: TrapSettings, devices: dict[str, TrapDevice]) -> None:
        super().__init__(settings, devices)
        self.judge = TrapJudge({d.device_id: d.traps for d in devices.values()})

    async def next_batch(  # type: ignore[override]
        self, max_items: int = 200, wait_s: float | None = None
    ) -> list[Graded]:
        """The next traps, graded."""
        events = await super().next_batch(max_items, wait_s)
        return [Graded(e.device_id, e.trap_oid, self.judge.finding(e)) for e in events]


@pytest.fixture
async def receiver() -> AsyncIterator[GradedReceiver]:
    """A receiver on a free loopback port for the huawei_vrp switch at 127.0.0.1."""
    rx = GradedReceiver(_settings(dedup_s=0.0), _devices())
    await rx.start()
    yield rx
    rx.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["MIBS"] = ""
    return env


async def _run(*argv: str) -> tuple[int, str]:
    """Run a net-snmp tool without blocking the loop the receiver runs on."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=_env(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    return proc.returncode or 0, out.decode(errors="replace")


def _fan_args(trap: str, fan: str) -> list[str]:
    return ["", trap, f"{ENT_NAME}.67158029", "s", fan]


async def _one(rx: GradedReceiver) -> Graded:
    [event] = await rx.next_batch(wait_s=10)
    return event


async def test_v2c_trap_raise_and_clear(receiver: TrapReceiver) -> None:
    """snmptrap v2c: a mapped raise and its clear become findings naming the component."""
    snmptrap = require_binary("snmptrap", "/usr/bin")
    peer = f"127.0.0.1:{receiver.port}"
    rc, out = await _run(snmptrap, "-v2c", "-c", "trapcomm", peer, *_fan_args(FAN_FAIL, "FAN 1"))
    assert rc == 0, out
    event = await _one(receiver)
    assert (event.device_id, event.trap_oid) == ("sw1", FAN_FAIL)
    f = event.finding
    assert (f.code, f.component, f.active, int(f.grade)) == ("fan_fail_trap", "FAN 1", True, 3)
    tracker = FaultTracker()
    [change] = tracker.apply("sw1", [f])
    assert change.kind is EventKind.RAISE

    rc, out = await _run(snmptrap, "-v2c", "-c", "trapcomm", peer, *_fan_args(FAN_OK, "FAN 1"))
    assert rc == 0, out
    cleared = (await _one(receiver)).finding
    assert (cleared.code, cleared.component, cleared.active) == ("fan_fail_trap", "FAN 1", False)
    assert int(cleared.grade) == 3  # the raise mapping's grade
    [change] = tracker.apply("sw1", [cleared])
    assert change.kind is EventKind.CLEAR


async def test_v2c_inform_is_acknowledged(receiver: TrapReceiver) -> None:
    """snmpinform v2c gets its acknowledgement (exit 0) and the inform is queued."""
    snmpinform = require_binary("snmpinform", "/usr/bin")
    peer = f"127.0.0.1:{receiver.port}"
    argv = [snmpinform, "-v2c", "-c", "trapcomm", "-r", "0", "-t", "3", peer]
    rc, out = await _run(*argv, *_fan_args(FAN_FAIL, "FAN 2"))
    assert rc == 0, out
    assert (await _one(receiver)).finding.component == "FAN 2"


async def test_v3_authpriv_trap_and_inform(receiver: TrapReceiver) -> None:
    """v3 authPriv: a trap (sender's engine ID configured) and an inform (acknowledged)."""
    snmptrap = require_binary("snmptrap", "/usr/bin")
    snmpinform = require_binary("snmpinform", "/usr/bin")
    peer = f"127.0.0.1:{receiver.port}"
    v3 = ["-v3", "-l", "authPriv", "-a", "SHA", "-x", "AES"]
    trap = [snmptrap, *v3, "-e", ENGINE_ID, "-u", "trapuser", "-A", "authpass1", "-X", "privpass1"]
    rc, out = await _run(*trap, peer, *_fan_args(FAN_FAIL, "FAN 3"))
    assert rc == 0, out
    assert (await _one(receiver)).finding.component == "FAN 3"

    inform = [snmpinform, *v3, "-u", "informuser", "-A", "authpass2", "-X", "privpass2"]
    rc, out = await _run(*inform, "-r", "1", "-t", "3", peer, *_fan_args(FAN_FAIL, "FAN 4"))
    assert rc == 0, out
    assert (await _one(receiver)).finding.component == "FAN 4"


async def test_wrong_credentials_and_unmapped_traps_are_not_queued(
    receiver: TrapReceiver,
) -> None:
    """A wrong community or v3 key is dropped by pysnmp; an unmapped OID is counted."""
    snmptrap = require_binary("snmptrap", "/usr/bin")
    peer = f"127.0.0.1:{receiver.port}"
    await _run(snmptrap, "-v2c", "-c", "wrong", peer, *_fan_args(FAN_FAIL, "FAN 9"))
    bad_v3 = ["-v3", "-l", "authPriv", "-a", "SHA", "-x", "AES", "-e", ENGINE_ID]
    await _run(snmptrap, *bad_v3, "-u", "trapuser", "-A", "badpass99", "-X", "privpass1", peer,
               *_fan_args(FAN_FAIL, "FAN 9"))  # fmt: skip
    await _run(snmptrap, "-v2c", "-c", "trapcomm", peer, "", "1.3.6.1.4.1.99999.0.1")
    # A good trap after them proves the three were processed (in order) and dropped.
    await _run(snmptrap, "-v2c", "-c", "trapcomm", peer, *_fan_args(FAN_FAIL, "FAN 5"))
    assert [e.finding.component for e in await receiver.next_batch(wait_s=10)] == ["FAN 5"]
    counters = receiver.counters()["127.0.0.1"]
    assert counters.received == 4 and counters.unmapped == 1 and counters.accepted == 1


def _trap_datagram(community: str, component: str, trap: str = FAN_FAIL) -> bytes:
    """One valid SNMPv2c hwFanFail trap, encoded with pysnmp's protocol API."""
    pmod = v2c
    pdu = pmod.SNMPv2TrapPDU()
    pmod.apiTrapPDU.set_defaults(pdu)
    pmod.apiTrapPDU.set_varbinds(
        pdu,
        [
            (v2c.ObjectIdentifier("1.3.6.1.2.1.1.3.0"), v2c.TimeTicks(12345)),
            (v2c.ObjectIdentifier("1.3.6.1.6.3.1.1.4.1.0"), v2c.ObjectIdentifier(trap)),
            (v2c.ObjectIdentifier(f"{ENT_NAME}.1"), v2c.OctetString(component)),
        ],
    )
    msg = pmod.Message()
    pmod.apiMessage.set_defaults(msg)
    pmod.apiMessage.set_community(msg, community)
    pmod.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


async def test_trap_storm_is_rate_limited_and_counted(engine: SnmpEngineHolder) -> None:
    """2,000 traps from one source as fast as a socket sends them: the bucket lets through
    burst + rate x time, dedup folds repeats, everything else is counted, and an SNMP poll
    on the same event loop still completes promptly."""
    settings = _settings(rate_per_s=50.0, burst=100, dedup_s=60.0)
    rx = TrapReceiver(settings, _devices())
    await rx.start()
    served = SnmprecAgent(DATA / "vrp_s5328c-ei.snmprec").start()
    profile = builtin_profiles()["huawei_vrp"]
    assert profile.snmp is not None
    target = SnmpTarget(host="127.0.0.1", port=served.port, community=SecretStr("public"))
    collector = SnmpCollector("sw1", target, profile.snmp, engine)
    datagrams = [_trap_datagram("trapcomm", f"FAN {i % 40}") for i in range(2000)]

    def storm() -> float:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            started = time.perf_counter()
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", rx.port))
            return time.perf_counter() - started

    try:
        started = time.perf_counter()
        sending = asyncio.create_task(asyncio.to_thread(storm))
        poll_started = time.perf_counter()
        readings = await collector.collect()  # polls while the storm is arriving
        poll_s = time.perf_counter() - poll_started
        send_s = await sending
        events: list[TrapEvent] = []
        all_in_s = 0.0
        last, stable_since = -1, time.monotonic()
        deadline = stable_since + 15
        while time.monotonic() < deadline:  # until all 2,000 arrived or no more arrive
            events += await rx.next_batch(max_items=5000, wait_s=0.1)
            received = rx.counters()["127.0.0.1"].received
            if received >= 2000:
                all_in_s = time.perf_counter() - started
                break
            if received != last:
                last, stable_since = received, time.monotonic()
            elif time.monotonic() - stable_since > 0.5:
                break
        events += await rx.next_batch(max_items=5000, wait_s=0.05)
        elapsed = all_in_s or time.perf_counter() - started
        c = rx.counters()["127.0.0.1"]
        print(
            f"\ntrap storm: sent 2000 in {send_s:.3f}s, received {c.received}, "
            f"accepted {c.accepted}, rate-limited {c.rate_limited}, duplicates {c.duplicates}, "
            f"queue-full {c.queue_full}; all judged within {elapsed:.3f}s "
            f"(>= {c.received / elapsed:.0f} datagrams/s); "
            f"SNMP poll during the storm {poll_s * 1000:.0f} ms ({len(readings)} readings)"
        )
        assert c.received >= 1000
        judged = c.accepted + c.rate_limited + c.duplicates + c.queue_full + c.unmapped
        assert judged == c.received and c.unknown_source == 0
        assert c.accepted == len(events) <= 40  # 40 distinct fans, each once (dedup)
        assert c.rate_limited > 0 and c.duplicates > 0
        assert c.rate_limited <= c.received - settings.burst + 1
        assert rx.suppressed_total() == c.suppressed == c.received - c.accepted
        assert readings and poll_s < 5.0
    finally:
        served.stop()
        rx.close()


async def test_decode_rate_without_limits() -> None:
    """With the bucket and dedup wide open, every valid trap is decoded and queued: the
    receiver's raw capacity (the figure the rate limit protects)."""
    rx = TrapReceiver(
        _settings(
            rate_per_s=1e6,
            burst=1_000_000,
            total_rate_per_s=1e6,
            total_burst=1_000_000,
            dedup_s=0.0,
            queue_max=10_000,
        ),
        _devices(),
    )
    await rx.start()
    datagrams = [_trap_datagram("trapcomm", f"FAN {i}") for i in range(1000)]

    def send() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in datagrams:
                s.sendto(d, ("127.0.0.1", rx.port))

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # warm-up: MIB loading
            s.sendto(_trap_datagram("trapcomm", "warm-up"), ("127.0.0.1", rx.port))
        assert len(await rx.next_batch(wait_s=10)) == 1
        started = time.perf_counter()
        await asyncio.to_thread(send)
        events: list[TrapEvent] = []
        deadline = time.monotonic() + 20
        while len(events) < 1000 and time.monotonic() < deadline:
            events += await rx.next_batch(max_items=5000, wait_s=0.5)
        elapsed = time.perf_counter() - started
        c = rx.counters()["127.0.0.1"]
        print(f"\ntrap decode: {len(events)} traps in {elapsed:.3f}s "
              f"= {len(events) / elapsed:.0f} traps/s")  # fmt: skip
        assert c.received - 1 == len(events) == c.accepted - 1
        assert c.received >= 900  # a few may be lost in the kernel under a burst
    finally:
        rx.close()


async def test_total_bucket_bounds_all_sources_together() -> None:
    """Per-source limits wide open, the shared bucket still caps the decode work."""
    settings = _settings(rate_per_s=1e6, burst=10_000, total_rate_per_s=1.0, total_burst=25)
    devices = {f"127.0.0.{i}": TrapDevice(f"sw{i}", _devices()["127.0.0.1"].traps) for i in (1, 2)}
    rx = TrapReceiver(settings, devices)
    await rx.start()
    try:
        for ip in devices:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((ip, 0))
                for i in range(100):
                    s.sendto(_trap_datagram("trapcomm", f"FAN {i}"), ("127.0.0.1", rx.port))
        deadline = time.monotonic() + 10
        while sum(c.received for c in rx.counters().values()) < 200:
            assert time.monotonic() < deadline, rx.counters()
            await asyncio.sleep(0.01)  # polling interval of the condition, not synchronisation
        events = await rx.next_batch(max_items=1000, wait_s=1)
        counters = rx.counters().values()
        assert 25 <= len(events) == sum(c.accepted for c in counters) <= 30
        assert sum(c.rate_limited for c in counters) == 200 - len(events)
    finally:
        rx.close()


async def test_dedup_passes_changes_of_state_and_drops_strangers() -> None:
    """Within the window a repeated raise is a duplicate, but clear and re-raise pass; a
    datagram from an address no device has (127.0.0.2) is counted and never decoded."""
    rx = GradedReceiver(_settings(dedup_s=60.0), _devices())
    await rx.start()
    fail = _trap_datagram("trapcomm", "FAN 1")
    ok = _trap_datagram("trapcomm", "FAN 1", FAN_OK)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for d in (fail, fail, ok, fail):
                s.sendto(d, ("127.0.0.1", rx.port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.bind(("127.0.0.2", 0))
            stranger.sendto(fail, ("127.0.0.1", rx.port))
        events: list[TrapEvent] = []
        deadline = time.monotonic() + 10
        while len(events) < 3 and time.monotonic() < deadline:
            events += await rx.next_batch(wait_s=0.5)
        assert [e.finding.active for e in events] == [True, False, True]
        c = rx.counters()["127.0.0.1"]
        assert (c.received, c.accepted, c.duplicates) == (4, 3, 1)
        deadline = time.monotonic() + 5
        while "127.0.0.2" not in rx.counters() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # polling interval of the condition, not synchronisation
        assert rx.counters()["127.0.0.2"].unknown_source == 1
    finally:
        rx.close()


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngineHolder]:
    """A warmed-up polling engine for this test's event loop."""
    holder = SnmpEngineHolder()
    await holder.warm_up()
    yield holder
    holder.close()


def test_trap_settings_refuse_bad_engine_id() -> None:
    """A v3 user's engine ID must be hex."""
    with pytest.raises(ValueError, match="engine_id"):
        TrapV3User(username="u", engine_id="not-hex")


def test_trap_spec_component_oid_checked() -> None:
    """Trap mappings use numeric OIDs."""
    with pytest.raises(ValueError, match="numeric OID"):
        TrapSpec(oid="IF-MIB::linkDown", code="link_down")


def _storm_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "collectors.traps" and r.levelno >= logging.WARNING
    ]


def _received(rx: TrapReceiver) -> int:
    counters = rx.counters().get("127.0.0.1")
    return counters.received if counters else 0


async def _until(what: str, probe: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)  # polling interval of the condition, not synchronisation


async def test_a_storm_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 11, item 9: 14,781 traps were suppressed and the agent logged nothing. A storm
    from a device is now one WARNING when it starts (source, device, rate) and one when it
    ends (how many were suppressed meanwhile), never a line per trap; a second storm after a
    quiet spell is logged again; normal traffic logs nothing."""
    settings = _settings(rate_per_s=50.0, burst=20, dedup_s=60.0, storm_quiet_s=0.5)
    rx = TrapReceiver(settings, _devices())
    await rx.start()
    snmptrap = require_binary("snmptrap", "/usr/bin")
    peer = f"127.0.0.1:{rx.port}"
    caplog.set_level(logging.INFO, logger="collectors.traps")
    try:
        # A few traps from net-snmp's snmptrap, well under the limits: no storm.
        for fan in ("FAN 1", "FAN 1", "FAN 2"):
            rc, out = await _run(
                snmptrap, "-v2c", "-c", "trapcomm", peer, *_fan_args(FAN_FAIL, fan)
            )
            assert rc == 0, out
        await _until("3 traps", lambda: _received(rx) == 3)
        assert rx.counters()["127.0.0.1"].duplicates == 1
        assert _storm_lines(caplog) == []

        datagrams = [_trap_datagram("trapcomm", f"FAN {i % 40}") for i in range(1500)]

        def storm() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for d in datagrams:
                    s.sendto(d, ("127.0.0.1", rx.port))

        for round_ in (1, 2):
            before = rx.counters()["127.0.0.1"]
            await asyncio.to_thread(storm)
            await _until("the storm's end", lambda r=round_: len(_storm_lines(caplog)) == 2 * r)  # type: ignore[misc]
            after = rx.counters()["127.0.0.1"]
            start, end = _storm_lines(caplog)[-2:]
            assert start.startswith("trap storm from 127.0.0.1 (sw1): about ")
            rate = int(start.split("about ")[1].split(" traps/s")[0])
            assert rate > 50, start
            assert "over its limit of 50/s (burst 20)" in start
            assert end.startswith("trap storm from 127.0.0.1 (sw1) ended after ")
            m = re.search(
                r": (\d+) trap\(s\) suppressed of (\d+) received \(rate-limited (\d+), "
                r"duplicates (\d+), queue full (\d+)\)$",
                end,
            )
            assert m is not None, end
            suppressed, received, limited, duplicates, queue_full = map(int, m.groups())
            # Every rate-limited drop of the round is in the storm (the first one starts it);
            # before it, only the burst got through (and was deduplicated).
            assert limited == after.rate_limited - before.rate_limited > 1000
            assert suppressed == limited + duplicates + queue_full
            assert suppressed <= after.suppressed - before.suppressed
            round_received = after.received - before.received
            assert round_received - settings.burst - 10 <= received <= round_received
        assert len(_storm_lines(caplog)) == 4  # 3,000 traps, 2 storms, 4 lines
    finally:
        rx.close()


async def test_a_storm_still_going_is_ended_with_its_count_at_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rx = TrapReceiver(_settings(rate_per_s=1.0, burst=5, storm_quiet_s=600), _devices())
    await rx.start()
    caplog.set_level(logging.INFO, logger="collectors.traps")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(50):
                s.sendto(_trap_datagram("trapcomm", f"FAN {i}"), ("127.0.0.1", rx.port))
        await _until("50 traps", lambda: _received(rx) == 50)
        assert len(_storm_lines(caplog)) == 1
    finally:
        rx.close()
    c = rx.counters()["127.0.0.1"]
    [_, end] = _storm_lines(caplog)
    assert "ended (receiver closed) after " in end
    assert f": {c.rate_limited} trap(s) suppressed of {c.received - 5} received" in end, (end, c)
