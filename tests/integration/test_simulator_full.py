"""The full station (simulators/stations/full.yaml) against real peers: net-snmp tools and
snmptrapd, a paramiko client, pyserial, the control API and the CLI as a subprocess.

Covers issue 3's simulator features: every device class, traps and informs (presets, custom
varbinds, condition traps, storms), SSH host-key change and disconnect, serial unplug/replug
and disconnect, config changes with and without significant lines, hang/garbage on every new
device, and the many-devices (replicas) mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import serial
import yaml

from collectors.profiles import profile_data
from simulators.config import TrapSettings, load_station_config
from simulators.errors import ConditionError, StationConfigError
from simulators.station import SimulatedStation
from tests.integration.test_simulator import Snmp, api, cli, read_until_prompt, wait_for
from tests.peers import free_port, require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "collectors" / "profiles"
DATA = REPO / "simulators" / "data"
NEW_SNMP = ["tx3", "sw2", "ups1", "env1", "vc1"]
MORE_SNMP = [
    "ups2",
    "ups3",
    "ups4",
    "tx4",
    "tx5",
    "sw3",
    "sw4",
    "sw5",
    "vc2",
    "vc3",
    "pbx2",
    "pbx3",
]
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"
UPS = "1.3.6.1.2.1.33.1"
PPC = "1.3.6.1.4.1.935.1.1.1"
STE2 = "1.3.6.1.4.1.21796.4.9"
RS_TX, IRT = "1.3.6.1.4.1.2566.127.1.2.167.4.1.2", "1.3.6.1.4.1.19831.1.1.1.1.1"
HW_ENTITY, HW_FAN = "1.3.6.1.4.1.2011.5.25.31.1.1.1.1", "1.3.6.1.4.1.2011.5.25.31.1.1.10.1"
POLY = "1.3.6.1.4.1.13885.101.1"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"


# --- peers ------------------------------------------------------------------------------------


class TrapReceiver:
    """net-snmp's snmptrapd on a loopback port, logging one line per notification."""

    def __init__(self, workdir: Path) -> None:
        binary = require_binary("snmptrapd")
        self.port = free_port(socket.SOCK_DGRAM)
        self.log = workdir / "traps.log"
        workdir.mkdir(parents=True, exist_ok=True)
        conf = workdir / "snmptrapd.conf"
        conf.write_text("disableAuthorization yes\n[snmp] mibs :\n")
        (workdir / "snmp.conf").write_text("mibs :\n")
        env = {
            **os.environ,
            "SNMP_PERSISTENT_DIR": str(workdir / "p"),
            "SNMPCONFPATH": str(workdir),
        }
        argv = [binary, "-f", "-n", "-C", "-c", str(conf), "-Lf", str(self.log), "-On"]
        self.proc = subprocess.Popen(
            [*argv, "-F", "TRAP %b|%P|%v\n", f"udp:127.0.0.1:{self.port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: "NET-SNMP version" in self.text(), 10, "snmptrapd to start")

    @property
    def target(self) -> str:
        """Its address as the control API takes it."""
        return f"127.0.0.1:{self.port}"

    def text(self) -> str:
        """The log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def traps(self) -> list[str]:
        """Every notification received so far, one line each."""
        return [line for line in self.text().splitlines() if line.startswith("TRAP ")]

    def wait(self, count: int, timeout: float = 10.0) -> list[str]:
        """Poll the log until at least `count` notifications arrived."""
        wait_for(lambda: len(self.traps()) >= count, timeout, f"{count} traps at snmptrapd")
        return self.traps()

    def stop(self) -> None:
        """Stop snmptrapd."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def trapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrapReceiver]:
    """A running snmptrapd."""
    receiver = TrapReceiver(tmp_path_factory.mktemp("trapd"))
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def full(
    tmp_path_factory: pytest.TempPathFactory, trapd: TrapReceiver
) -> Iterator[SimulatedStation]:
    """The full station on ephemeral ports; condition traps go to snmptrapd."""
    config = load_station_config("full")
    config = config.model_copy(update={"traps": TrapSettings(target=trapd.target)})
    sim = SimulatedStation(config, tmp_path_factory.mktemp("full"), ephemeral_ports=True)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def _normal(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test ends with all devices normal."""
    yield
    if "full" in request.fixturenames:
        request.getfixturevalue("full").reset()


@pytest.fixture(scope="module")
def snmp_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for net-snmp tools: numeric output, no MIB loading noise."""
    conf = tmp_path_factory.mktemp("snmpconf")
    (conf / "snmp.conf").write_text("mibs :\n")
    return {**os.environ, "SNMPCONFPATH": str(conf)}


@pytest.fixture
def snmp(full: SimulatedStation, snmp_env: dict[str, str]) -> Snmp:
    """net-snmp tools bound to the full station."""
    return Snmp(full, snmp_env)


def capture(name: str) -> dict[str, tuple[str, str]]:
    """OID -> (type tag, value text) straight from a snmprec file."""
    out: dict[str, tuple[str, str]] = {}
    for line in (DATA / name).read_text().splitlines():
        oid, tag, value = line.split("|", 2)
        out[oid] = (tag, value)
    return out


# --- station file and device classes ----------------------------------------------------------


def test_full_station_devices_and_profiles() -> None:
    """Every device class; profile names are the collectors' ones (or null); data is served."""
    config = load_station_config("full")
    by_id = {d.id: d for d in config.expanded()}
    classes = {d.device_class for d in by_id.values()}
    assert classes == {"transmitter", "switch", "pbx", "codec", "ups", "environment"}
    assert load_station_config("demo").name == "demo-station"
    for device in by_id.values():
        if device.profile is not None:
            assert (PROFILES / f"{device.profile}.yaml").is_file(), device.profile
    ssh = {d.id: d for d in by_id.values() if d.protocol == "ssh"}
    assert set(ssh) == {"pbx1", "vc1-cli"}
    readme = (DATA / "README.md").read_text()
    for device in by_id.values():
        data = getattr(device, "data", None)
        if data:
            assert Path(data).name in readme  # attribution for every capture served
            assert (config.source.parent / data).resolve().is_file()


@pytest.mark.parametrize("device", [*NEW_SNMP, *MORE_SNMP])
def test_new_device_serves_capture_and_profile_scalars(snmp: Snmp, device: str) -> None:
    """sysDescr/sysObjectID from the capture, and every scalar its profile reads exists."""
    ep = snmp.station.manifest["devices"][device]
    spec = snmp.station.config.device(device)
    data = capture(Path(getattr(spec, "data", "")).name)
    got = snmp.get(device, "1.3.6.1.2.1.1.2.0")
    assert got["1.3.6.1.2.1.1.2.0"].lstrip(".") == data["1.3.6.1.2.1.1.2.0"][1].lstrip(".")
    if ep["profile"] and (PROFILES / f"{ep['profile']}.yaml").is_file():
        prof = profile_data(PROFILES / f"{ep['profile']}.yaml")  # with the blocks it extends
        oids = [s["oid"] for s in prof["snmp"].get("scalars", [])]
        values = dict(snmp.values("snmpget", device, *oids)) if oids else {}
        missing = [o for o in oids if "No Such" in values.get(o, "No Such")]
        served = len(oids) - len(missing)
        assert served >= max(1, len(oids) // 2), (device, missing)


CONDITIONS: dict[str, dict[str, dict[str, str]]] = {
    "ups1": {
        "on_battery": {f"{UPS}.4.1.0": "5", f"{PPC}.4.1.1.0": "3", f"{UPS}.2.4.0": "92"},
        "battery_low": {f"{UPS}.2.1.0": "3", f"{PPC}.2.1.1.0": "3", f"{PPC}.2.2.1.0": "12"},
    },
    "env1": {
        "temp_high": {f"{STE2}.3.1.5.2": "386", f"{STE2}.3.1.3.2": "5"},
        "humidity_high": {f"{STE2}.3.1.5.3": "865", f"{STE2}.3.1.7.3": "4"},
        "flood": {f"{STE2}.1.1.4.1": "1", f"{STE2}.3.1.3.1": "5"},
    },
    "tx3": {
        "power_down": {f"{RS_TX}.5.0": "20.0"},
        "reflected_high": {f"{RS_TX}.6.0": "6.5"},
        "off_air": {f"{IRT}.3.0": "2", f"{IRT}.4.0": "2", f"{RS_TX}.5.0": "0.0"},
        "tx_fault": {f"{IRT}.6.0": "1"},
        "input_lost": {f"{IRT}.8.0": "2"},
    },
    "sw2": {
        "port_down": {f"{IF_OPER}.7": "2", f"{IF_OPER}.6": "1"},
        "fan_alarm": {f"{HW_FAN}.7.0.3": "2"},
        "psu_fault": {f"{HW_ENTITY}.2.67174413": "2"},
        "temp_high": {f"{HW_ENTITY}.11.67108873": "82"},
        "cpu_high": {f"{HW_ENTITY}.5.67108873": "97"},
    },
    "vc1": {"camera_fault": {f"{POLY}.3.6.1.0": "4"}},
}


@pytest.mark.parametrize("device", sorted(CONDITIONS))
def test_new_device_conditions(full: SimulatedStation, snmp: Snmp, device: str) -> None:
    """Each condition changes exactly the OIDs it declares; clearing restores the capture."""
    cases = CONDITIONS[device]
    oids = sorted({oid for expected in cases.values() for oid in expected})
    normal = snmp.get(device, *oids)
    for condition, expected in cases.items():
        full.set_condition(device, condition)
        got = snmp.get(device, *oids)
        assert {k: got[k] for k in expected} == expected, condition
        full.clear_condition(device, condition)
        assert snmp.get(device, *oids) == normal, condition
    assert set(full.device_info(device)["allowed_conditions"]) == {*cases, "hang", "garbage"}


# (device, condition, fault code its profile's checks should raise), through the real
# SnmpCollector and check engine: the simulator's conditions mean what the profiles expect.
PROFILE_FAULTS = [
    ("ups1", "on_battery", "on_battery"),
    ("ups1", "battery_low", "battery_low"),
    ("env1", "temp_high", "room_temp_high"),
    ("env1", "humidity_high", "humidity_high"),
    ("env1", "flood", "input_alarm"),
    ("tx3", "off_air", "off_air"),
    ("tx3", "power_down", "power_drop"),
    ("tx3", "reflected_high", "reflected_high"),
    ("tx3", "tx_fault", "tx_fault"),
    ("tx3", "input_lost", "input1_lost"),
    ("sw2", "port_down", "port_down"),
    ("sw2", "fan_alarm", "fan_fault"),
    ("sw2", "temp_high", "temp_high"),
    ("sw2", "cpu_high", "cpu_high"),
    ("vc1", "camera_fault", "camera_failed"),
    ("ups2", "on_battery", "on_battery"),
    ("ups2", "battery_low", "battery_low"),
    ("ups3", "on_battery", "on_battery"),
    ("ups3", "battery_low", "battery_low"),
    ("ups4", "on_battery", "on_battery"),
    ("ups4", "battery_low", "battery_low"),
    ("tx4", "power_down", "power_low"),
    ("tx4", "reflected_high", "reverse_power_high"),
    ("tx4", "temp_high", "over_temp"),
    ("tx4", "tx_fault", "major_alarm"),
    ("tx5", "tx_fault", "output_not_synchronised"),
    ("sw4", "port_down", "port_down"),
]


async def test_conditions_raise_the_profiles_faults(full: SimulatedStation) -> None:
    """Each condition raises its fault through the collector and checks, and clears again."""
    from checks.engine import DeviceGrader
    from checks.profile_rules import builtin_profiles
    from checks.tracker import FaultTracker
    from collectors.base import ReadingSet
    from collectors.snmp import SnmpCollector, SnmpEngineHolder
    from collectors.targets import SnmpTarget

    profiles = builtin_profiles()
    holder = SnmpEngineHolder()
    tracker = FaultTracker()
    problems: list[str] = []

    async def active_faults(device: str) -> set[tuple[str, str]]:
        ep = full.manifest["devices"][device]
        prof = profiles[ep["profile"]]
        assert prof.snmp is not None
        target = SnmpTarget.model_validate(
            {"host": "127.0.0.1", "port": ep["port"], "community": ep["community"]}
        )
        readings = await SnmpCollector(device, target, prof.snmp, holder).collect()
        grader = DeviceGrader(device, prof.checks, prof.unreachable_grade)
        for _ in range(3):  # checks may want a condition on consecutive polls
            grader.on_readings(ReadingSet(readings), tracker)
        return {(f.code, f.component) for f in tracker.active.values() if f.device_id == device}

    try:
        for device, condition, code in PROFILE_FAULTS:
            if full.manifest["devices"][device]["profile"] not in profiles:
                problems.append(f"{device}: profile not available")
                continue
            baseline = await active_faults(device)  # the capture may have faults of its own
            full.set_condition(device, condition)
            new = {f for f in await active_faults(device) - baseline if f[0] == code}
            full.clear_condition(device, condition)
            left = new & await active_faults(device)
            if not new or left:
                problems.append(f"{device}/{condition}: {code} raised {new}, left {left}")
    finally:
        holder.close()
    assert not problems, problems


def test_ups_overlay_is_healthy_and_conditions_stack(full: SimulatedStation, snmp: Snmp) -> None:
    """The UPS-MIB state added to the capture reads healthy; battery_low wins over on_battery."""
    oids = [f"{UPS}.4.1.0", f"{UPS}.2.1.0", f"{UPS}.2.4.0", f"{UPS}.1.1.0"]
    assert list(snmp.get("ups1", *oids).values()) == ["3", "2", "100", "INVT CO., LTD"]
    full.set_condition("ups1", "on_battery")
    full.set_condition("ups1", "battery_low")
    assert list(snmp.get("ups1", *oids[:3]).values()) == ["5", "3", "12"]


@pytest.mark.parametrize("device", [*NEW_SNMP])
def test_hang_and_garbage_on_new_snmp_devices(
    full: SimulatedStation, snmp: Snmp, device: str
) -> None:
    """hang: no reply; garbage: bytes that are not SNMP."""
    full.set_condition(device, "hang")
    result = snmp.run("snmpget", device, "1.3.6.1.2.1.1.1.0", timeout=0.3)
    assert result.returncode != 0 and "Timeout" in result.stdout + result.stderr
    full.reset(device)
    full.set_condition(device, "garbage")
    port = full.manifest["devices"][device]["port"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"anything", ("127.0.0.1", port))
        junk = sock.recv(4096)
    assert len(junk) >= 8  # bytes came back ...
    result = snmp.run("snmpget", device, "1.3.6.1.2.1.1.1.0", timeout=0.3)
    assert result.returncode != 0  # ... but no SNMP answer
    full.reset(device)
    assert snmp.get(device, "1.3.6.1.2.1.1.1.0")


def test_builtins_per_protocol(full: SimulatedStation) -> None:
    """unplugged is for serial, host_key_changed for SSH: the error says so."""
    with pytest.raises(ConditionError, match="serial devices"):
        full.set_condition("ups1", "unplugged")
    with pytest.raises(ConditionError, match="ssh devices"):
        full.set_condition("tx2", "host_key_changed")
    status, body = api(full, "POST", "/devices/tx1/conditions", {"condition": "disconnect"})
    assert status == 400 and "ssh, serial devices" in body["error"]
    assert "host_key_changed" in full.device_info("vc1-cli")["allowed_conditions"]
    assert "unplugged" in full.device_info("tx2")["allowed_conditions"]


# --- codec CLI --------------------------------------------------------------------------------


def ssh_connect(
    station: SimulatedStation, device: str, key: paramiko.PKey | None = None
) -> paramiko.SSHClient:
    """A logged-in client pinning the device's normal host key (or the given one)."""
    ep = station.manifest["devices"][device]
    pinned = key or paramiko.ECDSAKey.from_private_key_file(ep["host_key"])
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[127.0.0.1]:{ep['port']}", pinned.get_name(), pinned)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=ep["port"],
        username=ep["username"],
        password=ep["password"],
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
        banner_timeout=5,
        auth_timeout=5,
    )
    return client


def run_exec(client: paramiko.SSHClient, command: str) -> str:
    """One exec command's output (must exit 0)."""
    _, stdout, _ = client.exec_command(command, timeout=5)
    out = stdout.read().decode()
    assert stdout.channel.recv_exit_status() == 0, out
    return out.replace("\r\n", "\n")


def test_codec_cli_logs_version_config(full: SimulatedStation) -> None:
    """show log errors/calls, show version, show running-config; shell with prompt."""
    client = ssh_connect(full, "vc1-cli")
    try:
        errors = run_exec(client, "show log errors").splitlines()
        assert errors[-1] == "2026-11-15 22:40:57 ERROR SIP registration refreshed after 1 retry"
        calls = run_exec(client, "show log calls").splitlines()
        assert len(calls) == 2 and all("result=completed" in c for c in calls)
        assert run_exec(client, "show version").startswith("Poly Studio X50 software 3.10.0")
        config = run_exec(client, "show running-config").splitlines()
        assert 'sip.password "s1p-Secret"' in config and config[-1] == "end"
        channel = client.invoke_shell()
        banner = read_until_prompt(channel)
        assert banner.endswith("VC-STUDIO-1> ") and "Poly Studio X50" in banner
        channel.sendall(b"show log calls\r\n")
        assert "id=1042" in read_until_prompt(channel)
    finally:
        client.close()


def test_codec_log_conditions_append_timestamped_lines(full: SimulatedStation) -> None:
    """error_burst/call_failed add lines stamped when set; history stays after clearing."""
    client = ssh_connect(full, "vc1-cli")
    try:
        before = run_exec(client, "show log errors").splitlines()
        full.set_condition("vc1-cli", "error_burst")
        after = run_exec(client, "show log errors").splitlines()
        new = after[len(before) :]
        assert [line[20:] for line in new] == [
            "ERROR SIP registration failed: 408 Request Timeout",
            "ERROR H.323 gatekeeper 10.20.0.5 unreachable",
            "CRITICAL Camera EagleEye IV disconnected",
            "ERROR Fan failure: system fan 1 stopped",
        ]
        assert all(re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line) for line in new)
        assert after[: len(before)] == before  # only new lines; old ones unchanged
        full.clear_condition("vc1-cli", "error_burst")
        assert run_exec(client, "show log errors").splitlines() == after  # history stays
        full.set_condition("vc1-cli", "call_failed")
        calls = run_exec(client, "show log calls").splitlines()
        assert "result=failed cause=486" in calls[-1]
        assert "Call 2077" in run_exec(client, "show log errors").splitlines()[-1]
        full.set_condition("vc1-cli", "error_burst")  # set again: the burst happens again
        assert len(run_exec(client, "show log errors").splitlines()) == len(after) + 1 + 4
    finally:
        client.close()


async def test_codec_cli_as_the_generic_mcu_ssh_profile_reads_it(full: SimulatedStation) -> None:
    """The agent's SshCollector with generic_mcu_ssh: ports, alarms; the conditions change them."""
    from checks.profile_rules import builtin_profiles
    from collectors.ssh import SshCollector
    from collectors.targets import SshTarget

    ep = full.manifest["devices"]["vc1-cli"]
    profiles = builtin_profiles()
    if ep["profile"] not in profiles:
        pytest.skip(f"profile {ep['profile']} not available")
    profile = profiles[ep["profile"]]
    assert profile.ssh is not None
    target = SshTarget.model_validate(
        {k: ep[k] for k in ("host", "port", "username", "password")} | {"timeout_s": 5}
    )
    known_hosts = full.workdir / "agent_known_hosts"
    collector = SshCollector("vc1-cli", target, profile.ssh, known_hosts)

    async def values() -> dict[tuple[str, str], object]:
        return {(r.metric, r.component): r.value for r in await collector.collect()}

    try:
        got = await values()
        assert got[("ports_used", "")] == 18 and got[("ports_licensed", "")] == 40
        assert not [k for k in got if k[0] == "alarm_severity" and k[1]]
        full.set_condition("vc1-cli", "ports_exhausted")
        full.set_condition("vc1-cli", "mcu_alarm")
        got = await values()
        assert got[("ports_used", "")] == 38
        assert got[("alarm_severity", "E1-1")] == "major"
    finally:
        await collector.close()


def test_codec_config_changed_and_noise(full: SimulatedStation) -> None:
    """config_noise changes only the timestamp line; config_changed changes real lines."""
    client = ssh_connect(full, "vc1-cli")
    try:
        base = run_exec(client, "show running-config").splitlines()
        full.set_condition("vc1-cli", "config_noise")
        noisy = run_exec(client, "show running-config").splitlines()
        diff = [(a, b) for a, b in zip(base, noisy, strict=True) if a != b]
        assert len(diff) == 1 and diff[0][1].startswith("# Last configuration change at 07:30")
        full.reset("vc1-cli")
        full.set_condition("vc1-cli", "config_changed")
        changed = run_exec(client, "show running-config").splitlines()
        assert 'sip.registrar "203.0.113.66"' in changed
        assert 'remoteaccess.enable "true"' in changed and changed[-1] == "end"
        assert 'sip.registrar "sip.hq.example.net"' not in changed
    finally:
        client.close()


# --- SSH host key change and disconnect -------------------------------------------------------


@pytest.mark.parametrize("device", ["pbx1", "vc1-cli"])
def test_host_key_changed(full: SimulatedStation, device: str) -> None:
    """While set, a pinning client refuses the server; the changed key is stable; clear restores."""
    ep = full.manifest["devices"][device]
    ssh_connect(full, device).close()
    full.set_condition(device, "host_key_changed")
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_connect(full, device)
    changed = paramiko.ECDSAKey.from_private_key_file(ep["host_key"] + "_changed")
    ssh_connect(full, device, key=changed).close()  # the same other key every time
    ssh_connect(full, device, key=changed).close()
    full.clear_condition(device, "host_key_changed")
    ssh_connect(full, device).close()
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_connect(full, device, key=changed)


async def test_host_key_changed_seen_by_the_agents_ssh_collector(
    full: SimulatedStation, tmp_path: Path
) -> None:
    """The agent's SshCollector pins the key on first contact and refuses the changed one."""
    from checks.profile_rules import builtin_profiles
    from collectors.errors import HostKeyMismatch
    from collectors.ssh import SshCollector
    from collectors.targets import SshTarget

    ep = full.manifest["devices"]["pbx1"]
    profile = builtin_profiles()[ep["profile"]]
    assert profile.ssh is not None
    target = SshTarget.model_validate(
        {k: ep[k] for k in ("host", "port", "username", "password")} | {"timeout_s": 5}
    )
    collector = SshCollector("pbx1", target, profile.ssh, tmp_path / "known_hosts")
    try:
        assert await collector.collect()  # trust on first use: the key is recorded
        full.set_condition("pbx1", "host_key_changed")
        with pytest.raises(HostKeyMismatch):
            await collector.collect()
        full.clear_condition("pbx1", "host_key_changed")
        assert await collector.collect()
    finally:
        await collector.close()


def test_host_key_changed_key_persists_across_restart(tmp_path: Path) -> None:
    """The changed key is written to the workdir once and reused by the next run."""
    config = load_station_config()
    keys = []
    for _ in range(2):
        with SimulatedStation(config, tmp_path, ephemeral_ports=True) as sim:
            sim.set_condition("pbx1", "host_key_changed")
            ep = sim.manifest["devices"]["pbx1"]
            transport = paramiko.Transport(("127.0.0.1", ep["port"]))
            try:
                transport.start_client(timeout=5)
                keys.append(transport.get_remote_server_key().asbytes())
            finally:
                transport.close()
    assert keys[0] == keys[1]
    normal = paramiko.ECDSAKey.from_private_key_file(str(tmp_path / "pbx1_host_key"))
    assert normal.asbytes() != keys[0]


@pytest.mark.parametrize("device", ["pbx1", "vc1-cli"])
def test_ssh_disconnect_mid_command(full: SimulatedStation, device: str) -> None:
    """exec and shell: part of the output arrives, then the TCP connection is gone."""
    client = ssh_connect(full, device)
    command = "show running-config"
    whole = run_exec(client, command)
    full.set_condition(device, "disconnect")
    files: tuple[object, ...] = ()
    try:
        files = client.exec_command(command, timeout=5)
        partial = files[1].read().decode().replace("\r\n", "\n")  # type: ignore[attr-defined]
        assert 0 < len(partial) < len(whole) and whole.startswith(partial)
        transport = client.get_transport()
        wait_for(lambda: transport is None or not transport.is_active(), 5, "the drop")
    finally:
        for f in files:  # closed here, not by the garbage collector on a dead channel
            with contextlib.suppress(Exception):
                f.close()  # type: ignore[attr-defined]
        client.close()
    client = ssh_connect(full, device)  # login itself still works
    try:
        channel = client.invoke_shell()
        read_until_prompt(channel)
        channel.sendall(f"{command}\r\n".encode())
        text = ""
        channel.settimeout(5)
        while chunk := channel.recv(65536):
            text += chunk.decode(errors="replace")
        assert text and not text.rstrip().endswith(">")  # the prompt never came back
    finally:
        client.close()
    full.clear_condition(device, "disconnect")
    client = ssh_connect(full, device)
    try:
        assert run_exec(client, command) == whole
    finally:
        client.close()


def test_ssh_hang_and_garbage_on_codec(full: SimulatedStation) -> None:
    """hang: no SSH banner; garbage: junk and no prompt."""
    ep = full.manifest["devices"]["vc1-cli"]
    full.set_condition("vc1-cli", "hang")
    with socket.create_connection(("127.0.0.1", ep["port"]), timeout=5) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
    full.reset("vc1-cli")
    full.set_condition("vc1-cli", "garbage")
    client = ssh_connect(full, "vc1-cli")
    try:
        _, stdout, _ = client.exec_command("show log errors", timeout=5)
        junk = stdout.read()
        assert junk and b"ERROR" not in junk and b"\n" not in junk
    finally:
        client.close()


# --- serial unplug and disconnect -------------------------------------------------------------


def open_tty(station: SimulatedStation) -> serial.Serial:
    """pyserial on tx2's symlink."""
    return serial.Serial(station.manifest["devices"]["tx2"]["port"], 9600, timeout=1)


def test_serial_unplug_and_replug(full: SimulatedStation) -> None:
    """unplugged: link gone, an open port fails; cleared: link points at a new pty that works."""
    link = Path(full.manifest["devices"]["tx2"]["port"])
    assert link.is_symlink()
    port = open_tty(full)
    try:
        port.write(b"STATUS?\r\n")
        assert port.read_until(b"\r\n").startswith(b"STATUS ")
        full.set_condition("tx2", "unplugged")
        assert not link.exists() and not link.is_symlink()
        with pytest.raises(serial.SerialException):
            port.write(b"STATUS?\r\n")
            port.read_until(b"\r\n")
            port.read_until(b"\r\n")  # EOF/EIO surfaces on the next read at the latest
        with pytest.raises(serial.SerialException):
            open_tty(full)
    finally:
        port.close()
    full.clear_condition("tx2", "unplugged")
    assert link.is_symlink()  # a new pty (the kernel may reuse the number)
    port = open_tty(full)
    try:
        port.write(b"STATUS?\r\n")
        assert port.read_until(b"\r\n").startswith(b"STATUS FWD=")
    finally:
        port.close()


def test_serial_disconnect_mid_line(full: SimulatedStation) -> None:
    """disconnect: half a status line, then the line drops; reopening the link works."""
    link = Path(full.manifest["devices"]["tx2"]["port"])
    full.set_condition("tx2", "disconnect")
    port = open_tty(full)
    received = b""
    try:
        port.write(b"STATUS?\r\n")
        with pytest.raises(serial.SerialException):
            for _ in range(5):
                received += port.read(200)
    finally:
        port.close()
    assert not received.endswith(b"\r\n")
    assert received == b"" or received.startswith(b"STATUS ")
    assert link.is_symlink()  # the adapter came straight back
    full.clear_condition("tx2", "disconnect")
    wait_for(link.exists, 5, "the new pty behind the link")
    port = open_tty(full)
    try:
        port.write(b"STATUS?\r\n")
        assert port.read_until(b"\r\n").endswith(b"SET=1000\r\n")
    finally:
        port.close()


# --- traps ------------------------------------------------------------------------------------


def newest(trapd: TrapReceiver, before: int, count: int = 1) -> list[str]:
    """The notifications received after the first `before` ones."""
    return trapd.wait(before + count)[before:]


def test_trap_presets_and_custom_varbinds(full: SimulatedStation, trapd: TrapReceiver) -> None:
    """A preset trap and a custom one arrive at snmptrapd from the device's own port."""
    before = len(trapd.traps())
    port = full.manifest["devices"]["sw1"]["port"]
    result = full.send_trap("sw1", preset="linkDown", target=trapd.target)
    assert result["sent"] == 1 and result["inform"] is False
    (line,) = newest(trapd, before)
    assert f"[127.0.0.1]:{port}->" in line and "TRAP2, SNMP v2c, community public" in line
    assert f".1.3.6.1.6.3.1.1.4.1.0 = OID: .{LINK_DOWN}" in line
    assert ".1.3.6.1.2.1.2.2.1.8.10002 = INTEGER: 2" in line
    assert line.split("|")[2].startswith(".1.3.6.1.2.1.1.3.0 = Timeticks:")
    before += 1
    full.send_trap(
        "tx3",
        trap_oid="1.3.6.1.4.1.2566.127.1.2.167.0.1",
        varbinds=[
            [f"{RS_TX}.5.0", "s", "25.0"],
            ["1.3.6.1.4.1.2566.127.1.2.167.9.1.0", 66, 7],
            ["1.3.6.1.4.1.2566.127.1.2.167.9.2.0", "x", "00ff"],
        ],
        target=trapd.target,
        community="station-x",
    )
    (line,) = newest(trapd, before)
    assert "community station-x" in line
    assert f'.{RS_TX}.5.0 = STRING: "25.0"' in line
    assert "Gauge32: 7" in line and "Hex-STRING: 00 FF" in line


def test_inform_acknowledged_and_unacknowledged(
    full: SimulatedStation, trapd: TrapReceiver
) -> None:
    """An inform to snmptrapd is acked at once; to a silent port it is retried, then given up."""
    before = len(trapd.traps())
    result = full.send_trap("ups1", preset="upsTrapOnBattery", target=trapd.target, inform=True)
    assert result["acked"] is True and result["sent"] == 1
    (line,) = newest(trapd, before)
    assert "INFORM, SNMP v2c" in line and ".1.3.6.1.2.1.33.2.1" in line
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives, never answers
    try:
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = full.send_trap("ups1", preset="upsTrapOnBattery", target=target, inform=True)
        elapsed = time.monotonic() - started
        settings = full.config.traps
        assert result["acked"] is False and result["sent"] == settings.inform_retries + 1
        assert elapsed >= settings.inform_timeout_s * (settings.inform_retries + 1) * 0.9
        silent.settimeout(1)
        datagrams = [silent.recv(4096) for _ in range(result["sent"])]
        assert len(set(datagrams)) == 1  # the same request (same request-id) each time
    finally:
        silent.close()


async def test_traps_and_informs_decoded_by_a_pysnmp_notification_receiver(
    full: SimulatedStation,
) -> None:
    """pysnmp's NotificationReceiver (the agent's library) decodes our traps and acks informs."""
    from pysnmp.carrier.asyncio.dgram import udp
    from pysnmp.entity import config, engine
    from pysnmp.entity.rfc3413 import ntfrcv

    loop = asyncio.get_running_loop()
    port = free_port(socket.SOCK_DGRAM)
    snmp_engine = engine.SnmpEngine()
    received: list[dict[str, str]] = []
    arrived = asyncio.Event()

    def on_notification(*args: Any) -> None:
        varbinds = args[4]
        received.append({str(name): value.prettyPrint() for name, value in varbinds})
        loop.call_soon(arrived.set)

    try:
        transport = udp.UdpTransport().open_server_mode(("127.0.0.1", port))
        config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport)
        opening = getattr(transport, "_lport", None)  # pysnmp opens the socket in a task
        if opening is not None:
            await asyncio.wait_for(asyncio.shield(opening), 5)
        config.add_v1_system(snmp_engine, "stationwatch-test", "public")
        ntfrcv.NotificationReceiver(snmp_engine, on_notification)
        target = f"127.0.0.1:{port}"
        for inform in (False, True):
            arrived.clear()
            result = await asyncio.to_thread(
                full.send_trap, "ups1", preset="upsTrapOnBattery", target=target, inform=inform
            )
            await asyncio.wait_for(arrived.wait(), 5)
            if inform:
                assert result["acked"] is True and result["sent"] == 1
        assert len(received) == 2
        for varbinds in received:
            assert varbinds["1.3.6.1.6.3.1.1.4.1.0"] == "1.3.6.1.2.1.33.2.1"
            assert varbinds["1.3.6.1.2.1.33.1.2.3.0"] == "25"
            assert int(varbinds["1.3.6.1.2.1.1.3.0"]) >= 0
    finally:
        snmp_engine.close_dispatcher()


def test_condition_traps(full: SimulatedStation, trapd: TrapReceiver) -> None:
    """Conditions with trap/clear_trap send them to the station's trap target."""
    before = len(trapd.traps())
    full.set_condition("sw2", "port_down")
    full.clear_condition("sw2", "port_down")
    down, up = newest(trapd, before, 2)
    assert f"OID: .{LINK_DOWN}" in down and f"OID: .{LINK_UP}" in up
    full.set_condition("sw2", "fan_alarm")
    (fan,) = newest(trapd, before + 2)
    assert ".1.3.6.1.4.1.2011.5.25.219.2.6.1" in fan and 'STRING: "FAN Card 0/3"' in fan
    full.set_condition("ups1", "battery_low")
    (low,) = newest(trapd, before + 3)
    assert "OID: .1.3.6.1.2.1.33.1.6.3.3" in low


def test_trap_storm(full: SimulatedStation, trapd: TrapReceiver) -> None:
    """A storm of N traps at a rate: all sent, paced, and snmptrapd receives them."""
    before = len(trapd.traps())
    result = full.trap_storm("sw1", preset="linkDown", target=trapd.target, count=200, rate=400)
    assert result["sent"] == 200
    assert 0.4 <= result["seconds"] < 5
    lines = newest(trapd, before, 200)
    assert all(f"OID: .{LINK_DOWN}" in line for line in lines)


def test_trap_api_and_errors(full: SimulatedStation, trapd: TrapReceiver) -> None:
    """POST /devices/{id}/traps and /trap_storm; bad requests are 400/404 with a message."""
    before = len(trapd.traps())
    body = {"preset": "linkUp", "target": trapd.target}
    status, result = api(full, "POST", "/devices/sw1/traps", body)
    assert status == 200 and result["sent"] == 1
    status, result = api(
        full, "POST", "/devices/sw1/trap_storm", {**body, "count": 20, "rate": 1000}
    )
    assert status == 200 and result["sent"] == 20
    newest(trapd, before, 21)
    bad = [
        ("/devices/sw1/traps", {"preset": "nope", "target": trapd.target}, 400, "no trap preset"),
        ("/devices/sw1/traps", {"preset": "linkUp", "target": "10.0.0.1:162"}, 400, "127.0.0.1"),
        (
            "/devices/sw1/traps",
            {
                "trap_oid": "1.3.6.1.4.1.9",
                "target": trapd.target,
                "varbinds": [["1.3.6.1.2.1.1.5.0", "q", 1]],
            },
            400,
            "type",
        ),
        ("/devices/pbx1/traps", {"preset": "linkUp", "target": trapd.target}, 400, "no traps"),
        ("/devices/sw1/traps", {"preset": "linkUp", "inform": "yes"}, 400, "inform"),
        ("/devices/sw1/traps", {"oops": 1}, 400, "unknown fields"),
        ("/devices/sw1/trap_storm", {**body, "count": 0, "rate": 10}, 400, "count"),
        ("/devices/sw1/trap_storm", {**body, "count": 5}, 400, "rate"),
        ("/devices/nope/traps", body, 404, "no device"),
    ]
    for path, payload, code, message in bad:
        status, result = api(full, "POST", path, payload)
        assert status == code, (path, payload, result)
        assert message in result["error"], (path, result)


def test_cli_trap_and_storm(
    full: SimulatedStation, trapd: TrapReceiver, clean_env: dict[str, str]
) -> None:
    """`stationwatch sim trap` / `storm` through the control API."""
    url = full.control_url
    before = len(trapd.traps())
    result = cli(
        "trap",
        "ups1",
        "upsTrapOnBattery",
        "--target",
        trapd.target,
        "--inform",
        "--control-url",
        url,
        env=clean_env,
    )
    assert result.returncode == 0 and "acknowledged" in result.stdout, result.stderr
    result = cli(
        "trap",
        "sw1",
        "--oid",
        "1.3.6.1.4.1.9.0.1",
        "--varbind",
        "1.3.6.1.2.1.1.5.0",
        "s",
        "sw1",
        "--target",
        trapd.target,
        "--control-url",
        url,
        env=clean_env,
    )
    assert result.returncode == 0, result.stderr
    result = cli(
        "storm",
        "sw1",
        "linkDown",
        "--count",
        "30",
        "--rate",
        "300",
        "--target",
        trapd.target,
        "--control-url",
        url,
        env=clean_env,
    )
    assert result.returncode == 0 and "30 traps" in result.stdout, result.stderr
    lines = newest(trapd, before, 32)
    assert 'STRING: "sw1"' in lines[1]
    result = cli("trap", "sw1", "--control-url", url, env=clean_env)
    assert result.returncode == 1 and "preset or --oid" in result.stderr


# --- many devices -----------------------------------------------------------------------------


def test_replicas_fifty_snmp_devices(tmp_path: Path, snmp_env: dict[str, str]) -> None:
    """50 copies of tx1 on 50 ports, each with its own conditions, started quickly."""
    config = load_station_config().with_replicas({"tx1": 50, "tx2": 3}, ephemeral_ports=True)
    started = time.monotonic()
    with SimulatedStation(config, tmp_path, ephemeral_ports=True) as sim:
        startup = time.monotonic() - started
        ids = [d for d in sim.manifest["devices"] if d.startswith("tx1-")]
        assert ids == [f"tx1-{n:02d}" for n in range(1, 51)]
        ports = {sim.manifest["devices"][d]["port"] for d in ids}
        assert len(ports) == 50
        links = [sim.manifest["devices"][f"tx2-0{n}"]["port"] for n in (1, 2, 3)]
        assert [Path(p).name for p in links] == ["tx2-01.tty", "tx2-02.tty", "tx2-03.tty"]
        sim.set_condition("tx1-07", "hang")
        sim.set_condition("tx1-08", "off_air")
        snmp = Snmp(sim, snmp_env)
        op_mode = "1.3.6.1.4.1.6404.3.1.2.7.1.4.5.0"
        for device in ("tx1-01", "tx1-08", "tx1-50"):
            expected = "2" if device == "tx1-08" else "1"
            assert snmp.get(device, op_mode) == {op_mode: expected}
        result = snmp.run("snmpget", "tx1-07", op_mode, timeout=0.3)
        assert result.returncode != 0
        _, body = api(sim, "GET", "/healthz")
        assert body["devices"] == 50 + 1 + 1 + 3
        status, body = api(sim, "POST", "/devices/sw1/traps", {"trap_oid": LINK_DOWN})
        assert status == 400 and "no trap target" in body["error"]  # the demo sets none
    assert startup < 5.0, startup


def test_replicas_in_station_file(tmp_path: Path) -> None:
    """`replicas: N` with a fixed port takes N consecutive ports; clashes are reported."""
    data = yaml.safe_load((REPO / "simulators" / "station.yaml").read_text())
    for device in data["devices"]:
        if "data" in device:
            device["data"] = str(REPO / "simulators" / device["data"])
    data["devices"][0]["replicas"] = 3  # tx1 on 16161..16163
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StationConfigError, match="UDP ports used twice: \\[16162\\]"):
        load_station_config(path)
    data["devices"][0]["port"] = 17000
    path.write_text(yaml.safe_dump(data))
    config = load_station_config(path)
    ports = {d.id: getattr(d, "port", None) for d in config.expanded()}
    assert ports["tx1-01"] == 17000 and ports["tx1-03"] == 17002 and "tx1" not in ports
    data["devices"][0]["replicas"] = 1001
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(StationConfigError, match="replicas"):
        load_station_config(path)


