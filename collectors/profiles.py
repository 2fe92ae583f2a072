"""Device profiles: what to read from a device model and how to recognise it.

One YAML file per device model in `collectors/profiles/`; adding a model touches nothing else.
A profile declares its readings per protocol (numeric SNMP OIDs, SSH commands with parsers,
serial requests), how to recognise the device, how to take its configuration backup, and its
traps (which trap OID means which fault code). The same file holds how the device's faults are
graded (`checks`, `log_patterns`, `unreachable_grade`, the `grade` and `title` of its traps):
those sections belong to the checks package (`checks/profile_rules.py` parses and validates
them, `GradedProfile`); here they are kept as they were written, because collectors never grade.

A profile may `extends:` shared blocks (`profiles/shared/<name>.yaml`: the IF-MIB interface
table, UPS-MIB, ...), merged before validation as `profiles/README.md` describes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar, overload

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

PROFILE_DIR = Path(__file__).with_name("profiles")
SHARED_DIR = "shared"  # under a profile directory: the blocks profiles extend, never profiles
OID_RE = re.compile(r"^1(\.\d+)+$")


DeviceClass = Literal[
    "transmitter", "mcu", "pbx", "switch", "network", "ups", "environment", "host", "unknown"
]
# Identification: at most this many vendor candidates are probed per device, then the
# standard-MIB fallbacks; each probe is one GET (scalar key OIDs) and one GETNEXT (key columns).
MAX_VENDOR_CANDIDATES = 3
MAX_KEY_OIDS = 8


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValueMap(_Model):
    """How a raw value becomes a reading: scaled number, or a named state."""

    metric: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    unit: str = ""
    scale: float = 1.0
    states: dict[str, str] | None = None  # raw value as text -> state name
    text: bool = False  # keep the raw text (identity strings); no number conversion
    missing: list[str] = Field(default_factory=list)  # raw values meaning "not available"

    @property
    def is_state(self) -> bool:
        """Whether readings of this value are states rather than numbers."""
        return self.states is not None or self.text


def _regex(v: str) -> str:
    """Refuse a pattern that is not a valid regex (as a ValueError pydantic reports)."""
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"not a valid regex {v!r}: {exc}") from None
    return v


def _check_oid(v: str) -> str:
    v = v.lstrip(".")
    if not OID_RE.match(v):
        raise ValueError(f"not a numeric OID: {v!r}")
    return v


Oid = Annotated[str, AfterValidator(_check_oid)]
Regex = Annotated[str, AfterValidator(_regex)]


class SnmpScalar(ValueMap):
    """A single OID (usually ending in .0)."""

    oid: Oid


class SnmpColumn(ValueMap):
    """One column of a table; rows are named by the table's component column."""

    oid: Oid


class SnmpTable(_Model):
    """A conceptual table walked column by column with GETBULK."""

    name: str
    # Column whose value names the row (ifName, fan description, ...); None: the row index.
    component_oid: Oid | None = None
    columns: list[SnmpColumn] = Field(min_length=1)


class SnmpSource(_Model):
    """What an SNMP device is asked."""

    scalars: list[SnmpScalar] = Field(default_factory=list)
    tables: list[SnmpTable] = Field(default_factory=list)


class RegexValue(ValueMap):
    """A value found by a regex with one group in a command's output."""

    pattern: str


class RowSpec(ValueMap):
    """Rows found by a regex with named groups `component` and `value` (one per line)."""

    pattern: str

    @field_validator("pattern")
    @classmethod
    def _groups(cls, v: str) -> str:
        groups = re.compile(v).groupindex
        if "component" not in groups or "value" not in groups:
            raise ValueError("a row pattern needs the named groups 'component' and 'value'")
        return v


