"""The simulated station against real peers: net-snmp tools, a paramiko client, pyserial,
HTTP, and the CLI as a subprocess. Expected values come from the captures and the device
profiles in collectors/profiles, read as plain YAML.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
import serial
import yaml

from collectors.profiles import profile_data
from simulators.station import SimulatedStation, load_station_config
from tests.peers import require_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PROFILES = REPO / "collectors" / "profiles"
DATA = REPO / "simulators" / "data"
PROMPT = re.compile(r"[\w.\-]+[>#] ?$")  # what the agent waits for (generic_pbx_ssh)

IF_TABLE = "1.3.6.1.2.1.2.2"
IF_ADMIN = "1.3.6.1.2.1.2.2.1.7"
IF_OPER = "1.3.6.1.2.1.2.2.1.8"
IF_IN_ERRORS = "1.3.6.1.2.1.2.2.1.14"
TX1 = "1.3.6.1.4.1.6404.3.1.2"
FWD, REF, VSWR = f"{TX1}.7.1.3.1.0", f"{TX1}.7.1.3.2.0", f"{TX1}.7.1.3.3.0"
OP_MODE, SETPOINT, WARN = f"{TX1}.7.1.4.5.0", f"{TX1}.7.1.4.6.0", f"{TX1}.7.1.2.3.0"
TEMP_ALARM, TEMP_INT = f"{TX1}.11.1.3.2.10.0", f"{TX1}.11.1.3.1.10.0"
FAN_STATE, PSU_STATE = "1.3.6.1.4.1.9.9.13.1.4.1.3.1004", "1.3.6.1.4.1.9.9.13.1.5.1.3.1003"
NUMERIC_TAGS = {"2", "65", "66", "67", "70"}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def profile(name: str) -> dict[str, Any]:
    """A device profile as plain data, the shared blocks it extends merged in (not validated)."""
    return profile_data(PROFILES / f"{name}.yaml")


def capture(name: str) -> dict[str, tuple[str, str]]:
    """OID -> (type tag, value text) straight from a snmprec file."""
    out: dict[str, tuple[str, str]] = {}
    for line in (DATA / name).read_text().splitlines():
        oid, tag, value = line.split("|", 2)
        out[oid] = (tag, value)
    return out


def oid_key(oid: str) -> tuple[int, ...]:
    """Numeric sort key of a dotted OID."""
    return tuple(int(p) for p in oid.split("."))


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatedStation]:
    """The bundled demo station on ephemeral ports, shared by the module."""
    sim = SimulatedStation(
        load_station_config(), tmp_path_factory.mktemp("sim"), ephemeral_ports=True
    )
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def _normal(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends with all devices normal."""
    yield
    if "station" in request.fixturenames:
        request.getfixturevalue("station").reset()


@pytest.fixture(scope="module")
def snmp_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for net-snmp tools: numeric output, no MIB loading noise."""
    conf = tmp_path_factory.mktemp("snmpconf")
    (conf / "snmp.conf").write_text("mibs :\n")
    return {**os.environ, "SNMPCONFPATH": str(conf)}


class Snmp:
    """Runs net-snmp command-line tools against a simulated device."""

    def __init__(self, station: SimulatedStation, env: dict[str, str]) -> None:
        self.station = station
        self.env = env

    def run(
        self,
        tool: str,
        device: str,
        *args: str,
        community: str | None = None,
        version: str = "2c",
        timeout: float = 1.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run one tool; -On numeric OIDs, -Ot raw timeticks, no retries."""
        ep = self.station.manifest["devices"][device]
        argv = [
            require_binary(tool, "/usr/bin"),
            f"-v{version}",
            "-c",
            community or ep["community"],
            "-On",
            "-Ot",
            "-t",
            str(timeout),
            "-r",
            "0",
            f"127.0.0.1:{ep['port']}",
            *args,
        ]
        return subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=30, check=False
        )

    def values(self, tool: str, device: str, *args: str, **kw: Any) -> list[tuple[str, str]]:
        """(oid, value) pairs printed by a tool that must succeed; types and quotes dropped."""
        result = self.run(tool, device, *args, **kw)
        assert result.returncode == 0, result.stderr
        pairs = []
        for line in result.stdout.splitlines():
            if not line.startswith(".") or "No more variables left in this MIB View" in line:
                continue  # a multi-line string's continuation, or a walk's end of the MIB
            oid, _, rest = line.partition(" = ")
            value = rest.split(": ", 1)[1] if ": " in rest else rest
            pairs.append((oid.lstrip("."), value.strip('"')))
        return pairs

    def get(self, device: str, *oids: str) -> dict[str, str]:
        """snmpget several OIDs at once."""
        return dict(self.values("snmpget", device, *oids))


