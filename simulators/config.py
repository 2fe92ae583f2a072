"""The station definition (station.yaml, stations/*.yaml): devices, data, conditions, traps.

Everything a simulated device answers comes from here or from the snmprec files it names:
SNMP conditions are OID overrides, serial conditions are status-field overrides, CLI conditions
change trunks, alarms, logs and the running configuration. A device may be served `replicas`
times (ids `<id>-01`, `<id>-02`, ...), which is how load tests get 50 devices cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    model_validator,
)

from agent.yamlsrc import load_yaml
from simulators.errors import StationConfigError
from simulators.snmprec import (
    SUPPORTED_TAGS,
    Record,
    convert_value,
    format_oid,
    parse_line,
    parse_oid,
)

BUNDLED_STATION = Path(__file__).with_name("station.yaml")
STATIONS_DIR = Path(__file__).with_name("stations")

DeviceClass = Literal["transmitter", "switch", "pbx", "codec", "ups", "environment"]
DEVICE_CLASS_CONDITIONS: dict[str, frozenset[str]] = {
    "transmitter": frozenset(
        {
            "off_air",
            "power_down",
            "reflected_high",
            "fan_alarm",
            "temp_high",
            "psu_fault",
            "tx_fault",
            "input_lost",
        }
    ),
    "switch": frozenset({"port_down", "fan_alarm", "psu_fault", "temp_high", "cpu_high"}),
    "pbx": frozenset(
        {"trunk_down", "all_trunks_down", "pbx_alarm", "config_changed", "config_noise"}
    ),
    "codec": frozenset(
        {
            "camera_fault",
            "error_burst",
            "call_failed",
            "config_changed",
            "config_noise",
            "mcu_alarm",
            "ports_exhausted",
        }
    ),
    "ups": frozenset({"on_battery", "battery_low"}),
    "environment": frozenset({"temp_high", "humidity_high", "flood"}),
}
# Built into every device of a protocol (no data needed), in this order after the declared ones.
PROTOCOL_BEHAVIOURS: dict[str, tuple[str, ...]] = {
    "snmp": ("hang", "garbage"),
    "ssh": ("hang", "garbage", "disconnect", "host_key_changed"),
    "serial": ("hang", "garbage", "disconnect", "unplugged"),
}
BEHAVIOURS = ("hang", "garbage", "disconnect", "host_key_changed", "unplugged")
RESET_CONDITION = "normal"  # a synonym for reset
KNOWN_CONDITIONS = frozenset(
    {*BEHAVIOURS, RESET_CONDITION}.union(*DEVICE_CLASS_CONDITIONS.values())
)
MAX_REPLICAS = 1000
# net-snmp's varbind type letters (snmptrap/snmpset) -> snmprec type tags
TYPE_LETTERS: dict[str, int] = {
    "i": 2,
    "s": 4,
    "x": 4,
    "o": 6,
    "n": 5,
    "a": 64,
    "c": 65,
    "u": 66,
    "t": 67,
    "C": 70,
}


def _normal_oid(text: Any) -> str:
    try:
        return format_oid(parse_oid(str(text)))
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _keys_as_text(value: Any) -> Any:
    # YAML turns `1: up` into an int key; the models key everything by text.
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


OidText = Annotated[str, BeforeValidator(_normal_oid)]


def varbind_tag(kind: int | str) -> int:
    """An snmprec type tag from a tag number or a net-snmp type letter; ValueError if unknown."""
    if isinstance(kind, int) or (isinstance(kind, str) and kind.isdigit()):
        tag = int(kind)
    elif isinstance(kind, str) and kind in TYPE_LETTERS:
        tag = TYPE_LETTERS[kind]
    else:
        raise ValueError(
            f"unknown varbind type {kind!r}; use a tag number or one of {''.join(TYPE_LETTERS)}"
        )
    if tag not in SUPPORTED_TAGS:
        raise ValueError(f"unsupported SNMP type tag {tag}")
    return tag


Port = Annotated[int, Field(ge=0, le=65535)]
SnmpValue = int | str
FieldValue = int | float | str


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- SNMP -----------------------------------------------------------------------------------


class RowTarget(_Model):
    """Rows named by the condition's value (or `default`) in one of the naming columns."""

    name_columns: list[OidText] = Field(min_length=1)
    default: str
    set: dict[OidText, SnmpValue] = Field(min_length=1)  # column OID -> value in that row


