"""The simulator's data side without sockets: station files, snmprec parsing, BER framing and
the SNMP responder, with pysnmp's own codec as the judge of the wire format.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import univ
from pysnmp.proto import api

from simulators import ber
from simulators.config import BUNDLED_STATION, StationConfig, load_station_config
from simulators.errors import ConditionError, StationConfigError
from simulators.snmp_agent import SnmpResponder
from simulators.snmp_data import SnmpDevice
from simulators.snmprec import load_snmprec, parse_line
from simulators.station import SimulatedStation

V1 = api.PROTOCOL_MODULES[api.SNMP_VERSION_1]
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def bundled() -> dict[str, Any]:
    """The bundled station file as plain data, to break in tests."""
    data: dict[str, Any] = yaml.safe_load(BUNDLED_STATION.read_text())
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    """A station file next to a copy of the bundled data folder."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    for src in (BUNDLED_STATION.parent / "data").glob("*.snmprec"):
        (data_dir / src.name).write_bytes(src.read_bytes())
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_bundled_station() -> None:
    """The demo station: four devices on the documented default ports."""
    config = load_station_config()
    assert config.source == BUNDLED_STATION.resolve()
    ports = {d.id: getattr(d, "port", None) for d in config.devices}
    assert ports == {"tx1": 16161, "sw1": 16162, "pbx1": 12222, "tx2": None}
    assert config.control.port == 18081


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (
            lambda d: d["devices"][0].update(protocol="telnet"),
            "devices[0](tx1): Input tag 'telnet'",
        ),
        (lambda d: d["devices"][1].update(id="tx1"), "duplicate device ids: tx1"),
        (lambda d: d["devices"][1].update(port=16161), "UDP ports used twice: [16161]"),
        (lambda d: d["devices"][2].update(port=18081), "TCP ports used twice: [18081]"),
        (lambda d: d["devices"][0].update(port=70000), "devices[0](tx1).port: Input should be"),
        (
            lambda d: d["devices"][0]["conditions"].update(trunk_down={"set": {"1.3.6": 1}}),
            "devices[0](tx1): Value error, condition 'trunk_down' does not apply",
        ),
        (
            lambda d: d["devices"][0]["conditions"].update(hang={"set": {"1.3.6": 1}}),
            "condition 'hang' is built in",
        ),
        (
            lambda d: d["devices"][0]["conditions"]["off_air"].update(set={"1.3.x": 1}),
            "devices[0](tx1).conditions.off_air.set.1.3.x.[key]: Value error, not a numeric OID",
        ),
        (
            lambda d: d["devices"][3]["conditions"].update(fan_alarm={"FANS": "FAIL"}),
            "sets unknown status fields: FANS",
        ),
        (
            lambda d: d["devices"][2]["conditions"]["trunk_down"].update(
                trunks={"TRUNK-9": "DOWN"}
            ),
            "names unknown trunks: ['TRUNK-9']",
        ),
        (
            lambda d: d["devices"][2]["cli"].update(running_config="hostname x\n"),
            "must contain the {last_change} placeholder",
        ),
        (lambda d: d["devices"][2].pop("password"), "devices[2](pbx1).password: Field required"),
    ],
)
def test_bad_station_files_name_file_and_field(tmp_path: Path, breakage: Any, message: str) -> None:
    """Each mistake is reported with the file and the field (and the device id)."""
    data = copy.deepcopy(bundled())
    breakage(data)
    path = write(tmp_path, data)
    with pytest.raises(StationConfigError) as info:
        load_station_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    """Unreadable or unparsable files are named too."""
    with pytest.raises(StationConfigError, match="cannot read"):
        load_station_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices: [\n")
    with pytest.raises(StationConfigError, match=rf"{bad}:2: not valid YAML"):
        load_station_config(bad)


def test_aliases_and_huge_files_are_refused(tmp_path: Path) -> None:
    """A station file is a user's file: no YAML aliases (billion laughs), at most 1 MiB."""
    bomb = tmp_path / "bomb.yaml"
    levels = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    bomb.write_text("\n".join(levels) + "\n")
    with pytest.raises(StationConfigError, match=rf"{bomb}:1: .*anchors and aliases are not"):
        load_station_config(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("#" * (2 << 20))
    with pytest.raises(StationConfigError, match=f"{huge}: larger than 1024 KiB"):
        load_station_config(huge)


def test_condition_oids_must_exist_in_the_capture(tmp_path: Path) -> None:
    """An override of an OID the capture lacks is refused when the station is built."""
    data = bundled()
    data["devices"][0]["conditions"]["off_air"]["set"]["1.3.6.1.4.1.6404.99.0"] = 1
    path = write(tmp_path, data)
    with pytest.raises(StationConfigError) as info:
        SimulatedStation(load_station_config(path), tmp_path / "w")
    assert str(info.value) == (
        f"{path.resolve()}: devices(tx1).conditions.off_air.set.1.3.6.1.4.1.6404.99.0: "
        "OID 1.3.6.1.4.1.6404.99.0 is not in ecresofm-os_e03.snmprec"
    )


def test_snmprec_parsing(tmp_path: Path) -> None:
    """Types, hex values, sorting; bad lines are named by file and line number."""
    assert parse_line("1.3.6.1.2.1.1.1.0|4x|4869").value == b"Hi"
    assert parse_line("1.3.6.1.2.1.4.20.1.3.1|64|255.255.255.0").value == b"\xff\xff\xff\x00"
    assert parse_line("1.3.6.1.2.1.1.2.0|6|1.3.6.1.4.1.9").value == (1, 3, 6, 1, 4, 1, 9)
    assert parse_line("1.3.6.1.2.1.2.2.1.10.1|65x|0100").value == 256
    path = tmp_path / "x.snmprec"
    path.write_text("1.3.6.1.2.1.1.3.0|67|5\n1.3.6.1.2.1.1.1.0|4|a|b\n")
    assert [(r.oid[-2], r.value) for r in load_snmprec(path)] == [(1, b"a|b"), (3, 5)]
    path.write_text("1.3.6.1.2.1.1.1.0|4|ok\n1.3.6.1.2.1.1.3.0|65|-1\n")
    with pytest.raises(StationConfigError, match=r"x.snmprec:2: -1 is out of range"):
        load_snmprec(path)
    path.write_text("1.3.6.1.2.1.1.1.0|2:numeric|1\n")
    with pytest.raises(StationConfigError, match=r"x.snmprec:1: bad type"):
        load_snmprec(path)


def test_ber_framing_matches_pyasn1() -> None:
    """Integers and OIDs encode as pyasn1 decodes them."""
    for value in (0, 127, 128, -1, -128, -129, 2**31 - 1, -(2**31), 2**64 - 1):
        assert int(decoder.decode(ber.integer(value), asn1Spec=univ.Integer())[0]) == value
    for oid in ((1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 4, 1, 6404, 3), (2, 999, 2**32 - 1)):
        assert ber.oid(oid) == encoder.encode(univ.ObjectIdentifier(oid))


# --- the responder, judged by pysnmp's codec ---------------------------------------------------


@pytest.fixture(scope="module")
def switch() -> SnmpDevice:
    """The switch device of the bundled station."""
    config: StationConfig = load_station_config()
    spec = config.device("sw1")
    assert spec.protocol == "snmp"
    return SnmpDevice(spec, config.source)


def request(
    mod: Any,
    pdu: Any,
    oids: list[str],
    community: str = "sw1-public",
    bulk: tuple[int, int] | None = None,
) -> bytes:
    """An encoded request message (bulk: non-repeaters and max-repetitions)."""
    pdu_api = mod.apiBulkPDU if bulk else mod.apiPDU
    pdu_api.set_defaults(pdu)
    if bulk:
        pdu_api.set_non_repeaters(pdu, bulk[0])
        pdu_api.set_max_repetitions(pdu, bulk[1])
    pdu_api.set_request_id(pdu, 4242)
    pdu_api.set_varbinds(pdu, [(mod.ObjectIdentifier(o), mod.null) for o in oids])
    msg = mod.Message()
    mod.apiMessage.set_defaults(msg)
    mod.apiMessage.set_community(msg, community)
    mod.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def answer(responder: SnmpResponder, mod: Any, wire: bytes) -> tuple[int, int, list[Any]]:
    """(error-status, error-index, [(oid, value)]) of the responder's reply."""
    reply = responder.respond(wire)
    assert reply is not None
    msg, rest = decoder.decode(reply, asn1Spec=mod.Message())
    assert not rest
    pdu = mod.apiMessage.get_pdu(msg)
    assert int(mod.apiPDU.get_request_id(pdu)) == 4242
    binds = [(str(o), v) for o, v in mod.apiPDU.get_varbinds(pdu)]
    return int(mod.apiPDU.get_error_status(pdu)), int(mod.apiPDU.get_error_index(pdu)), binds


def test_responder_get_next_bulk(switch: SnmpDevice) -> None:
    """GET, GETNEXT, GETBULK replies decode with pysnmp and carry the right values."""
    responder = SnmpResponder(switch)
    oper = "1.3.6.1.2.1.2.2.1.8"
    status, _, binds = answer(responder, V2C, request(V2C, V2C.GetRequestPDU(), [f"{oper}.10002"]))
    assert status == 0 and binds == [(f"{oper}.10002", V2C.Integer(1))]
    _, _, binds = answer(responder, V2C, request(V2C, V2C.GetNextRequestPDU(), [oper]))
    assert binds[0][0] == f"{oper}.1"
    admin = "1.3.6.1.2.1.2.2.1.7"
    wire = request(V2C, V2C.GetBulkRequestPDU(), ["1.3.6.1.2.1.1.2", oper, admin], bulk=(1, 4))
    _, _, binds = answer(responder, V2C, wire)
    assert [oid for oid, _ in binds] == [
        "1.3.6.1.2.1.1.2.0",
        *(f"{column}.{index}" for index in (1, 2, 3, 178) for column in (oper, admin)),
    ]
    last = switch.view.oids[-1]
    wire = request(V2C, V2C.GetBulkRequestPDU(), [".".join(map(str, last))], bulk=(0, 3))
    _, _, binds = answer(responder, V2C, wire)
    assert len(binds) == 1 and binds[0][1].tagSet == V2C.EndOfMibView.tagSet


def test_responder_v1_and_errors(switch: SnmpDevice) -> None:
    """SNMPv1: noSuchName with its index; no Counter64; wrong community: silence."""
    responder = SnmpResponder(switch)
    wire = request(V1, V1.GetRequestPDU(), ["1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.99.0"])
    status, index, _ = answer(responder, V1, wire)
    assert (status, index) == (2, 2)
    hc_in = "1.3.6.1.2.1.31.1.1.1.6"  # ifHCInOctets: Counter64, invisible to v1
    _, _, binds = answer(responder, V1, request(V1, V1.GetNextRequestPDU(), [hc_in]))
    assert not binds[0][0].startswith(hc_in + ".")
    wire = request(V2C, V2C.GetRequestPDU(), ["1.3.6.1.2.1.1.2.0"], community="public")
    assert responder.respond(wire) is None
    with pytest.raises(ConditionError):
        switch.set_condition("port_down", "Gi9/9")