class LogCommand(_Model):
    """A CLI command printing a log (error log, call log); only new lines are evaluated."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    command: str


class SshCommand(_Model):
    """A CLI command and how to read its output."""

    command: str
    rows: RowSpec | None = None
    values: list[RegexValue] = Field(default_factory=list)


class SshSource(_Model):
    """An SSH CLI: interactive shell with a prompt, or plain exec."""

    mode: Literal["shell", "exec"] = "shell"
    prompt: str = r"[\w.\-()]+[>#]\s?$"
    pager_off: str | None = None
    commands: list[SshCommand] = Field(default_factory=list)
    config_command: str | None = None
    log_commands: list[LogCommand] = Field(default_factory=list)


class SerialField(ValueMap):
    """A KEY=VALUE field of a serial status line."""

    key: str


class SerialSource(_Model):
    """An ASCII request/response line protocol on a serial maintenance port."""

    request: str
    terminator: str = "\r\n"
    response_prefix: str = ""
    fields: list[SerialField] = Field(min_length=1)
    # Text dumps (configuration, alarm/event log): a command, then lines until `dump_end`
    # matches a line or the line stays quiet for `dump_idle_s` after the first bytes.
    config_command: str | None = None
    log_commands: list[LogCommand] = Field(default_factory=list)
    dump_end: str = r"^(END|OK)$"
    dump_idle_s: float = Field(default=1.0, gt=0, le=30)

    @field_validator("dump_end")
    @classmethod
    def _end_regex(cls, v: str) -> str:
        return _regex(v)


class Match(_Model):
    """How to recognise the device when the site config names no profile.

    `sys_object_id` prefixes and the `sys_descr` regex nominate the profile as a candidate;
    a profile with `fallback` is a standard-MIB profile tried (in that order, after every
    vendor candidate) on any device. Either way the candidate is taken only if the device
    answers at least one of the profile's `key` OIDs.
    """

    sys_object_id: list[Oid] = Field(default_factory=list)
    sys_descr: str | None = None
    fallback: int | None = Field(default=None, ge=1, le=99)

    @field_validator("sys_descr")
    @classmethod
    def _descr_regex(cls, v: str | None) -> str | None:
        return None if v is None else _regex(v)


Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class TrapSpec(_Model):
    """Which fault a trap (by its snmpTrapOID) raises or clears, and which varbind names the
    component. Its `grade` and `title` are grading, validated by checks (TrapRule)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    oid: Oid
    action: Literal["raise", "clear"] = "raise"
    code: Code
    component_oid: Oid | None = None  # varbind (by OID prefix) whose value names the component


class BackupSpec(_Model):
    """How a device's configuration is captured and which of its lines are secret or noise."""

    via: Literal["ssh", "serial"] = "ssh"
    command: str | None = None  # default: the ssh section's config_command
    secrets: list[str] = Field(default_factory=list)  # regexes; group `secret` is removed
    noise: list[str] = Field(default_factory=list)  # regexes of lines that never count
    default_rules: bool = True  # also apply the built-in secret and noise rules

    @field_validator("secrets", "noise")
    @classmethod
    def _patterns(cls, v: list[str]) -> list[str]:
        return [_regex(p) for p in v]


# Metrics the host collector (collectors.host) can produce, for profiles of protocol "host".
HOST_METRICS = frozenset(
    {
        "cpu_percent",
        "load_1m_per_cpu",
        "memory_percent",
        "swap_percent",
        "disk_percent",
        "temperature_c",
        "uptime_s",
        "clock_synced",
    }
)