class SnmpCondition(_Model):
    """OID overrides applied while the condition is active."""

    set: dict[OidText, SnmpValue] = Field(default_factory=dict)
    rows: RowTarget | None = None
    trap: str | None = None  # a trap preset sent when the condition is set (if a target is set)
    clear_trap: str | None = None  # ... and when it is cleared

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.set and self.rows is None:
            raise ValueError("a condition needs `set` or `rows`")
        return self


class DeriveColumn(_Model):
    """A column computed from another column of the same table (same row indexes)."""

    column: OidText
    from_column: OidText
    type: int = 2
    map: Annotated[dict[str, SnmpValue], BeforeValidator(_keys_as_text)] = Field(
        default_factory=dict
    )
    default: SnmpValue | None = None  # None: rows whose source value is unmapped get no cell

    @model_validator(mode="after")
    def _tag(self) -> Self:
        if self.type not in SUPPORTED_TAGS:
            raise ValueError(f"unsupported SNMP type tag {self.type}")
        return self


def _check_record_line(line: str) -> str:
    parse_line(line)
    return line


class SnmpOverlay(_Model):
    """Data added to a capture in memory (the capture file stays unmodified)."""

    derive_column: DeriveColumn | None = None
    records: list[Annotated[str, AfterValidator(_check_record_line)]] = Field(default_factory=list)


class _DeviceBase(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    device_class: DeviceClass
    profile: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")  # None: none yet
    description: str = ""
    replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)  # served N times: <id>-01 ...

    def condition_names(self) -> list[str]:
        """Conditions declared for this device, in declaration order."""
        conditions: dict[str, Any] = getattr(self, "conditions", {})
        return list(conditions)

    @model_validator(mode="after")
    def _conditions_fit_class(self) -> Self:
        allowed = DEVICE_CLASS_CONDITIONS[self.device_class]
        for name in self.condition_names():
            if name in BEHAVIOURS or name == RESET_CONDITION:
                raise ValueError(f"condition {name!r} is built in; do not declare it")
            if name not in allowed:
                raise ValueError(
                    f"condition {name!r} does not apply to a {self.device_class}; "
                    f"known: {', '.join(sorted(allowed))}"
                )
        return self


def varbind_record(item: Any) -> Record:
    """A trap varbind `[oid, type, value]` (type: tag number or net-snmp letter) as a Record."""
    if not isinstance(item, list | tuple) or len(item) != 3:
        raise ValueError("a varbind is [oid, type, value]")
    oid, kind, value = item
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise ValueError("a varbind value is a number or a string")
    tag = varbind_tag(kind)
    return Record(parse_oid(str(oid)), tag, convert_value(tag, value, hexed=kind == "x"))


def _check_varbind(item: Any) -> tuple[str, str, SnmpValue]:
    varbind_record(item)
    oid, kind, value = item
    return (_normal_oid(oid), str(kind), value)


Varbind = Annotated[tuple[str, str, SnmpValue], BeforeValidator(_check_varbind)]


class TrapPreset(_Model):
    """A named notification a device can send: its snmpTrapOID and extra varbinds."""

    oid: OidText
    varbinds: list[Varbind] = Field(default_factory=list)


