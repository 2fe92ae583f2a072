"""The station definition (station.yaml): devices, their data and their fault conditions.

Everything a simulated device answers comes from here or from the snmprec files it names:
SNMP conditions are OID overrides, serial conditions are status-field overrides, PBX conditions
change trunks, alarms and the running configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from simulators.errors import StationConfigError
from simulators.snmprec import SUPPORTED_TAGS, format_oid, parse_line, parse_oid

BUNDLED_STATION = Path(__file__).with_name("station.yaml")

DeviceClass = Literal["transmitter", "switch", "pbx"]
DEVICE_CLASS_CONDITIONS: dict[str, frozenset[str]] = {
    "transmitter": frozenset(
        {"off_air", "power_down", "reflected_high", "fan_alarm", "temp_high", "psu_fault"}
    ),
    "switch": frozenset({"port_down", "fan_alarm", "psu_fault"}),
    "pbx": frozenset(
        {"trunk_down", "all_trunks_down", "pbx_alarm", "config_changed", "config_noise"}
    ),
}
BEHAVIOURS = ("hang", "garbage")  # every device, built in: no data needed
RESET_CONDITION = "normal"  # a synonym for reset
KNOWN_CONDITIONS = frozenset(
    {*BEHAVIOURS, RESET_CONDITION}.union(*DEVICE_CLASS_CONDITIONS.values())
)


def _normal_oid(text: Any) -> str:
    try:
        return format_oid(parse_oid(str(text)))
    except ValueError as exc:
        raise ValueError(str(exc)) from None


def _keys_as_text(value: Any) -> Any:
    # YAML turns `1: up` into an int key; the models key everything by text.
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


OidText = Annotated[str, BeforeValidator(_normal_oid)]
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
    profile: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    description: str = ""

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


class SnmpDeviceSpec(_DeviceBase):
    """An SNMP v1/v2c agent serving an snmprec capture."""

    protocol: Literal["snmp"]
    port: Port = 0
    community: str = Field(min_length=1)
    data: str  # snmprec file, relative to the station file
    overlays: list[SnmpOverlay] = Field(default_factory=list)
    conditions: dict[str, SnmpCondition] = Field(default_factory=dict)


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


# --- SSH PBX CLI ----------------------------------------------------------------------------

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

    trunks: list[Trunk] = Field(min_length=1)
    alarms: list[Alarm] = Field(default_factory=list)
    last_change: str
    running_config: str

    @model_validator(mode="after")
    def _placeholder(self) -> Self:
        if "{last_change}" not in self.running_config:
            raise ValueError("running_config must contain the {last_change} placeholder")
        return self


class PbxCondition(_Model):
    """Changes to the PBX state while the condition is active."""

    trunks: dict[str, TrunkState] = Field(default_factory=dict)
    alarms: list[Alarm] = Field(default_factory=list)
    config_replace: dict[str, str] = Field(default_factory=dict)  # whole line -> new line
    config_append: list[str] = Field(default_factory=list)  # inserted before `end`
    last_change: str | None = None


class SshDeviceSpec(_DeviceBase):
    """A device CLI over SSH (password login, interactive shell and exec)."""

    protocol: Literal["ssh"]
    port: Port = 0
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)
    hostname: str = Field(pattern=r"^[\w.\-]+$")
    cli: PbxCli
    conditions: dict[str, PbxCondition] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> Self:
        trunks = {t.name for t in self.cli.trunks}
        lines = {line.strip() for line in self.cli.running_config.splitlines()}
        for name, cond in self.conditions.items():
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


class StationConfig(_Model):
    """A whole simulated station."""

    name: str = "demo-station"
    control: ControlSpec = Field(default_factory=ControlSpec)
    devices: list[DeviceSpec] = Field(min_length=1)
    _source: Path = PrivateAttr(default=BUNDLED_STATION)

    @property
    def source(self) -> Path:
        """The file this station was loaded from (data paths are relative to it)."""
        return self._source

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [d.id for d in self.devices]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate device ids: {', '.join(dupes)}")
        tcp = [self.control.port] + [d.port for d in self.devices if d.protocol == "ssh"]
        udp = [d.port for d in self.devices if d.protocol == "snmp"]
        for kind, ports in (("TCP", tcp), ("UDP", udp)):
            used = [p for p in ports if p]
            clash = sorted({p for p in used if used.count(p) > 1})
            if clash:
                raise ValueError(f"{kind} ports used twice: {clash}")
        return self

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


def load_station_config(path: Path | str | None = None) -> StationConfig:
    """Load and validate a station file (None: the bundled demo station)."""
    source = Path(path) if path is not None else BUNDLED_STATION
    try:
        data = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StationConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise StationConfigError(f"{source}: not valid YAML: {exc}") from None
    try:
        config = StationConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_where(e['loc'], data)}: {e['msg']}" for e in exc.errors()]
        raise StationConfigError("\n".join(lines)) from None
    config._source = source.resolve()
    return config