class Action(_Model):
    """A maintenance action the agent may run on this device model (its catalogue).

    `change` actions alter the device and run only with an approval inside its window.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    title: str
    change: bool
    ssh_command: str


class Profile(_Model):
    """What collectors know about one device model: what to read and how to recognise it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    vendor: str
    model: str
    device_class: DeviceClass
    protocol: Literal["snmp", "ssh", "serial", "host"]
    description: str = ""
    match: Match = Field(default_factory=Match)
    # Readings that show the device really is this model (its status, not its identity): a
    # candidate is confirmed by probing them, and a poll yielding none of them is a
    # profile_mismatch fault. Empty: an identity-only profile, confirmed by its match alone.
    key: list[str] = Field(default_factory=list, max_length=MAX_KEY_OIDS)
    snmp: SnmpSource | None = None
    ssh: SshSource | None = None
    serial: SerialSource | None = None
    traps: Sequence[TrapSpec] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    backup: BackupSpec | None = None
    # Grading, as written in the file: parsed and validated by checks/profile_rules.py.
    unreachable_grade: Any = None
    checks: list[Any] = Field(default_factory=list)
    log_patterns: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _traps_paired(self) -> Self:
        raised = {t.code for t in self.traps if t.action == "raise"}
        for t in self.traps:
            if t.action == "clear" and t.code not in raised:
                raise ValueError(f"trap {t.oid} clears {t.code!r}, which no trap raises")
        backup = self.backup
        if backup and not backup.command:
            section = self.ssh if backup.via == "ssh" else self.serial
            if section is None or not section.config_command:
                raise ValueError(
                    f"backup via {backup.via} needs backup.command or {backup.via}.config_command"
                )
        return self

    @model_validator(mode="after")
    def _source_present(self) -> Self:
        if self.protocol != "host" and getattr(self, self.protocol) is None:
            raise ValueError(
                f"protocol is {self.protocol!r} but there is no {self.protocol}: section"
            )
        metrics = self.metrics()
        for name in self.key:
            if name not in metrics:
                raise ValueError(f"key reading {name!r} is not a metric of this profile")
        if self.match.fallback is not None and not self.key:
            raise ValueError("a fallback profile needs key readings to confirm it by")
        return self

    def key_oids(self) -> tuple[list[str], list[str]]:
        """The OIDs probed to confirm this profile: (scalar OIDs to GET, columns to GETNEXT)."""
        scalars: list[str] = []
        columns: list[str] = []
        if self.snmp is None:
            return scalars, columns
        wanted = set(self.key)
        scalars = [s.oid for s in self.snmp.scalars if s.metric in wanted]
        columns = [c.oid for t in self.snmp.tables for c in t.columns if c.metric in wanted]
        return scalars, columns

    def key_per_row(self) -> dict[str, bool]:
        """Each key metric and whether it is a table column (read per row) or a scalar."""
        columns: set[str] = set()
        if self.snmp:
            columns = {c.metric for t in self.snmp.tables for c in t.columns}
        if self.ssh:
            columns |= {cmd.rows.metric for cmd in self.ssh.commands if cmd.rows}
        return {name: name in columns for name in self.key}

    def metrics(self) -> set[str]:
        """Every metric this profile can produce."""
        names: set[str] = set()
        if self.snmp:
            names |= {s.metric for s in self.snmp.scalars}
            names |= {c.metric for t in self.snmp.tables for c in t.columns}
        if self.ssh:
            for cmd in self.ssh.commands:
                names |= {v.metric for v in cmd.values}
                if cmd.rows:
                    names.add(cmd.rows.metric)
        if self.serial:
            names |= {f.metric for f in self.serial.fields}
        if self.protocol == "host":
            names |= HOST_METRICS
        return names


class ProfileError(ValueError):
    """A profile file is invalid; the message names the file and the field."""


P = TypeVar("P", bound=Profile)

# Lists of entries merged by `extends:` entry by entry, each entry known by this field (list
# paths by their mapping keys); every other list is replaced whole by the extending file's.
MERGED_BY: dict[tuple[str, ...], str] = {
    ("snmp", "scalars"): "metric",
    ("snmp", "tables"): "name",
    ("snmp", "tables", "columns"): "metric",
    ("ssh", "commands"): "command",
    ("ssh", "commands", "values"): "metric",
    ("ssh", "log_commands"): "name",
    ("serial", "fields"): "metric",
    ("serial", "log_commands"): "name",
    ("checks",): "code",
    ("traps",): "oid",
    ("log_patterns",): "code",
    ("actions",): "name",
}
# What a shared block may hold: sections, never a device's identity or its match rules.
SHARED_SECTIONS = frozenset(
    {"extends", "snmp", "ssh", "serial", "checks", "traps", "log_patterns", "actions", "backup"}
)


def merge_sections(base: Any, own: Any, path: tuple[str, ...] = ()) -> Any:
    """`own` laid over `base` (see profiles/README.md): mappings key by key, the lists of
    MERGED_BY entry by entry (an entry named like an inherited one is merged into it, in its
    place; the others follow, in order), anything else replaced by `own`."""
    if isinstance(base, dict) and isinstance(own, dict):
        out = dict(base)
        for k, v in own.items():
            out[k] = merge_sections(base[k], v, (*path, str(k))) if k in base else v
        return out
    field = MERGED_BY.get(path)
    if field and isinstance(base, list) and isinstance(own, list):
        merged = list(base)
        inherited = {_entry_name(e, field): i for i, e in enumerate(base)}
        inherited.pop(None, None)
        for entry in own:
            at = inherited.get(_entry_name(entry, field))
            if at is None:
                merged.append(entry)
            else:
                merged[at] = merge_sections(merged[at], entry, path)
        return merged
    return own


def _entry_name(entry: Any, field: str) -> str | None:
    name = entry.get(field) if isinstance(entry, dict) else None
    return name if isinstance(name, str) else None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: <top>: expected a mapping of profile sections")
    return data


def _extends(path: Path, data: Mapping[str, Any]) -> list[str]:
    names = data.get("extends", [])
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not all(
        isinstance(n, str) and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", n) for n in names
    ):
        raise ProfileError(
            f"{path}: extends: expected a list of shared block names (files of {SHARED_DIR}/ "
            "without .yaml), e.g. [if_mib]"
        )
    return names