class SnmpDeviceSpec(_DeviceBase):
    """An SNMP v1/v2c agent serving an snmprec capture (and sending v2c traps/informs)."""

    protocol: Literal["snmp"]
    port: Port = 0
    community: str = Field(min_length=1)
    data: str  # snmprec file, relative to the station file
    overlays: list[SnmpOverlay] = Field(default_factory=list)
    conditions: dict[str, SnmpCondition] = Field(default_factory=dict)
    traps: dict[Annotated[str, Field(pattern=r"^[A-Za-z][\w-]{0,63}$")], TrapPreset] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _trap_names(self) -> Self:
        for name, cond in self.conditions.items():
            for preset in (cond.trap, cond.clear_trap):
                if preset is not None and preset not in self.traps:
                    raise ValueError(f"condition {name!r} names unknown trap preset {preset!r}")
        return self


# --- serial ---------------------------------------------------------------------------------


class SerialDeviceSpec(_DeviceBase):
    """A serial maintenance port speaking an ASCII `KEY=VALUE` status line."""

    protocol: Literal["serial"]
    link: str | None = Field(default=None, pattern=r"^[\w.\-]+$")  # default: <id>.tty
    request: str = "STATUS?"
    response_prefix: str = "STATUS "
    status: dict[Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")], FieldValue] = Field(
        min_length=1
    )
    conditions: dict[str, dict[str, FieldValue]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _fields_known(self) -> Self:
        for name, fields in self.conditions.items():
            unknown = set(fields) - set(self.status)
            if unknown:
                raise ValueError(
                    f"condition {name!r} sets unknown status fields: {', '.join(sorted(unknown))}"
                )
        return self


# --- SSH CLIs (PBX, video codec) -------------------------------------------------------------

Severity = Literal["CRITICAL", "MAJOR", "MINOR", "WARNING"]
TrunkState = Literal["UP", "DOWN"]


class Trunk(_Model):
    """A trunk line as `show trunks` lists it."""

    name: str = Field(pattern=r"^TRUNK-\d+$")
    type: str = Field(default="E1", pattern=r"^\S+$")
    channels: int = Field(default=30, ge=1)


class Alarm(_Model):
    """A row of `show alarms`."""

    id: int = Field(ge=1)
    severity: Severity
    component: str = Field(pattern=r"^\S+$")
    description: str


class PbxCli(_Model):
    """The normal state of the PBX CLI."""

    kind: Literal["pbx"] = "pbx"
    trunks: list[Trunk] = Field(min_length=1)
    alarms: list[Alarm] = Field(default_factory=list)
    last_change: str
    running_config: str

    @model_validator(mode="after")
    def _placeholder(self) -> Self:
        if "{last_change}" not in self.running_config:
            raise ValueError("running_config must contain the {last_change} placeholder")
        return self


LogLine = Annotated[str, Field(min_length=1, pattern=r"^[^\r\n]+$")]


class CodecCli(_Model):
    """The normal state of a video codec's SSH CLI: logs, version text, running config."""

    kind: Literal["codec"]
    version: str = Field(min_length=1)  # `show version` output
    ports_licensed: int = Field(default=0, ge=0)  # `show conference ports`
    ports_in_use: int = Field(default=0, ge=0)
    alarms: list[Alarm] = Field(default_factory=list)  # `show alarms`, as on the PBX
    error_log: list[LogLine] = Field(default_factory=list)  # `show log errors`, oldest first
    call_log: list[LogLine] = Field(default_factory=list)  # `show log calls`, oldest first
    log_capacity: int = Field(default=500, ge=10, le=100_000)  # oldest lines drop off
    last_change: str
    running_config: str

    @model_validator(mode="after")
    def _placeholder(self) -> Self:
        if "{last_change}" not in self.running_config:
            raise ValueError("running_config must contain the {last_change} placeholder")
        return self


class PbxCondition(_Model):
    """Changes to a CLI's state while the condition is active (log lines: added when set)."""

    trunks: dict[str, TrunkState] = Field(default_factory=dict)
    alarms: list[Alarm] = Field(default_factory=list)
    config_replace: dict[str, str] = Field(default_factory=dict)  # whole line -> new line
    config_append: list[str] = Field(default_factory=list)  # inserted before `end`
    last_change: str | None = None
    error_log: list[LogLine] = Field(default_factory=list)  # codec: timestamped when set
    call_log: list[LogLine] = Field(default_factory=list)
    ports_in_use: int | None = Field(default=None, ge=0)  # codec


CliCondition = PbxCondition


def _cli_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "pbx"))
    return str(getattr(value, "kind", "pbx"))