FULL = REPO / "simulators" / "stations" / "full.yaml"


def _device(data: dict[str, Any], device_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in data["devices"] if d["id"] == device_id)
    return found


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda d: _device(d, "sw2")["conditions"]["port_down"].update(trap="nope"),
            "devices[5](sw2): Value error, condition 'port_down' names unknown trap preset 'nope'",
        ),
        (
            lambda d: _device(d, "ups1")["traps"]["upsTrapOnBattery"]["varbinds"].append(
                ["1.3.6.1.2.1.1.5.0", "q", "x"]
            ),
            "unknown varbind type 'q'",
        ),
        (
            lambda d: _device(d, "ups1")["traps"]["upsTrapOnBattery"]["varbinds"].append(
                ["1.3.6.1.2.1.1.5.0", "i", "many"]
            ),
            "invalid literal for int()",
        ),
        (lambda d: d["traps"].update(target="10.1.1.1:162"), "traps.target"),
        (
            lambda d: _device(d, "vc1-cli")["conditions"]["mcu_alarm"].update(
                trunks={"TRUNK-1": "DOWN"}
            ),
            "a codec CLI has no trunks",
        ),
        (
            lambda d: _device(d, "pbx1")["conditions"]["trunk_down"].update(ports_in_use=3),
            "a PBX CLI has no logs or conference ports",
        ),
        (
            lambda d: _device(d, "vc1-cli")["cli"].update(kind="fax"),
            "does not match any of the expected tags",
        ),
        (lambda d: _device(d, "tx2").update(replicas=0), "replicas"),
        (
            lambda d: _device(d, "ups1")["conditions"].update(
                unplugged={"set": {"1.3.6.1.2.1.33.1.2.1.0": 3}}
            ),
            "condition 'unplugged' is built in",
        ),
    ],
)
def test_bad_full_station_files(tmp_path: Path, breakage: Any, message: str) -> None:
    """Mistakes in the new parts of a station file name the file, device and field."""
    data: dict[str, Any] = yaml.safe_load(FULL.read_text())
    for device in data["devices"]:
        if "data" in device:
            device["data"] = str((FULL.parent / device["data"]).resolve())
    breakage(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(StationConfigError) as err:
        load_station_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_cli_run_full_station(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """`stationwatch sim run --config full` serves the full station."""
    workdir = tmp_path / "sim"
    manifest_path = workdir / "manifest.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulators",
            "run",
            "--config",
            "full",
            "--workdir",
            str(workdir),
            "--ephemeral-ports",
        ],
        cwd=REPO,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: manifest_path.exists() or proc.poll() is not None, 20, "the manifest")
        assert proc.poll() is None, proc.communicate()
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        assert set(manifest["devices"]) >= {"ups1", "env1", "vc1", "vc1-cli", "sw2", "tx3"}
        assert manifest["devices"]["ups1"]["traps"] == sorted(
            ["upsTrapOnBattery", "upsAlarmLowBattery", "upsAlarmLowBatteryRemoved"]
        )
        result = cli(
            "set", "tx2", "unplugged", "--control-url", manifest["control_url"], env=clean_env
        )
        assert result.returncode == 0, result.stderr
        assert not (workdir / "tx2.tty").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
