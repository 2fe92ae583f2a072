"""SnmpClient and SnmpCollector against real agents: net-snmp's snmpd and the simulated station."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from collectors.base import ReadingSet
from collectors.build import make_collector
from collectors.errors import AuthFailed, DeviceUnreachable, DeviceUnreadable
from collectors.profiles import Profile, SnmpSource, builtin_profiles
from collectors.serial import SerialCollector
from collectors.snmp import SnmpClient, SnmpCollector, SnmpEngineHolder
from collectors.ssh import SshCollector
from collectors.targets import SerialTarget, SnmpTarget, SshTarget
from tests.peers import StartedPeer, free_port, start_snmpd

pytestmark = pytest.mark.integration

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_TYPE = "1.3.6.1.2.1.2.2.1.3"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
ECRESO = "1.3.6.1.4.1.6404.3.1.2"

# v3 users: (name, auth, priv) as net-snmp spells them, and as SnmpTarget does.
V3_USERS = [
    ("usha", "SHA", "AES", "SHA", "AES"),
    ("umd5", "MD5", "DES", "MD5", "DES"),
    ("usha256", "SHA-256", "AES-256", "SHA256", "AES256"),
    ("usha192", "SHA", "AES-192", "SHA", "AES192"),  # key extension matters with SHA-1
    ("usha512", "SHA-512", "AES", "SHA512", "AES"),
]
CISCO_AES_USER = 'createUser ucisco SHA "authpass1" AES-256-C "privpass1"'  # Reeder key extension

# The Ecreso transmitter's values from the LibreNMS capture the simulator also serves.
ECRESO_OVERRIDES = {
    f"{ECRESO}.7.1.1.3.0": ("integer", 2),  # standby off
    f"{ECRESO}.7.1.1.4.0": ("integer", 2),  # remote
    f"{ECRESO}.7.1.2.1.0": ("integer", 2),
    f"{ECRESO}.7.1.2.2.0": ("integer", 2),
    f"{ECRESO}.7.1.2.3.0": ("integer", 2),
    f"{ECRESO}.7.1.2.9.0": ("integer", 2),
    f"{ECRESO}.7.1.3.1.0": ("unsigned", 301),  # forward power W (Gauge32)
    f"{ECRESO}.7.1.3.2.0": ("unsigned", 30),  # reflected power, tenths of W
    f"{ECRESO}.7.1.3.3.0": ("unsigned", 12),  # VSWR x10
    f"{ECRESO}.7.1.3.4.0": ("unsigned", 0),
    f"{ECRESO}.7.1.4.5.0": ("integer", 1),  # op mode on
    f"{ECRESO}.7.1.4.6.0": ("unsigned", 300),  # set-point W
}


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedPeer]:
    """net-snmp snmpd with a v2c community, v3 users and the Ecreso transmitter's OIDs."""
    lines = ["rocommunity public 127.0.0.1"]
    for user, auth, priv, _, _ in V3_USERS:
        lines += [f'createUser {user} {auth} "authpass1" {priv} "privpass1"', f"rouser {user} priv"]
    lines += [CISCO_AES_USER, "rouser ucisco priv"]
    lines += [f"override {oid} {kind} {value}" for oid, (kind, value) in ECRESO_OVERRIDES.items()]
    peer = start_snmpd(tmp_path_factory.mktemp("snmpd"), lines)
    yield peer
    peer.stop()


@pytest.fixture
async def engine() -> AsyncIterator[SnmpEngineHolder]:
    """A warmed-up engine holder for this test's event loop."""
    holder = SnmpEngineHolder()
    await holder.warm_up()
    yield holder
    holder.close()


def v2c(port: int, **kw: Any) -> SnmpTarget:
    """A v2c target on loopback."""
    return SnmpTarget(host="127.0.0.1", port=port, community=kw.pop("community", "public"), **kw)


# --- SnmpClient vs snmpd ----------------------------------------------------------------------