CliSpec = Annotated[
    Annotated[PbxCli, Tag("pbx")] | Annotated[CodecCli, Tag("codec")], Discriminator(_cli_kind)
]


class SshDeviceSpec(_DeviceBase):
    """A device CLI over SSH (password login, interactive shell and exec)."""

    protocol: Literal["ssh"]
    port: Port = 0
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    hostname: str = Field(pattern=r"^[\w.\-]+$")
    cli: CliSpec
    conditions: dict[str, PbxCondition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Self:
        cli = self.cli
        trunks = {t.name for t in cli.trunks} if isinstance(cli, PbxCli) else set()
        lines = {line.strip() for line in cli.running_config.splitlines()}
        for name, cond in self.conditions.items():
            codec_only = cond.error_log or cond.call_log or cond.ports_in_use is not None
            if isinstance(cli, PbxCli) and codec_only:
                raise ValueError(f"condition {name!r}: a PBX CLI has no logs or conference ports")
            if isinstance(cli, CodecCli) and cond.trunks:
                raise ValueError(f"condition {name!r}: a codec CLI has no trunks")
            unknown = set(cond.trunks) - trunks
            if unknown:
                raise ValueError(f"condition {name!r} names unknown trunks: {sorted(unknown)}")
            missing = [old for old in cond.config_replace if old.strip() not in lines]
            if missing:
                raise ValueError(
                    f"condition {name!r} replaces lines not in running_config: {missing}"
                )
        return self


DeviceSpec = Annotated[
    SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec, Field(discriminator="protocol")
]


class ControlSpec(_Model):
    """Where the control HTTP API listens (always 127.0.0.1)."""

    port: Port = 18081


def _check_target(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise ValueError(f"a trap target is 127.0.0.1:PORT on loopback, not {text!r}")
    if not 0 < int(port) < 65536:
        raise ValueError(f"bad port in trap target {text!r}")
    return f"127.0.0.1:{int(port)}"


TrapTarget = Annotated[str, AfterValidator(_check_target)]


class TrapSettings(_Model):
    """Where and how SNMP devices send notifications unless a request says otherwise."""

    target: TrapTarget | None = None  # None: traps need an explicit target
    community: str = Field(default="public", min_length=1)
    inform_timeout_s: float = Field(default=1.0, gt=0, le=60)
    inform_retries: int = Field(default=3, ge=0, le=20)


AnyDeviceSpec = SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec


def replica_id(device_id: str, n: int, count: int) -> str:
    """The id of the n-th (1-based) of `count` replicas: sw1-01 ... sw1-50."""
    return f"{device_id}-{n:0{max(2, len(str(count)))}d}"


def expand_device(spec: AnyDeviceSpec) -> list[AnyDeviceSpec]:
    """A device definition as the devices served: itself, or its replicas."""
    count = spec.replicas
    if count == 1:
        return [spec]
    out: list[AnyDeviceSpec] = []
    for n in range(1, count + 1):
        update: dict[str, Any] = {"id": replica_id(spec.id, n, count), "replicas": 1}
        if isinstance(spec, SnmpDeviceSpec | SshDeviceSpec) and spec.port:
            update["port"] = spec.port + n - 1
        if isinstance(spec, SerialDeviceSpec):
            stem = (spec.link or f"{spec.id}.tty").removesuffix(".tty")
            update["link"] = f"{replica_id(stem, n, count)}.tty"
        out.append(spec.model_copy(update=update))
    return out


class StationConfig(_Model):
    """A whole simulated station."""

    name: str = "demo-station"
    control: ControlSpec = Field(default_factory=ControlSpec)
    traps: TrapSettings = Field(default_factory=TrapSettings)
    devices: list[DeviceSpec] = Field(min_length=1)
    _source: Path = PrivateAttr(default=BUNDLED_STATION)

    @property
    def source(self) -> Path:
        """The file this station was loaded from (data paths are relative to it)."""
        return self._source

    def expanded(self) -> list[AnyDeviceSpec]:
        """Every device actually served: replicas expanded into <id>-01, <id>-02, ..."""
        return [one for spec in self.devices for one in expand_device(spec)]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        devices = self.expanded()
        ids = [d.id for d in devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate device ids: {', '.join(dupes)}")
        tcp = [self.control.port] + [d.port for d in devices if isinstance(d, SshDeviceSpec)]
        udp = [d.port for d in devices if isinstance(d, SnmpDeviceSpec)]
        for kind, ports in (("TCP", tcp), ("UDP", udp)):
            used = [p for p in ports if p]
            clash = sorted({p for p in used if used.count(p) > 1})
            if clash:
                raise ValueError(f"{kind} ports used twice: {clash}")
            if any(p > 65535 for p in used):
                raise ValueError(f"{kind} ports of replicas run past 65535")
        return self

    def with_replicas(
        self, counts: dict[str, int], *, ephemeral_ports: bool = False
    ) -> StationConfig:
        """A copy of this station where the named devices are served that many times.

        With ephemeral_ports every fixed port is dropped (the station picks free ones), so
        replicas cannot run into their neighbours' ports.
        """
        unknown = set(counts) - {d.id for d in self.devices}
        if unknown:
            raise StationConfigError(f"no device(s) {', '.join(sorted(unknown))} to replicate")
        data = self.model_dump(mode="python")
        for device in data["devices"]:
            if device["id"] in counts:
                device["replicas"] = counts[device["id"]]
            if ephemeral_ports and "port" in device and device["protocol"] != "serial":
                device["port"] = 0
        if ephemeral_ports:
            data["control"]["port"] = 0
        try:
            config = StationConfig.model_validate(data)
        except ValidationError as exc:
            raise StationConfigError(f"{self.source}: with replicas {counts}: {exc}") from None
        config._source = self._source
        return config

    def device(self, device_id: str) -> SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec:
        """The device with that id (KeyError if none)."""
        for spec in self.devices:
            if spec.id == device_id:
                return spec
        raise KeyError(device_id)


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if isinstance(item, int) and loc[:i] == ("devices",):
            ident = ""
            devices = data.get("devices") if isinstance(data, dict) else None
            if isinstance(devices, list) and item < len(devices):
                dev = devices[item]
                ident = f"({dev.get('id')})" if isinstance(dev, dict) else ""
            parts.append(f"devices[{item}]{ident}")
        elif i == 2 and loc[0] == "devices" and item in ("snmp", "ssh", "serial"):
            continue  # the discriminator tag pydantic puts in the path
        elif i == 0 and item == "devices" and len(loc) > 1:
            continue
        else:
            parts.append(str(item))
    return ".".join(parts) or "<top>"


def station_path(name: Path | str | None) -> Path:
    """A station file: None or "demo" the bundled demo, a bare name one of stations/*.yaml."""
    if name is None or str(name) == "demo":
        return BUNDLED_STATION
    text = str(name)
    if "/" not in text and not text.endswith((".yaml", ".yml")):
        bundled = STATIONS_DIR / f"{text}.yaml"
        if bundled.exists() or not Path(text).exists():
            return bundled
    return Path(name)


def load_station_config(path: Path | str | None = None) -> StationConfig:
    """Load and validate a station file (None: the demo station; "full": stations/full.yaml)."""
    source = station_path(path)
    try:
        # No aliases, at most 1 MiB: a station file is a user's file like the agent's.
        data = load_yaml(source).data
    except ValueError as exc:
        raise StationConfigError(str(exc)) from None
    try:
        config = StationConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_where(e['loc'], data)}: {e['msg']}" for e in exc.errors()]
        raise StationConfigError("\n".join(lines)) from None
    config._source = source.resolve()
    return config