@pytest.fixture
def snmp(station: SimulatedStation, snmp_env: dict[str, str]) -> Snmp:
    """net-snmp tools bound to the running station."""
    return Snmp(station, snmp_env)


def api(station: SimulatedStation, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One control API call: (status, decoded JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(station.control_url + path, data=data, method=method)  # noqa: S310
    req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


# --- SNMP ---------------------------------------------------------------------------------------


def test_ecreso_profile_scalars_match_capture(snmp: Snmp) -> None:
    """Every scalar the ecreso_fm profile reads is served with the captured value."""
    data = capture("ecresofm-os_e03.snmprec")
    oids = [s["oid"] for s in profile("ecreso_fm")["snmp"]["scalars"]]
    got = snmp.get("tx1", *oids)
    for oid in oids:
        assert got[oid] == data[oid][1], oid
    assert got["1.3.6.1.2.1.1.1.0"] == "Ecreso Sornfelli TX 300W"
    assert got[FWD] == "301" and got[SETPOINT] == "300" and got[OP_MODE] == "1"


def test_switch_profile_tables_and_admin_overlay(snmp: Snmp) -> None:
    """Every column of the cisco_ios_switch profile has rows; ifAdminStatus follows oper."""
    for table in profile("cisco_ios_switch")["snmp"]["tables"]:
        names = snmp.values("snmpbulkwalk", "sw1", table["component_oid"])
        assert names, table["name"]
        indexes = {oid[len(table["component_oid"]) + 1 :] for oid, _ in names}
        for column in table["columns"]:
            rows = dict(snmp.values("snmpbulkwalk", "sw1", column["oid"]))
            got = {oid[len(column["oid"]) + 1 :] for oid in rows}
            assert got == indexes, column["metric"]
    oper = dict(snmp.values("snmpbulkwalk", "sw1", IF_OPER))
    admin = dict(snmp.values("snmpbulkwalk", "sw1", IF_ADMIN))
    assert len(admin) == len(oper) == 58
    for oid, state in oper.items():
        assert admin[IF_ADMIN + oid[len(IF_OPER) :]] == ("1" if state == "1" else "2")


def test_getbulk_walk_of_if_table_returns_all_rows_in_order(snmp: Snmp) -> None:
    """snmpbulkwalk of ifTable: captured cells plus the overlays (admin, errors), in order."""
    data = capture("ios_c3560.snmprec")
    expected = [o for o in data if o.startswith(IF_TABLE + ".")]
    opers = [o[len(IF_OPER) :] for o in expected if o.startswith(IF_OPER + ".")]
    expected += [IF_ADMIN + index for index in opers] + [IF_IN_ERRORS + index for index in opers]
    expected.sort(key=oid_key)
    for repetitions in ("-Cr1", "-Cr7", "-Cr60"):
        pairs = snmp.values("snmpbulkwalk", "sw1", repetitions, IF_TABLE)
        assert [oid for oid, _ in pairs] == expected
    values = dict(pairs)
    for oid in expected:
        if oid in data and data[oid][0] in NUMERIC_TAGS:
            assert values[oid] == data[oid][1], oid
    assert {values[IF_IN_ERRORS + index] for index in opers} == {"0"}


def test_getnext_walk_v1_and_v2c(snmp: Snmp) -> None:
    """snmpwalk (GETNEXT) walks the whole capture; SNMPv1 never sees Counter64 values."""
    data = capture("ecresofm-os_e03.snmprec")
    v2 = snmp.values("snmpwalk", "tx1", "1.3")
    assert [o for o, _ in v2 if o in data] == sorted(data, key=oid_key)
    v1 = snmp.values("snmpwalk", "tx1", "1.3", version="1")
    assert [o for o, _ in v1] == sorted((o for o, (t, _) in data.items() if t != "70"), key=oid_key)


def test_getbulk_non_repeaters_max_repetitions_and_end_of_mib(snmp: Snmp) -> None:
    """GETBULK honours non-repeaters and max-repetitions, and reports endOfMibView."""
    result = snmp.run("snmpbulkget", "sw1", "-Cn1", "-Cr3", "1.3.6.1.2.1.1.2", IF_OPER)
    lines = result.stdout.splitlines()
    assert [line.split(" = ")[0] for line in lines] == [
        ".1.3.6.1.2.1.1.2.0",
        f".{IF_OPER}.1",
        f".{IF_OPER}.2",
        f".{IF_OPER}.3",
    ]
    last = max(capture("ios_c3560.snmprec"), key=oid_key)
    result = snmp.run("snmpbulkget", "sw1", "-Cn0", "-Cr2", last)
    assert "No more variables left in this MIB View" in result.stdout


def test_missing_oids_v2c_exceptions_and_v1_no_such_name(snmp: Snmp) -> None:
    """noSuchObject / noSuchInstance in v2c, noSuchName in v1."""
    result = snmp.run("snmpget", "tx1", "1.3.6.1.2.1.1.99.0", "1.3.6.1.2.1.1.1.7")
    assert "No Such Object" in result.stdout and "No Such Instance" in result.stdout
    result = snmp.run("snmpget", "tx1", "1.3.6.1.2.1.1.99.0", version="1")
    assert "noSuchName" in result.stdout + result.stderr


def test_wrong_community_gets_no_answer(snmp: Snmp) -> None:
    """A wrong community is ignored, like on a real agent: the manager times out."""
    result = snmp.run("snmpget", "tx1", "1.3.6.1.2.1.1.1.0", community="sw1-public", timeout=0.3)
    assert result.returncode != 0 and "Timeout" in result.stdout + result.stderr


def test_transmitter_conditions(station: SimulatedStation, snmp: Snmp) -> None:
    """Each tx1 condition changes the OIDs its profile check reads; reset restores them."""
    oids = [FWD, REF, VSWR, OP_MODE, SETPOINT, WARN, TEMP_ALARM, TEMP_INT]
    normal = snmp.get("tx1", *oids)
    cases = {
        "off_air": {OP_MODE: "2", FWD: "0", REF: "0"},
        "power_down": {FWD: "150", SETPOINT: "300"},
        "reflected_high": {REF: "300", VSWR: "19"},
        "fan_alarm": {WARN: "1"},
        "temp_high": {TEMP_ALARM: "1", TEMP_INT: "70"},
    }
    for condition, expected in cases.items():
        station.set_condition("tx1", condition)
        got = snmp.get("tx1", *oids)
        assert {k: got[k] for k in expected} == expected, condition
        unchanged = set(oids) - set(expected)
        assert {k: got[k] for k in unchanged} == {k: normal[k] for k in unchanged}, condition
        station.clear_condition("tx1", condition)
    station.set_condition("tx1", "power_down")
    station.set_condition("tx1", "temp_high")  # several at once
    got = snmp.get("tx1", *oids)
    assert (got[FWD], got[TEMP_INT]) == ("150", "70")
    station.reset("tx1")
    assert snmp.get("tx1", *oids) == normal


def test_switch_conditions(station: SimulatedStation, snmp: Snmp) -> None:
    """port_down (default port and a named one), fan_alarm and psu_fault on sw1."""
    fa2 = (f"{IF_OPER}.10002", f"{IF_ADMIN}.10002")
    assert snmp.get("sw1", *fa2) == {fa2[0]: "1", fa2[1]: "1"}
    station.set_condition("sw1", "port_down")
    assert snmp.get("sw1", *fa2) == {fa2[0]: "2", fa2[1]: "1"}  # oper down, admin up
    station.set_condition("sw1", "port_down", "Fa0/48")
    got = snmp.get("sw1", f"{IF_OPER}.10048", f"{IF_OPER}.10002", f"{IF_ADMIN}.10048")
    assert list(got.values()) == ["2", "1", "1"]
    station.set_condition("sw1", "fan_alarm")
    station.set_condition("sw1", "psu_fault")
    assert snmp.get("sw1", FAN_STATE, PSU_STATE) == {FAN_STATE: "3", PSU_STATE: "3"}
    station.clear_condition("sw1", "fan_alarm")
    assert snmp.get("sw1", FAN_STATE, PSU_STATE) == {FAN_STATE: "1", PSU_STATE: "3"}


def test_snmp_hang_and_garbage(station: SimulatedStation, snmp: Snmp) -> None:
    """hang: no reply at all; garbage: a reply that is not SNMP (the manager times out)."""
    station.set_condition("tx1", "hang")
    result = snmp.run("snmpget", "tx1", "1.3.6.1.2.1.1.1.0", timeout=0.3)
    assert result.returncode != 0 and "Timeout" in result.stdout + result.stderr
    station.set_condition("tx1", "garbage")
    station.clear_condition("tx1", "hang")
    result = snmp.run("snmpget", "tx1", "1.3.6.1.2.1.1.1.0", timeout=0.3)
    assert result.returncode != 0
    port = station.manifest["devices"]["tx1"]["port"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(b"anything", ("127.0.0.1", port))
        assert len(sock.recv(4096)) >= 8  # bytes came back, but no SNMP message
    station.clear_condition("tx1", "garbage")
    assert snmp.get("tx1", "1.3.6.1.2.1.1.1.0")


def test_snmp_responder_speed(snmp: Snmp) -> None:
    """A GETBULK walk of the whole switch runs well above 3,000 varbinds/s."""
    start = time.perf_counter()
    pairs = snmp.values("snmpbulkwalk", "sw1", "-Cr25", "1")
    rate = len(pairs) / (time.perf_counter() - start)
    print(f"snmpbulkwalk sw1: {len(pairs)} varbinds, {rate:.0f} varbinds/s (incl. tool start)")
    assert len(pairs) > 1500
    assert rate > 3000


async def test_pysnmp_client_as_the_agent_uses_it(station: SimulatedStation) -> None:
    """pysnmp (the agent's library): GET, and GETBULK over several columns at once."""
    from pysnmp.hlapi.v3arch import asyncio as hl

    ep = station.manifest["devices"]["sw1"]
    engine = hl.SnmpEngine()
    try:
        target = await hl.UdpTransportTarget.create(("127.0.0.1", ep["port"]), timeout=2, retries=0)
        community = hl.CommunityData(ep["community"])
        err, status, _, binds = await hl.get_cmd(
            engine,
            community,
            target,
            hl.ContextData(),
            hl.ObjectType(hl.ObjectIdentity("1.3.6.1.2.1.1.2.0")),
            lookupMib=False,
        )
        assert not err and not status
        assert str(binds[0][1]) == "1.3.6.1.4.1.9.1.634"
        columns = ["1.3.6.1.2.1.31.1.1.1.1", IF_ADMIN, IF_OPER]
        err, status, _, binds = await hl.bulk_cmd(
            engine,
            community,
            target,
            hl.ContextData(),
            0,
            5,
            *(hl.ObjectType(hl.ObjectIdentity(c)) for c in columns),
            lookupMib=False,
        )
        assert not err and not status and len(binds) == 15
        assert [str(binds[i][0]) for i in range(3)] == [f"{c}.1" for c in columns]
        assert [str(v) for _, v in binds[:3]] == ["Vl1", "1", "1"]
    finally:
        engine.close_dispatcher()


# --- SSH --------------------------------------------------------------------------------------


def ssh_client(station: SimulatedStation, *, password: str | None = None) -> paramiko.SSHClient:
    """A logged-in paramiko client that pins the host key from the station's workdir."""
    ep = station.manifest["devices"]["pbx1"]
    key = paramiko.ECDSAKey.from_private_key_file(str(station.workdir / "pbx1_host_key"))
    client = paramiko.SSHClient()
    client.get_host_keys().add(f"[{ep['host']}]:{ep['port']}", key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        ep["host"],
        port=ep["port"],
        username=ep["username"],
        password=password or ep["password"],
        look_for_keys=False,
        allow_agent=False,
        timeout=5,
        banner_timeout=5,
        auth_timeout=5,
    )
    return client


def read_until_prompt(channel: paramiko.Channel, timeout: float = 5.0) -> str:
    """Everything received up to and including the prompt."""
    text = ""
    deadline = time.monotonic() + timeout
    channel.settimeout(0.2)
    while not PROMPT.search(text):
        if time.monotonic() > deadline:
            raise AssertionError(f"no prompt within {timeout} s; got {text!r}")
        try:
            chunk = channel.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            raise AssertionError(f"channel closed before the prompt; got {text!r}")
        text += chunk.decode("utf-8", errors="replace")
    return text


class Shell:
    """An interactive CLI session, as the agent drives it."""

    def __init__(self, station: SimulatedStation) -> None:
        self.client = ssh_client(station)
        self.channel = self.client.invoke_shell()
        self.banner = read_until_prompt(self.channel)

    def run(self, command: str) -> str:
        """Send a command; its output without the echoed command line and the prompt."""
        self.channel.sendall(f"{command}\r\n".encode())
        text = read_until_prompt(self.channel).replace("\r\n", "\n")
        lines = text.split("\n")
        assert lines[0] == command  # echoed, as a terminal does
        return "\n".join(lines[1:-1])

    def close(self) -> None:
        """Close the client."""
        self.client.close()


@pytest.fixture
def shell(station: SimulatedStation) -> Iterator[Shell]:
    """An interactive session on pbx1."""
    sh = Shell(station)
    yield sh
    sh.close()


def rows(command: str, output: str) -> dict[str, str]:
    """component -> value, parsed with the generic_pbx_ssh profile's row pattern."""
    spec = next(c for c in profile("generic_pbx_ssh")["ssh"]["commands"] if c["command"] == command)
    pattern = re.compile(spec["rows"]["pattern"])
    found = {}
    for line in output.splitlines():
        m = pattern.search(line)
        if m:
            found[m["component"]] = m["value"]
    return found


def test_shell_prompt_and_commands(shell: Shell) -> None:
    """Prompt, pager off, show alarms/trunks/running-config, unknown command, exit."""
    assert shell.banner.endswith("PBX-01> ")
    assert shell.run("terminal length 0") == ""
    alarms = shell.run("show alarms")
    assert alarms.splitlines() == ["ID  SEVERITY  COMPONENT    DESCRIPTION", "No active alarms"]
    assert rows("show alarms", alarms) == {}
    trunks = shell.run("show trunks")
    assert "TRUNK-1   E1   UP     30/30" in trunks.splitlines()
    assert rows("show trunks", trunks) == {f"TRUNK-{i}": "UP" for i in range(1, 5)}
    config = shell.run("show running-config")
    for secret in (
        "enable secret 5 $1$mERr$hx5rVt7rPNoS4wqbXKX7m0",
        "username maint password 0 pbx1-secret",
        "snmp-server community s3cr3tRO RO",
        "! Last configuration change at 09:14:02 UTC Mon Nov 16 2026 by maint",
        "extension 2001",
        "trunk TRUNK-4",
    ):
        assert secret in config.splitlines()
    assert shell.run("show version") == "% Unknown command"
    shell.channel.sendall(b"exit\r\n")
    wait_for(lambda: shell.channel.exit_status_ready(), 5, "the session to end")
    assert shell.channel.recv_exit_status() == 0


def test_pbx_trunk_and_alarm_conditions(station: SimulatedStation, shell: Shell) -> None:
    """trunk_down, all_trunks_down and pbx_alarm as the profile's row patterns read them."""
    station.set_condition("pbx1", "trunk_down")
    assert rows("show trunks", shell.run("show trunks"))["TRUNK-2"] == "DOWN"
    alarms = shell.run("show alarms")
    assert "  3  MAJOR     TRUNK-2      E1 loss of signal" in alarms.splitlines()
    assert rows("show alarms", alarms) == {"TRUNK-2": "MAJOR"}
    station.set_condition("pbx1", "pbx_alarm")
    assert rows("show alarms", shell.run("show alarms")) == {
        "TRUNK-2": "MAJOR",
        "CPU-1": "CRITICAL",
    }
    station.reset("pbx1")
    station.set_condition("pbx1", "all_trunks_down")
    assert set(rows("show trunks", shell.run("show trunks")).values()) == {"DOWN"}
    station.reset("pbx1")
    assert set(rows("show trunks", shell.run("show trunks")).values()) == {"UP"}
    assert rows("show alarms", shell.run("show alarms")) == {}


def test_pbx_config_conditions(station: SimulatedStation, shell: Shell) -> None:
    """config_noise changes only the timestamp line; config_changed changes real lines."""
    base = shell.run("show running-config").splitlines()
    station.set_condition("pbx1", "config_noise")
    noisy = shell.run("show running-config").splitlines()
    changed = [(a, b) for a, b in zip(base, noisy, strict=True) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("! Last configuration change at")
    station.reset("pbx1")
    station.set_condition("pbx1", "config_changed")
    new = shell.run("show running-config").splitlines()
    assert "extension 2099" in new and "extension 2099" not in base
    assert "username maint password 0 pbx1-n3w-secret" in new
    assert new[-1] == "end"


def test_exec_mode(station: SimulatedStation) -> None:
    """An exec request runs one command, prints its output and exits 0."""
    client = ssh_client(station)
    try:
        _, stdout, _ = client.exec_command("show trunks", timeout=5)
        output = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0
        assert rows("show trunks", output) == {f"TRUNK-{i}": "UP" for i in range(1, 5)}
        _, stdout, _ = client.exec_command("reload", timeout=5)
        assert stdout.read().decode().strip() == "% Unknown command"
        assert stdout.channel.recv_exit_status() != 0
    finally:
        client.close()


def test_wrong_password_is_refused(station: SimulatedStation) -> None:
    """Only the configured password logs in."""
    with pytest.raises(paramiko.AuthenticationException):
        ssh_client(station, password="wrong")


def test_ssh_hang_and_garbage(station: SimulatedStation) -> None:
    """hang: TCP accepted, nothing ever sent; garbage: junk after login and no prompt."""
    ep = station.manifest["devices"]["pbx1"]
    station.set_condition("pbx1", "hang")
    with socket.create_connection((ep["host"], ep["port"]), timeout=5) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # a real sshd sends its version banner at once
    station.clear_condition("pbx1", "hang")
    station.set_condition("pbx1", "garbage")
    client = ssh_client(station)
    try:
        channel = client.invoke_shell()
        with pytest.raises(AssertionError, match="no prompt"):
            read_until_prompt(channel, timeout=0.8)
        channel.sendall(b"show alarms\r\n")
        channel.settimeout(2)
        junk = channel.recv(4096)
        assert junk and b"PBX-01>" not in junk and b"ID  SEVERITY" not in junk
    finally:
        client.close()


def test_host_key_is_stable_across_restart(tmp_path: Path) -> None:
    """The host key is generated once into the workdir and reused: a pinning client trusts it."""
    config = load_station_config()
    with SimulatedStation(config, tmp_path, ephemeral_ports=True) as first:
        client = ssh_client(first)
        transport = client.get_transport()
        assert transport is not None
        key = transport.get_remote_server_key()
        client.close()
    assert (tmp_path / "pbx1_host_key").is_file()
    with SimulatedStation(config, tmp_path, ephemeral_ports=True) as second:
        ep = second.manifest["devices"]["pbx1"]
        pinned = paramiko.SSHClient()
        pinned.get_host_keys().add(f"[127.0.0.1]:{ep['port']}", key.get_name(), key)
        pinned.set_missing_host_key_policy(paramiko.RejectPolicy())
        pinned.connect(
            "127.0.0.1",
            port=ep["port"],
            username="maint",
            password="pbx1-secret",
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        pinned.close()


# --- serial -----------------------------------------------------------------------------------


@pytest.fixture
def tty(station: SimulatedStation) -> Iterator[serial.Serial]:
    """pyserial on the transmitter's pty, through the symlink in the manifest."""
    port = serial.Serial(station.manifest["devices"]["tx2"]["port"], 9600, timeout=1)
    port.reset_input_buffer()
    yield port
    port.close()


def status(port: serial.Serial, request: bytes = b"STATUS?\r\n") -> dict[str, str]:
    """Ask for the status line and parse its KEY=VALUE fields."""
    port.write(request)
    line = port.read_until(b"\r\n")
    assert line.startswith(b"STATUS ") and line.endswith(b"\r\n"), line
    return dict(field.split("=", 1) for field in line.decode().split()[1:])


def test_serial_status_line(tty: serial.Serial) -> None:
    """STATUS? is answered with every field the generic_serial_tx profile reads."""
    tty.write(b"STATUS?\r\n")
    assert tty.read_until(b"\r\n") == (
        b"STATUS FWD=980.5 REF=12.0 VSWR=1.25 AIR=ON FAN=OK PSU=OK TEMP=41.5 SET=1000\r\n"
    )
    keys = [f["key"] for f in profile("generic_serial_tx")["serial"]["fields"]]
    for ending in (b"\r", b"\n"):
        assert sorted(status(tty, b"STATUS?" + ending)) == sorted(keys)
    tty.write(b"VERSION?\r\n")
    assert tty.read_until(b"\r\n") == b"ERR\r\n"


def test_serial_conditions(station: SimulatedStation, tty: serial.Serial) -> None:
    """Each tx2 condition changes the status fields its profile check reads."""
    cases = {
        "off_air": {"AIR": "OFF", "FWD": "0.0", "REF": "0.0"},
        "power_down": {"FWD": "500.0", "SET": "1000"},
        "reflected_high": {"REF": "100.0", "VSWR": "1.9"},
        "fan_alarm": {"FAN": "FAIL"},
        "psu_fault": {"PSU": "FAIL"},
        "temp_high": {"TEMP": "72.0"},
    }
    for condition, expected in cases.items():
        station.set_condition("tx2", condition)
        got = status(tty)
        assert {k: got[k] for k in expected} == expected, condition
        station.clear_condition("tx2", condition)
    assert status(tty)["AIR"] == "ON"


def test_serial_hang_and_garbage(station: SimulatedStation, tty: serial.Serial) -> None:
    """hang: requests read, never answered; garbage: noise with no valid line."""
    station.set_condition("tx2", "hang")
    tty.timeout = 0.5
    tty.write(b"STATUS?\r\n")
    assert tty.read_until(b"\r\n") == b""
    station.set_condition("tx2", "garbage")
    station.clear_condition("tx2", "hang")
    tty.write(b"STATUS?\r\n")
    junk = tty.read_until(b"\r\n")
    assert junk and b"STATUS" not in junk and not junk.endswith(b"\r\n")
    station.reset("tx2")
    tty.timeout = 1
    assert status(tty)["AIR"] == "ON"


# --- control API ----------------------------------------------------------------------------


def test_control_api(station: SimulatedStation, snmp: Snmp) -> None:
    """List, set, clear, reset over HTTP; bad input gets 4xx with a JSON message."""
    assert api(station, "GET", "/healthz") == (200, {"status": "ok", "devices": 4})
    status_code, body = api(station, "GET", "/devices")
    devices = {d["id"]: d for d in body["devices"]}
    assert status_code == 200 and list(devices) == ["tx1", "sw1", "pbx1", "tx2"]
    assert devices["tx1"]["endpoint"].startswith("udp:127.0.0.1:")
    assert "off_air" in devices["tx2"]["allowed_conditions"]
    assert "trunk_down" not in devices["tx1"]["allowed_conditions"]

    status_code, body = api(station, "POST", "/devices/tx1/conditions", {"condition": "off_air"})
    assert status_code == 200 and body["active_conditions"] == {"off_air": None}
    assert snmp.get("tx1", OP_MODE) == {OP_MODE: "2"}
    status_code, body = api(
        station, "POST", "/devices/sw1/conditions", {"condition": "port_down", "value": "Fa0/48"}
    )
    assert status_code == 200 and body["active_conditions"] == {"port_down": "Fa0/48"}
    status_code, body = api(station, "DELETE", "/devices/tx1/conditions/off_air")
    assert status_code == 200 and body["active_conditions"] == {}
    assert snmp.get("tx1", OP_MODE) == {OP_MODE: "1"}
    assert api(station, "POST", "/devices/sw1/reset")[1]["active_conditions"] == {}
    api(station, "POST", "/devices/tx2/conditions", {"condition": "fan_alarm"})
    status_code, body = api(station, "POST", "/devices/tx2/conditions", {"condition": "normal"})
    assert status_code == 200 and body["active_conditions"] == {}  # normal = reset

    bad = [
        ("POST", "/devices/tx1/conditions", {"condition": "melted"}, 400, "unknown condition"),
        ("POST", "/devices/tx1/conditions", {"condition": "trunk_down"}, 400, "does not apply"),
        ("POST", "/devices/tx1/conditions", {"condition": "psu_fault"}, 400, "not simulated"),
        ("POST", "/devices/sw1/conditions", {"condition": "port_down", "value": "Gi9/9"}, 400, ""),
        ("POST", "/devices/tx1/conditions", {"condition": "off_air", "value": "x"}, 400, "value"),
        ("POST", "/devices/tx1/conditions", {"nope": 1}, 400, "condition"),
        ("POST", "/devices/tx9/conditions", {"condition": "off_air"}, 404, "no device"),
        ("DELETE", "/devices/tx1/conditions/melted", None, 400, "unknown condition"),
        ("POST", "/devices/tx9/reset", None, 404, "no device"),
        ("GET", "/nowhere", None, 404, ""),
    ]
    for method, path, payload, expected, message in bad:
        status_code, body = api(station, method, path, payload)
        assert status_code == expected, (method, path, body)
        assert message in body["error"]


def test_control_api_keep_alive_and_bad_json(station: SimulatedStation) -> None:
    """Errors leave a kept-alive connection usable; a body that is not JSON is a 400."""
    port = int(station.control_url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for path, body, expected in [
            ("/nowhere", b'{"condition": "off_air"}', 404),
            ("/devices/tx1/conditions", b"off_air", 400),
            ("/devices/tx1/conditions", b'{"condition": "fan_alarm"}', 200),
        ]:
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = json.loads(resp.read())
            assert resp.status == expected, payload
        assert payload["active_conditions"] == {"fan_alarm": None}
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        conn.close()


# --- CLI --------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m simulators ARGS` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "simulators", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def test_cli_run_set_status(
    tmp_path: Path, clean_env: dict[str, str], snmp_env: dict[str, str]
) -> None:
    """`run` writes the manifest and serves; `set`/`status` drive it; SIGTERM exits 0."""
    workdir = tmp_path / "sim"
    manifest_path = workdir / "manifest.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulators", "run", "--workdir", str(workdir), "--ephemeral-ports"],
        cwd=REPO,
        env=clean_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: manifest_path.exists() or proc.poll() is not None, 20, "the manifest")
        assert proc.poll() is None, proc.communicate()
        manifest = json.loads(manifest_path.read_text())
        assert set(manifest["devices"]) == {"tx1", "sw1", "pbx1", "tx2"}
        assert manifest["devices"]["tx2"]["port"] == str(workdir.resolve() / "tx2.tty")
        url = manifest["control_url"]

        result = cli("set", "tx1", "off_air", "--control-url", url, env=clean_env)
        assert result.returncode == 0 and "off_air" in result.stdout, result.stderr
        result = cli(
            "set", "sw1", "port_down", "--value", "Fa0/48", "--control-url", url, env=clean_env
        )
        assert result.returncode == 0, result.stderr
        result = cli("status", "--control-url", url, env=clean_env)
        assert result.returncode == 0
        assert re.search(r"^tx1\s+snmp\s+ecreso_fm\s+udp:\S+\s+off_air$", result.stdout, re.M)
        assert "port_down=Fa0/48" in result.stdout

        ep = manifest["devices"]["tx1"]
        got = subprocess.run(
            ["snmpget", "-v2c", "-c", ep["community"], "-On", f"127.0.0.1:{ep['port']}", OP_MODE],
            capture_output=True,
            text=True,
            env=snmp_env,
            check=False,
        )
        assert got.stdout.strip().endswith("INTEGER: 2"), got.stderr

        result = cli("set", "tx1", "melted", "--control-url", url, env=clean_env)
        assert result.returncode == 1
        assert result.stderr.startswith("error: unknown condition 'melted'")
        assert "Traceback" not in result.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "tx1: snmp 127.0.0.1:" in err and "station stopped" in err
    assert not manifest_path.exists()
    result = cli("status", "--control-url", url, env=clean_env)
    assert result.returncode == 1 and "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_run_reports_bad_config(tmp_path: Path, clean_env: dict[str, str]) -> None:
    """A bad station file: exit 2 with the file and the field named, no traceback."""
    data = yaml.safe_load((REPO / "simulators" / "station.yaml").read_text())
    data["devices"][0]["community"] = ""
    data["devices"][2]["conditions"]["melted"] = {}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    result = cli("run", "--config", str(bad), "--workdir", str(tmp_path / "w"), env=clean_env)
    assert result.returncode == 2
    assert f"{bad}: devices[0](tx1).community:" in result.stderr
    assert "devices[2](pbx1)" in result.stderr and "melted" in result.stderr
    assert "Traceback" not in result.stderr