async def test_get_returns_plain_python_values(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    client = SnmpClient(v2c(snmpd.port), engine)
    got = await client.get([SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, "1.3.6.1.2.1.1.99.0"])
    assert isinstance(got[SYS_DESCR], bytes) and got[SYS_DESCR]
    assert got[SYS_OBJECT_ID] == "1.3.6.1.4.1.8072.3.2.10"  # net-snmp on Linux
    assert isinstance(got[SYS_UPTIME], int)
    assert "1.3.6.1.2.1.1.99.0" not in got  # noSuchObject -> absent


async def test_get_of_many_oids_is_chunked(snmpd: StartedPeer, engine: SnmpEngineHolder) -> None:
    client = SnmpClient(v2c(snmpd.port), engine)
    missing = [f"1.3.6.1.4.1.99999.{i}.0" for i in range(90)]
    got = await client.get([SYS_DESCR, *missing, SYS_UPTIME, f"{ECRESO}.7.1.3.1.0"])
    assert set(got) == {SYS_DESCR, SYS_UPTIME, f"{ECRESO}.7.1.3.1.0"}
    assert got[f"{ECRESO}.7.1.3.1.0"] == 301


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_walk_of_several_columns_at_once(
    snmpd: StartedPeer, engine: SnmpEngineHolder, version: str
) -> None:
    # max_repetitions=2 forces several pages on v2c.
    client = SnmpClient(v2c(snmpd.port, version=version, max_repetitions=2), engine)
    table = await client.walk_columns([IF_DESCR, IF_TYPE, IF_OPER, IF_NAME, "1.3.6.1.2.1.2.2.1.99"])
    names = {index: value for index, value in table[IF_DESCR].items()}
    assert b"lo" in names.values()
    lo = next(index for index, value in names.items() if value == b"lo")
    assert table[IF_TYPE][lo] == 24  # softwareLoopback
    assert table[IF_OPER][lo] == 1
    assert set(table[IF_OPER]) == set(names)
    assert set(table[IF_NAME]) == set(names)
    assert table["1.3.6.1.2.1.2.2.1.99"] == {}  # a column the agent does not have


async def test_v1_get_drops_missing_oids_and_keeps_the_rest(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    client = SnmpClient(v2c(snmpd.port, version="1"), engine)
    got = await client.get([SYS_DESCR, "1.3.6.1.2.1.1.99.0", SYS_UPTIME, "1.3.6.1.2.1.1.98.0"])
    assert set(got) == {SYS_DESCR, SYS_UPTIME}


async def test_walk_to_the_end_of_the_mib(snmpd: StartedPeer, engine: SnmpEngineHolder) -> None:
    for version in ("1", "2c"):
        client = SnmpClient(v2c(snmpd.port, version=version), engine)
        assert await client.walk_columns(["1.3.6.1.6.3.99"]) == {"1.3.6.1.6.3.99": {}}


@pytest.mark.parametrize(("user", "auth", "priv"), [(u, a, p) for u, _, _, a, p in V3_USERS])
async def test_v3_auth_priv(
    snmpd: StartedPeer, engine: SnmpEngineHolder, user: str, auth: Any, priv: Any
) -> None:
    target = SnmpTarget(
        host="127.0.0.1",
        port=snmpd.port,
        version="3",
        username=user,
        auth_protocol=auth,
        auth_key="authpass1",
        priv_protocol=priv,
        priv_key="privpass1",
        # Localising a SHA-512 key is slow pure Python: on a loaded machine 1 s is not enough.
        timeout_s=10,
        retries=0,
    )
    client = SnmpClient(target, engine)
    assert isinstance((await client.get([SYS_DESCR]))[SYS_DESCR], bytes)
    assert (await client.walk_columns([IF_DESCR]))[IF_DESCR]


async def test_one_v3_user_name_with_different_keys_on_two_agents(
    snmpd: StartedPeer, engine: SnmpEngineHolder, tmp_path: Path
) -> None:
    # pysnmp keeps one USM entry per user name; concurrent requests must not mix the keys.
    other = start_snmpd(
        tmp_path / "snmpd2",
        [
            "rocommunity public 127.0.0.1",
            'createUser usha SHA "other-auth" AES "other-priv"',
            "rouser usha priv",
        ],
    )
    try:
        clients = [
            SnmpClient(
                SnmpTarget(
                    host="127.0.0.1",
                    port=port,
                    version="3",
                    username="usha",
                    auth_protocol="SHA",
                    auth_key=auth,
                    priv_protocol="AES",
                    priv_key=priv,
                    timeout_s=10,
                    retries=0,
                ),
                engine,
            )
            for port, auth, priv in [
                (snmpd.port, "authpass1", "privpass1"),
                (other.port, "other-auth", "other-priv"),
            ]
        ]
        results = await asyncio.gather(*(clients[i % 2].get([SYS_UPTIME]) for i in range(20)))
        assert all(SYS_UPTIME in r for r in results)
    finally:
        other.stop()


async def test_aes256_is_net_snmps_aes256_not_ciscos(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    # "AES256" extends the key as net-snmp's AES-256 does (draft-blumenthal); a device using
    # Cisco's extension (net-snmp AES-256-C) cannot decrypt it and drops the request.
    target = SnmpTarget(
        host="127.0.0.1",
        port=snmpd.port,
        version="3",
        username="ucisco",
        auth_protocol="SHA",
        auth_key="authpass1",
        priv_protocol="AES256",
        priv_key="privpass1",
        timeout_s=0.3,
        retries=0,
    )
    with pytest.raises(DeviceUnreachable):
        await SnmpClient(target, engine).get([SYS_DESCR])


async def test_wrong_community_times_out_quickly(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    client = SnmpClient(v2c(snmpd.port, community="wrong", timeout_s=0.3, retries=1), engine)
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable, match=r"SNMP timeout after 0\.6s"):
        await client.get([SYS_DESCR])
    assert time.monotonic() - started < 1.5


async def test_wrong_v3_auth_key_is_auth_failed(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    target = SnmpTarget(
        host="127.0.0.1",
        port=snmpd.port,
        version="3",
        username="usha",
        auth_protocol="SHA",
        auth_key="not-the-key",
        priv_protocol="AES",
        priv_key="privpass1",
        timeout_s=0.5,
        retries=0,
    )
    with pytest.raises(AuthFailed) as exc:
        await SnmpClient(target, engine).get([SYS_DESCR])
    assert "not-the-key" not in str(exc.value)


async def test_unknown_v3_user_is_auth_failed(snmpd: StartedPeer, engine: SnmpEngineHolder) -> None:
    target = SnmpTarget(
        host="127.0.0.1",
        port=snmpd.port,
        version="3",
        username="nobody",
        auth_protocol="SHA",
        auth_key="authpass1",
        timeout_s=0.5,
        retries=0,
    )
    with pytest.raises(AuthFailed):
        await SnmpClient(target, engine).get([SYS_DESCR])


async def test_wrong_v3_priv_key_is_a_timeout(snmpd: StartedPeer, engine: SnmpEngineHolder) -> None:
    # snmpd drops a PDU it cannot decrypt without a report, so pysnmp can only time out.
    target = SnmpTarget(
        host="127.0.0.1",
        port=snmpd.port,
        version="3",
        username="usha",
        auth_protocol="SHA",
        auth_key="authpass1",
        priv_protocol="AES",
        priv_key="not-the-key",
        timeout_s=0.3,
        retries=0,
    )
    with pytest.raises(DeviceUnreachable) as exc:
        await SnmpClient(target, engine).get([SYS_DESCR])
    assert "not-the-key" not in str(exc.value)


async def test_closed_port_is_unreachable_within_the_timeout(engine: SnmpEngineHolder) -> None:
    target = v2c(free_port(socket.SOCK_DGRAM), timeout_s=0.4, retries=1)
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await SnmpClient(target, engine).walk_columns([IF_DESCR])
    elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 0.4 * 2 + 0.5


class JunkResponder(asyncio.DatagramProtocol):
    """Answers every datagram with text that makes pysnmp's decoder raise TypeError."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """Reply with junk."""
        self.transport.sendto(b"hello world garbage\r\n", addr)


async def test_junk_answers_time_out_quietly(
    engine: SnmpEngineHolder, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(JunkResponder, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        with pytest.raises(DeviceUnreachable):
            await SnmpClient(v2c(port, timeout_s=0.2, retries=1), engine).get([SYS_DESCR])
    finally:
        transport.close()
    # pysnmp would log an event-loop traceback per junk datagram; the engine drops them quietly
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= 40]


async def test_unresolvable_host_is_unreachable(engine: SnmpEngineHolder) -> None:
    target = SnmpTarget(host="no-such-host.invalid", community="public", timeout_s=0.5)
    with pytest.raises(DeviceUnreachable, match="resolve"):
        await SnmpClient(target, engine).get([SYS_DESCR])


# --- SnmpCollector vs snmpd -------------------------------------------------------------------


def linux_profile() -> Profile:
    """A small profile of what any Linux snmpd serves."""
    return Profile.model_validate(
        {
            "name": "test_linux",
            "vendor": "net-snmp",
            "model": "snmpd",
            "device_class": "host",
            "protocol": "snmp",
            "snmp": {
                "scalars": [
                    {"metric": "sys_descr", "oid": SYS_DESCR, "text": True},
                    {"metric": "uptime_s", "oid": SYS_UPTIME, "scale": 0.01, "unit": "s"},
                    {"metric": "not_there", "oid": "1.3.6.1.2.1.1.99.0"},
                ],
                "tables": [
                    {
                        "name": "interfaces",
                        "component_oid": IF_DESCR,
                        "columns": [
                            {"metric": "if_type", "oid": IF_TYPE},
                            {
                                "metric": "if_oper_status",
                                "oid": IF_OPER,
                                "states": {"1": "up", "2": "down"},
                            },
                            {"metric": "if_descr", "oid": IF_DESCR, "text": True},
                        ],
                    },
                    {
                        "name": "nothing",
                        "component_oid": "1.3.6.1.4.1.99999.1.1.2",
                        "columns": [{"metric": "nothing_state", "oid": "1.3.6.1.4.1.99999.1.1.3"}],
                    },
                ],
            },
        }
    )


async def test_collector_reads_scalars_and_tables(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    profile = linux_profile()
    assert profile.snmp is not None
    collector = SnmpCollector("host1", v2c(snmpd.port, max_repetitions=3), profile.snmp, engine)
    readings = await collector.collect()
    rs = ReadingSet(readings)
    assert all(r.device == "host1" for r in readings)
    assert isinstance(rs.get("sys_descr"), str) and rs.get("sys_descr")
    uptime = rs.get("uptime_s")
    assert isinstance(uptime, float) and uptime > 0
    assert not rs.has("not_there")
    assert "lo" in rs.components("if_oper_status")
    assert rs.get("if_oper_status", "lo") == "up"
    assert rs.get("if_type", "lo") == 24
    assert rs.get("if_descr", "lo") == "lo"
    ports = rs.components("if_oper_status")
    assert rs.get("if_oper_status") == len(ports)  # the row count under component ""
    assert rs.get("nothing_state") == 0 and rs.components("nothing_state") == []
    by_key = {(r.metric, r.component): r for r in readings}
    assert by_key[("if_oper_status", "lo")].kind == "state"
    assert by_key[("if_type", "lo")].kind == "metric"
    assert by_key[("uptime_s", "")].unit == "s"
    await collector.close()


async def test_collector_serves_the_bundled_ecreso_profile(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    profile = builtin_profiles()["ecreso_fm"]
    collector = make_collector(
        "tx1", profile, v2c(snmpd.port), snmp_engine=engine, known_hosts=Path("/nonexistent")
    )
    rs = ReadingSet(await collector.collect())
    assert rs.get("forward_power_w") == 301
    assert rs.get("reflected_power_w") == 3.0
    assert rs.get("vswr") == 1.2
    assert rs.get("op_mode") == "on"
    assert rs.get("standby") == "off"
    assert rs.get("alarm_fault") == "ok"
    assert rs.get("power_setpoint_w") == 300
    assert not rs.has("temp_internal_c")  # not overridden in snmpd: simply absent


async def test_collector_raises_when_the_agent_has_none_of_the_profile(
    snmpd: StartedPeer, engine: SnmpEngineHolder
) -> None:
    source = SnmpSource.model_validate(
        {
            "scalars": [{"metric": "a", "oid": "1.3.6.1.4.1.99999.1.0"}],
            "tables": [
                {
                    "name": "t",
                    "component_oid": "1.3.6.1.4.1.99999.2.1.2",
                    "columns": [{"metric": "b", "oid": "1.3.6.1.4.1.99999.2.1.3"}],
                }
            ],
        }
    )
    with pytest.raises(DeviceUnreadable, match="none of the profile"):
        await SnmpCollector("dev", v2c(snmpd.port), source, engine).collect()


async def test_collector_for_a_dead_device_is_unreachable(engine: SnmpEngineHolder) -> None:
    profile = builtin_profiles()["cisco_ios_switch"]
    assert profile.snmp is not None
    target = v2c(free_port(socket.SOCK_DGRAM), timeout_s=0.3, retries=0)
    with pytest.raises(DeviceUnreachable):
        await SnmpCollector("sw9", target, profile.snmp, engine).collect()


# --- make_collector ---------------------------------------------------------------------------


def test_make_collector_picks_the_protocol(tmp_path: Path) -> None:
    holder = SnmpEngineHolder()
    profiles = builtin_profiles()
    snmp = make_collector(
        "tx1", profiles["ecreso_fm"], v2c(161), snmp_engine=holder, known_hosts=tmp_path / "kh"
    )
    ssh = make_collector(
        "pbx1",
        profiles["generic_pbx_ssh"],
        SshTarget(host="127.0.0.1", username="maint", password="x"),
        snmp_engine=holder,
        known_hosts=tmp_path / "kh",
    )
    serial = make_collector(
        "tx2",
        profiles["generic_serial_tx"],
        SerialTarget(port="/dev/ttyUSB0"),
        snmp_engine=holder,
        known_hosts=tmp_path / "kh",
    )
    assert isinstance(snmp, SnmpCollector)
    assert isinstance(ssh, SshCollector)
    assert isinstance(serial, SerialCollector)
    assert (snmp.device_id, ssh.device_id, serial.device_id) == ("tx1", "pbx1", "tx2")


def test_make_collector_refuses_a_target_of_another_protocol(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ecreso_fm.*speaks snmp.*for ssh"):
        make_collector(
            "tx1",
            builtin_profiles()["ecreso_fm"],
            SshTarget(host="127.0.0.1", username="u", password="p"),
            snmp_engine=SnmpEngineHolder(),
            known_hosts=tmp_path / "kh",
        )


# --- SnmpCollector vs the simulated station ---------------------------------------------------


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The simulated station (simulators package), started once for this module."""
    sim = pytest.importorskip("simulators.station", reason="simulators.station not available yet")
    st = sim.SimulatedStation(
        sim.load_station_config(), tmp_path_factory.mktemp("station"), ephemeral_ports=True
    )
    st.start()
    yield st
    st.stop()


@pytest.fixture
def fresh_station(station: Any) -> Iterator[Any]:
    """The station with every condition cleared before and after the test."""
    station.reset()
    yield station
    station.reset()


def sim_target(station: Any, device: str, **kw: Any) -> SnmpTarget:
    """The SnmpTarget of a simulated SNMP device, from the station's manifest."""
    d = station.manifest["devices"][device]
    assert d["protocol"] == "snmp"
    return SnmpTarget(host=d["host"], port=d["port"], community=d["community"], **kw)


def sim_collector(station: Any, device: str, engine: SnmpEngineHolder, **kw: Any) -> SnmpCollector:
    """An SnmpCollector for a simulated device with the profile the manifest names."""
    profile = builtin_profiles()[station.manifest["devices"][device]["profile"]]
    assert profile.snmp is not None
    return SnmpCollector(device, sim_target(station, device, **kw), profile.snmp, engine)


async def test_simulated_transmitter_on_air(fresh_station: Any, engine: SnmpEngineHolder) -> None:
    rs = ReadingSet(await sim_collector(fresh_station, "tx1", engine).collect())
    assert rs.get("forward_power_w") == 301
    assert rs.get("reflected_power_w") == 3.0
    assert rs.get("vswr") == 1.2
    assert rs.get("op_mode") == "on"
    assert rs.get("power_setpoint_w") == 300


async def test_simulated_transmitter_off_air(fresh_station: Any, engine: SnmpEngineHolder) -> None:
    fresh_station.set_condition("tx1", "off_air")
    rs = ReadingSet(await sim_collector(fresh_station, "tx1", engine).collect())
    assert rs.get("op_mode") == "off"
    assert rs.get("forward_power_w") == 0


async def test_simulated_switch_ports_and_fans(
    fresh_station: Any, engine: SnmpEngineHolder
) -> None:
    collector = sim_collector(fresh_station, "sw1", engine)
    rs = ReadingSet(await collector.collect())
    ports = rs.components("if_oper_status")
    assert "FastEthernet0/2" in ports or "Fa0/2" in ports
    assert rs.get("if_oper_status") == len(ports)
    assert set(rs.components("if_admin_status")) == set(ports)
    assert rs.get("fan_state", "Switch#1, Fan#1") == "normal"
    assert isinstance(rs.get("sys_descr"), str) and "Cisco IOS" in str(rs.get("sys_descr"))
    fresh_station.set_condition("sw1", "fan_alarm")
    rs = ReadingSet(await collector.collect())
    assert rs.get("fan_state", "Switch#1, Fan#1") == "critical"


async def test_simulated_port_down(fresh_station: Any, engine: SnmpEngineHolder) -> None:
    collector = sim_collector(fresh_station, "sw1", engine)
    before = ReadingSet(await collector.collect())
    port = next(p for p in ("Fa0/2", "FastEthernet0/2") if before.has("if_oper_status", p))
    fresh_station.set_condition("sw1", "port_down")
    after = ReadingSet(await collector.collect())
    assert after.get("if_oper_status", port) == "down"
    assert after.get("if_admin_status", port) == "up"


async def test_simulated_hang_is_unreachable(fresh_station: Any, engine: SnmpEngineHolder) -> None:
    fresh_station.set_condition("tx1", "hang")
    started = time.monotonic()
    with pytest.raises(DeviceUnreachable):
        await sim_collector(fresh_station, "tx1", engine, timeout_s=0.5, retries=0).collect()
    assert time.monotonic() - started < 2.0


async def test_simulated_garbage_is_an_error(
    fresh_station: Any, engine: SnmpEngineHolder, caplog: pytest.LogCaptureFixture
) -> None:
    fresh_station.set_condition("sw1", "garbage")
    with pytest.raises((DeviceUnreachable, DeviceUnreadable)):
        await sim_collector(fresh_station, "sw1", engine, timeout_s=0.15, retries=4).collect()
    # the junk datagrams are dropped quietly, not logged as event-loop tracebacks
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelno >= 40]
