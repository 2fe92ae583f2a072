"""The site configuration (one YAML file) and the credentials file, validated into frozen models.

Errors name the file, the line, the field path and what was expected. A broken device
definition disables that device only (the agent raises a `config_invalid` fault for it); a
broken top level (HQ URL, state dir) stops the agent.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from agent.errors import ConfigError
from agent.yamlsrc import Loc, YamlSource, load_yaml
from checks.profile_rules import GradedProfile, builtin_profiles
from checks.spec import CheckOverride, CheckSpec, apply_overrides
from collectors.profiles import SnmpSource
from collectors.targets import HostTarget, SerialTarget, SnmpTarget, SshTarget
from protocol.wire import ID_PATTERN, MAX_HEARTBEAT_DEVICES

TRAP_CREDENTIALS = "_traps"  # credentials entry of the trap receiver (not a device id)
SECRET_KEYS = frozenset({"community", "password", "auth_key", "priv_key", "username", "key_file"})
Target = SnmpTarget | SshTarget | SerialTarget | HostTarget
TARGETS: dict[str, type[SnmpTarget | SshTarget | SerialTarget]] = {
    "snmp": SnmpTarget,
    "ssh": SshTarget,
    "serial": SerialTarget,
}


# Stands in for the profile of a device not identified yet: polls nothing, checks nothing.
AUTO_PROFILE = GradedProfile(
    name="auto",
    vendor="unknown",
    model="not identified yet",
    device_class="unknown",
    protocol="snmp",
    snmp=SnmpSource(),
)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1); a name other than
    localhost is not (it may resolve anywhere)."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HqConfig(_Model):
    """How to reach HQ."""

    # Before `url`: the url validator reads it.
    allow_insecure_http: bool = False  # plain http:// to a host that is not loopback
    url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    ca_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _https_or_loopback(cls, v: str, info: ValidationInfo) -> str:
        # The agent token goes with every request: never in clear text over a network,
        # unless the operator says the network is trusted.
        host = urlsplit(v).hostname or ""
        if (
            v.lower().startswith("http://")
            and not is_loopback_host(host)
            and not info.data.get("allow_insecure_http")
        ):
            raise ValueError(
                f"plain http:// to {host}, which is not a loopback address, would send the "
                "agent token unencrypted: use https://, or set hq.allow_insecure_http: true "
                "if the network to HQ is trusted"
            )
        return v.rstrip("/")

    @property
    def insecure(self) -> bool:
        """True when the agent talks plain HTTP to a host that is not loopback."""
        return self.url.lower().startswith("http://") and not is_loopback_host(
            urlsplit(self.url).hostname or ""
        )


class Intervals(_Model):
    """How often the agent polls, uploads and reports in."""

    poll_s: float = Field(default=30.0, ge=1, le=86400)
    upload_s: float = Field(default=5.0, ge=0.2, le=600)
    heartbeat_s: float = Field(default=30.0, ge=1, le=60)


class OutboxConfig(_Model):
    """Bounds of the on-disk event queue."""

    max_events: int = Field(default=100_000, ge=100)
    upload_batch: int = Field(default=500, ge=1, le=5000)


class JobsConfig(_Model):
    """Remote jobs from HQ: only items of the agent's own catalogue ever run."""

    enabled: bool = True
    allow_changes: bool = True  # change actions still need an approval and its window
    max_concurrent: int = Field(default=2, ge=1, le=16)
    poll_wait_s: int = Field(default=25, ge=1, le=30)


class BackupsConfig(_Model):
    """Periodic configuration backups of devices whose profile says how to take one."""

    enabled: bool = True
    interval_s: float = Field(default=3600.0, ge=60, le=7 * 86400)


class TrapsConfig(_Model):
    """The SNMP trap/inform receiver; communities and v3 users go in the credentials file
    under the entry `_traps` ({communities: [...], v3_users: [...]})."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=162, ge=0, le=65535)
    rate_per_s: float = Field(default=20.0, gt=0)
    burst: int = Field(default=50, ge=1)


class SyslogConfig(_Model):
    """The syslog (UDP) listener; senders are matched to devices by their configured address."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=514, ge=0, le=65535)


class LogsConfig(_Model):
    """How often device logs read over SSH/serial (profile log_commands) are fetched."""

    interval_s: float = Field(default=60.0, ge=5, le=86400)