def _resolved(path: Path, shared_dir: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The file's sections with every block it extends merged under them."""
    data = _read_yaml(path)
    if chain:  # a shared block, not a device profile
        stray = sorted(set(data) - SHARED_SECTIONS)
        if stray:
            raise ProfileError(
                f"{path}: {stray[0]}: a shared block holds only sections "
                f"({', '.join(sorted(SHARED_SECTIONS - {'extends'}))}), not a device's identity"
            )
    merged: dict[str, Any] = {}
    for name in _extends(path, data):
        base = shared_dir / f"{name}.yaml"
        if base in chain or base == path:
            cycle = " -> ".join(p.stem for p in (*chain, path, base))
            raise ProfileError(f"{path}: extends: {name!r} makes a cycle ({cycle})")
        if not base.is_file():
            raise ProfileError(f"{path}: extends: no shared block {name!r} ({base} is missing)")
        merged = merge_sections(merged, _resolved(base, shared_dir, (*chain, path)))
    own = {k: v for k, v in data.items() if k != "extends"}
    resolved: dict[str, Any] = merge_sections(merged, own)
    return resolved


def profile_data(path: Path) -> dict[str, Any]:
    """A profile file's sections with the shared blocks it extends merged in (not validated)."""
    return _resolved(path, path.parent / SHARED_DIR, ())


@overload
def load_profile(path: Path) -> Profile: ...
@overload
def load_profile(path: Path, model: type[P]) -> P: ...
def load_profile(path: Path, model: type[Profile] = Profile) -> Profile:
    """Load and validate one profile file (as `model`: checks' GradedProfile validates the
    grading sections too)."""
    data = profile_data(path)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc']) or '<top>'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ProfileError("\n".join(lines)) from None


@cache
def builtin_profiles() -> dict[str, Profile]:
    """All profiles shipped in collectors/profiles, by name (grading sections unparsed)."""
    return load_profiles(PROFILE_DIR)


@overload
def load_profiles(directory: Path) -> dict[str, Profile]: ...
@overload
def load_profiles(directory: Path, model: type[P]) -> dict[str, P]: ...
def load_profiles(directory: Path, model: type[Profile] = Profile) -> dict[str, Any]:
    """Load every *.yaml in a directory (not its shared/ blocks); duplicate names are refused."""
    found: dict[str, Profile] = {}
    for path in sorted(directory.glob("*.yaml")):
        profile = load_profile(path, model)
        if profile.name in found:
            raise ProfileError(f"{path}: profile name {profile.name!r} is already used")
        found[profile.name] = profile
    return found


def vendor_candidates(
    sys_object_id: str, sys_descr: str, profiles: Mapping[str, Profile]
) -> list[Profile]:
    """Profiles whose match rules fit a device: longest sysObjectID prefix first, then sysDescr."""
    oid = sys_object_id.strip().lstrip(".")
    snmp = [p for p in profiles.values() if p.protocol == "snmp"]  # only SNMP is identified
    by_oid: list[tuple[int, Profile]] = []
    for profile in snmp:
        hits = [p for p in profile.match.sys_object_id if oid == p or oid.startswith(p + ".")]
        if hits:
            by_oid.append((max(len(h) for h in hits), profile))
    found = [p for _, p in sorted(by_oid, key=lambda pair: -pair[0])]
    for profile in snmp:
        descr = profile.match.sys_descr
        if descr and profile not in found and re.search(descr, sys_descr):
            found.append(profile)
    return found[:MAX_VENDOR_CANDIDATES]


def candidates(
    sys_object_id: str, sys_descr: str, profiles: Mapping[str, Profile]
) -> list[Profile]:
    """Every profile identification tries, in order: vendor candidates, then the fallbacks."""
    found = vendor_candidates(sys_object_id, sys_descr, profiles)
    fallbacks = sorted(
        (p for p in profiles.values() if p.match.fallback is not None and p.protocol == "snmp"),
        key=lambda p: (p.match.fallback or 0, p.name),
    )
    return found + [p for p in fallbacks if p not in found]


def identify(sys_object_id: str, sys_descr: str, profiles: Mapping[str, Profile]) -> Profile | None:
    """The first profile whose match rules fit sysObjectID / sysDescr (not yet confirmed).

    Only a candidate: `collectors.identify` confirms it by probing its key OIDs, and falls
    back to the next candidate and to the standard-MIB profiles.
    """
    found = vendor_candidates(sys_object_id, sys_descr, profiles)
    return found[0] if found else None