class DeviceConfig(_Model):
    """One device of the site; its secrets live in the credentials file, not here."""

    id: str = Field(pattern=ID_PATTERN)
    name: str = ""
    profile: str = "auto"  # "auto": recognised by SNMP sysObjectID / sysDescr at first contact
    credentials: str | None = None
    poll_interval_s: float | None = Field(default=None, ge=1, le=86400)
    enabled: bool = True
    snmp: dict[str, Any] | None = None
    ssh: dict[str, Any] | None = None
    serial: dict[str, Any] | None = None
    host: dict[str, Any] | None = None  # the agent's own host (profile "host")
    checks: list[CheckOverride] = Field(default_factory=list)

    @field_validator("snmp", "ssh", "serial")
    @classmethod
    def _no_secrets(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v:
            leaked = sorted(SECRET_KEYS & v.keys())
            if leaked:
                raise ValueError(
                    f"{', '.join(leaked)} must be in the credentials file, not the site config"
                )
        return v

    @property
    def transports(self) -> list[str]:
        """The transport sections given."""
        return [t for t in ("snmp", "ssh", "serial", "host") if getattr(self, t) is not None]


class AgentConfig(_Model):
    """The whole site file, devices kept raw: each is validated on its own."""

    site: str = Field(min_length=1, max_length=100)
    hq: HqConfig
    state_dir: Path
    credentials_file: Path | None = None
    intervals: Intervals = Field(default_factory=Intervals)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    backups: BackupsConfig = Field(default_factory=BackupsConfig)
    traps: TrapsConfig = Field(default_factory=TrapsConfig)
    syslog: SyslogConfig = Field(default_factory=SyslogConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    log_format: Literal["text", "json"] = "text"
    # Every device is named in the heartbeat, which is bounded.
    devices: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_HEARTBEAT_DEVICES)


@dataclass(frozen=True)
class Device:
    """A device ready to poll: its config, profile, connection target and checks."""

    config: DeviceConfig
    profile: GradedProfile
    target: Target
    checks: list[CheckSpec]
    backup_target: SshTarget | None = None  # SSH login for config backups of a non-SSH device

    @property
    def id(self) -> str:
        """The device id."""
        return self.config.id


def with_profile(device: Device, profile: GradedProfile) -> Device:
    """The device with an identified profile and that profile's checks (site overrides applied).

    The overrides were validated against no profile when the device was loaded (it had none):
    an override naming a check the identified profile lacks raises ValueError.
    """
    return replace(
        device, profile=profile, checks=apply_overrides(profile.checks, device.config.checks)
    )


@dataclass(frozen=True)
class BadDevice:
    """A device definition that could not be used; the agent raises a fault for it."""

    id: str | None
    problems: list[str]


@dataclass(frozen=True)
class LoadedConfig:
    """A validated site config: the usable devices and the broken ones."""

    path: Path
    agent: AgentConfig
    devices: list[Device] = field(default_factory=list)
    bad_devices: list[BadDevice] = field(default_factory=list)
    trap_secrets: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def problems(self) -> list[str]:
        """Every problem found, one line each (a shared one, e.g. the credentials file, once)."""
        return list(dict.fromkeys(p for bad in self.bad_devices for p in bad.problems))


def _path_str(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _format_errors(src: YamlSource, base: Loc, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = (*base, *(p for p in err["loc"] if not str(p).startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        got = ""
        value = err.get("input")
        # Echo only scalar values of non-secret fields: merged targets carry credentials.
        echo = bool(err["loc"]) and str(err["loc"][-1]) not in SECRET_KEYS
        echo = (
            echo and not isinstance(value, dict | list) and not hasattr(value, "get_secret_value")
        )
        if echo and err["type"] not in ("missing", "extra_forbidden"):
            text = repr(value)
            got = f" (got {text[:60]}{'...' if len(text) > 60 else ''})"
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling)"
        problems.append(f"{src.where(loc)}: {_path_str(loc)}: {msg}{got}")
    return problems


def load_credentials(path: Path) -> dict[str, dict[str, Any]]:
    """Read the credentials file; refuse one that group or others can read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read credentials file: {exc.strerror}"]) from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        mode = oct(stat.S_IMODE(st.st_mode))[2:]
        raise ConfigError(
            [f"{path}: mode {mode} lets group/others read the credentials; run: chmod 600 {path}"]
        )
    try:
        src = load_yaml(path)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    data = src.data or {}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError([f"{path}: expected a mapping of credential name -> settings"])
    return data


def default_credentials_path(config_path: Path) -> Path:
    """systemd's LoadCredential directory if set, else credentials.yaml beside the config."""
    creds_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if creds_dir and (Path(creds_dir) / "credentials.yaml").exists():
        return Path(creds_dir) / "credentials.yaml"
    return config_path.parent / "credentials.yaml"


def _resolve(base: Path, p: Path | None) -> Path | None:
    return None if p is None else (p if p.is_absolute() else (base / p).resolve())


def load_config(path: Path, profiles: dict[str, GradedProfile] | None = None) -> LoadedConfig:
    """Validate a site config; raises ConfigError only for problems that stop the agent."""
    try:
        src = load_yaml(path)
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    if not isinstance(src.data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level"])
    try:
        agent = AgentConfig.model_validate(src.data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(src, (), exc)) from None
    base = path.resolve().parent
    agent = agent.model_copy(
        update={
            "state_dir": _resolve(base, agent.state_dir),
            "credentials_file": _resolve(base, agent.credentials_file),
            "hq": agent.hq.model_copy(update={"ca_file": _resolve(base, agent.hq.ca_file)}),
        }
    )
    creds_path = agent.credentials_file or default_credentials_path(path.resolve())
    creds: dict[str, dict[str, Any]] | None = None
    creds_problem: list[str] = []
    try:
        creds = load_credentials(creds_path)
    except ConfigError as exc:
        creds_problem = exc.problems
    profiles = builtin_profiles() if profiles is None else profiles
    traps = (creds or {}).get(TRAP_CREDENTIALS, {})
    loaded = LoadedConfig(path, agent, trap_secrets=traps if isinstance(traps, dict) else {})
    seen: set[str] = set()
    for i, raw in enumerate(agent.devices):
        loc: Loc = ("devices", i)
        dev_id = raw.get("id") if isinstance(raw.get("id"), str) else None
        if dev_id is not None and dev_id in seen:
            loaded.bad_devices.append(
                BadDevice(
                    None,
                    [
                        f"{src.where((*loc, 'id'))}: {_path_str((*loc, 'id'))}: "
                        f"duplicate device id {dev_id!r}"
                    ],
                )
            )
            continue
        if dev_id:
            seen.add(dev_id)
        result = _load_device(src, loc, raw, profiles, creds, creds_path, creds_problem)
        if isinstance(result, Device):
            loaded.devices.append(result)
        else:
            # An id HQ would refuse cannot name the device in a fault or the heartbeat.
            usable = dev_id if dev_id is not None and re.fullmatch(ID_PATTERN, dev_id) else None
            loaded.bad_devices.append(BadDevice(usable, result))
    return loaded


def _load_device(
    src: YamlSource,
    loc: Loc,
    raw: dict[str, Any],
    profiles: dict[str, GradedProfile],
    creds: dict[str, dict[str, Any]] | None,
    creds_path: Path,
    creds_problem: list[str],
) -> Device | list[str]:
    where = src.where(loc)
    try:
        dev = DeviceConfig.model_validate(raw)
    except ValidationError as exc:
        return _format_errors(src, loc, exc)
    given = dev.transports
    if dev.profile == AUTO_PROFILE.name:
        if "snmp" not in given:
            return [
                f"{src.where((*loc, 'profile'))}: {_path_str((*loc, 'profile'))}: "
                "name a profile; only SNMP devices can be recognised automatically"
            ]
        profiles = profiles | {AUTO_PROFILE.name: AUTO_PROFILE}
    if dev.profile not in profiles:
        known = ", ".join(sorted(profiles))
        return [
            f"{src.where((*loc, 'profile'))}: {_path_str((*loc, 'profile'))}: "
            f"unknown profile {dev.profile!r}; expected one of: {known}"
        ]
    profile = profiles[dev.profile]
    transport = profile.protocol
    if transport not in given:
        return [
            f"{where}: {_path_str(loc)}: profile {profile.name!r} speaks {transport}: "
            f"give a {transport} section"
        ]
    # Besides its polling transport, a device may have an ssh section for config backups.
    backup_ssh = (
        profile is AUTO_PROFILE or (profile.backup is not None and profile.backup.via == "ssh")
    ) and transport != "ssh"
    extra = [t for t in given if t != transport and not (t == "ssh" and backup_ssh)]
    if extra:
        return [
            f"{where}: {_path_str(loc)}: profile {profile.name!r} speaks {transport}; "
            f"the {' and '.join(extra)} section is not used by it"
        ]
    try:
        # An unidentified device gets its overrides once its profile is known.
        checks = [] if profile is AUTO_PROFILE else apply_overrides(profile.checks, dev.checks)
    except (ValueError, ValidationError) as exc:
        return [f"{src.where((*loc, 'checks'))}: {_path_str((*loc, 'checks'))}: {exc}"]
    secrets: dict[str, Any] = {}
    if (transport in TARGETS and transport != "serial") or "ssh" in given:
        if creds is None:
            return creds_problem
        cred_name = dev.credentials or dev.id
        if cred_name not in creds:
            return [
                f"{where}: {_path_str(loc)}: no entry {cred_name!r} in credentials file "
                f"{creds_path}"
            ]
        secrets = creds[cred_name]
    if transport == "host":
        target: Target = HostTarget.model_validate(dev.host or {})
    else:
        # A device polled by SNMP and backed up over SSH keeps its SSH login under `ssh:`.
        own = {k: v for k, v in secrets.items() if k != "ssh"} if transport != "ssh" else secrets
        try:
            target = TARGETS[transport].model_validate(dict(getattr(dev, transport)) | own)
        except ValidationError as exc:
            return _format_errors(src, (*loc, transport), exc)
    backup_target: SshTarget | None = None
    if "ssh" in given and transport != "ssh":
        ssh_secrets = secrets.get("ssh") or {}
        if not isinstance(ssh_secrets, dict):
            return [f"{where}: {_path_str(loc)}: credentials entry's ssh: must be a mapping"]
        try:
            backup_target = SshTarget.model_validate(dict(dev.ssh or {}) | ssh_secrets)
        except ValidationError as exc:
            return _format_errors(src, (*loc, "ssh"), exc)
    return Device(dev, profile, target, checks, backup_target)
