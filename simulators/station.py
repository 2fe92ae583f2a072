"""A simulated station: every device of a station definition on real loopback endpoints.

    config = load_station_config()            # None: the bundled demo station
    with SimulatedStation(config, workdir, ephemeral_ports=True) as station:
        station.manifest                      # where each device listens
        station.set_condition("tx1", "off_air")

`start()` returns once every endpoint listens; the work runs in background threads (one
asyncio loop for all SNMP agents, a thread per SSH session and per serial port).

Many devices: `config.with_replicas({"tx1": 50})` (or `replicas: 50` in the station file)
serves tx1-01 ... tx1-50, each with its own port and conditions; SNMP replicas share the
parsed capture, so 50 cost little more than one.

Traps: `station.send_trap("sw1", preset="linkDown", target="127.0.0.1:1162")`, informs with
`inform=True` (retried until acknowledged), `station.trap_storm(...)` for storm tests.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from simulators.codec import CodecDevice
from simulators.config import (
    AnyDeviceSpec,
    CodecCli,
    SnmpDeviceSpec,
    SshDeviceSpec,
    StationConfig,
    expand_device,
    load_station_config,
    varbind_record,
)
from simulators.control import ControlServer
from simulators.devices import ConditionValue, SerialTxDevice, SimDevice
from simulators.errors import ConditionError, SimulatorError, UnknownDeviceError
from simulators.pbx import PbxDevice
from simulators.serial_port import SerialPortServer
from simulators.snmp_agent import Notification, SnmpServer
from simulators.snmp_data import SnmpDevice
from simulators.snmprec import Record
from simulators.ssh_cli import SshCliServer

__all__ = ["SimulatedStation", "load_station_config"]

logger = logging.getLogger(__name__)


def _make_device(spec: AnyDeviceSpec, source: Path) -> SimDevice:
    if isinstance(spec, SnmpDeviceSpec):
        return SnmpDevice(spec, source)
    if isinstance(spec, SshDeviceSpec):
        return CodecDevice(spec) if isinstance(spec.cli, CodecCli) else PbxDevice(spec)
    return SerialTxDevice(spec)


def _make_devices(config: StationConfig) -> dict[str, SimDevice]:
    """Every served device; replicas of one definition share its parsed data."""
    devices: dict[str, SimDevice] = {}
    for spec in config.devices:
        first: SimDevice | None = None
        for one in expand_device(spec):
            device = _make_device(one, config.source) if first is None else first.replica(one)
            first = first or device
            devices[one.id] = device
    return devices


def parse_target(text: str) -> tuple[str, int]:
    """'127.0.0.1:1162' -> ('127.0.0.1', 1162); only loopback targets (ConditionError)."""
    host, sep, port = text.rpartition(":")
    if not sep or host not in ("127.0.0.1", "localhost") or not port.isdigit():
        raise ConditionError(f"a trap target is 127.0.0.1:PORT, not {text!r}")
    number = int(port)
    if not 0 < number < 65536:
        raise ConditionError(f"bad port in trap target {text!r}")
    return "127.0.0.1", number


class SimulatedStation:
    """The devices of one station definition, served on 127.0.0.1 and controllable."""

    def __init__(
        self, config: StationConfig, workdir: Path, *, ephemeral_ports: bool = False
    ) -> None:
        self.config = config
        self.workdir = Path(workdir).resolve()
        self.ephemeral_ports = ephemeral_ports
        self.devices: dict[str, SimDevice] = _make_devices(config)
        self._endpoints: dict[str, dict[str, Any]] = {}
        self._snmp: SnmpServer | None = None
        self._ssh: list[SshCliServer] = []
        self._serial: list[SerialPortServer] = []
        self._control: ControlServer | None = None

    def _port(self, configured: int) -> int:
        return 0 if self.ephemeral_ports else configured

    def start(self) -> None:
        """Open every endpoint and the control API; returns once all of them listen."""
        if self._control is not None:
            raise SimulatorError("the station is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_devices()
            control = ControlServer(self, self._port(self.config.control.port))
            control.start()
            self._control = control
        except BaseException:
            self.stop()
            raise
        logger.info(
            "station %s running: %d devices, control API %s",
            self.config.name,
            len(self.devices),
            self.control_url,
        )

    def _start_devices(self) -> None:
        for device in self.devices.values():
            spec = device.spec
            if isinstance(device, SnmpDevice) and isinstance(spec, SnmpDeviceSpec):
                if self._snmp is None:
                    self._snmp = SnmpServer()
                    self._snmp.start()
                port = self._snmp.add(device, self._port(spec.port))
                self._endpoints[device.id] = {
                    "protocol": "snmp",
                    "host": "127.0.0.1",
                    "port": port,
                    "community": spec.community,
                    "profile": spec.profile,
                    "traps": sorted(spec.traps),
                }
            elif isinstance(device, PbxDevice | CodecDevice):
                ssh = SshCliServer(device, self.workdir / f"{device.id}_host_key")
                self._ssh.append(ssh)
                port = ssh.start(self._port(device.spec.port))
                self._endpoints[device.id] = {
                    "protocol": "ssh",
                    "host": "127.0.0.1",
                    "port": port,
                    "username": device.spec.username,
                    "password": device.spec.password,
                    "profile": device.spec.profile,
                    "host_key": str(self.workdir / f"{device.id}_host_key"),
                }
            elif isinstance(device, SerialTxDevice):
                link = self.workdir / (device.spec.link or f"{device.id}.tty")
                serial = SerialPortServer(device, link)
                self._serial.append(serial)
                serial.start()
                self._endpoints[device.id] = {
                    "protocol": "serial",
                    "port": str(link),
                    "profile": device.spec.profile,
                }

    def stop(self) -> None:
        """Close every endpoint (safe to call twice, or after a failed start)."""
        if self._control is not None:
            self._control.stop()
            self._control = None
        for ssh in self._ssh:
            ssh.stop()
        for serial in self._serial:
            serial.stop()
        if self._snmp is not None:
            self._snmp.stop()
            self._snmp = None
        self._ssh, self._serial = [], []
        self._endpoints = {}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether start() has completed and stop() has not been called."""
        return self._control is not None

    @property
    def control_url(self) -> str:
        """Base URL of the control API."""
        if self._control is None:
            raise SimulatorError("the station is not running")
        return f"http://127.0.0.1:{self._control.port}"

    @property
    def manifest(self) -> dict[str, Any]:
        """Where everything listens (JSON-able): control URL and one entry per device."""
        return {
            "control_url": self.control_url,
            "devices": {device_id: dict(ep) for device_id, ep in self._endpoints.items()},
        }

    def ssh_sessions(self) -> int:
        """SSH connections open now, on every SSH device."""
        return sum(server.sessions for server in self._ssh)

    def device(self, device_id: str) -> SimDevice:
        """The device with that id."""
        try:
            return self.devices[device_id]
        except KeyError:
            raise UnknownDeviceError(
                f"no device {device_id!r}; devices: {', '.join(self.devices)}"
            ) from None

    def set_condition(self, device_id: str, condition: str, value: ConditionValue = None) -> None:
        """Activate a fault condition on a device (ConditionError if it does not apply)."""
        device = self.device(device_id)
        device.set_condition(condition, value)
        self._condition_trap(device, condition, cleared=False)

    def clear_condition(self, device_id: str, condition: str) -> None:
        """Deactivate a fault condition on a device."""
        device = self.device(device_id)
        was_active = condition in device.active_conditions()
        device.clear_condition(condition)
        if was_active:
            self._condition_trap(device, condition, cleared=True)

    def _condition_trap(self, device: SimDevice, condition: str, *, cleared: bool) -> None:
        """Send the trap a condition declares (if the station has a default trap target)."""
        spec = device.spec
        target = self.config.traps.target
        if not isinstance(spec, SnmpDeviceSpec) or target is None or self._snmp is None:
            return
        cond = spec.conditions.get(condition)
        preset = None if cond is None else cond.clear_trap if cleared else cond.trap
        if preset is not None:
            note = self._notification(device.id, preset=preset, target=target)
            self._snmp.notify_later(device.id, note)

    # --- notifications ----------------------------------------------------------------------

    def _notification(
        self,
        device_id: str,
        *,
        preset: str | None = None,
        trap_oid: str | None = None,
        varbinds: list[Any] | None = None,
        target: str | None = None,
        inform: bool = False,
        community: str | None = None,
    ) -> Notification:
        device = self.device(device_id)
        spec = device.spec
        if not isinstance(spec, SnmpDeviceSpec):
            raise ConditionError(f"{device_id} is an {device.protocol} device: it sends no traps")
        extra: list[Record] = []
        if preset is not None:
            found = spec.traps.get(preset)
            if found is None:
                known = ", ".join(spec.traps) or "none"
                raise ConditionError(f"{device_id} has no trap preset {preset!r}; presets: {known}")
            trap_oid = trap_oid or found.oid
            extra = [varbind_record(list(vb)) for vb in found.varbinds]
        if trap_oid is None:
            raise ConditionError("give a trap_oid or a preset")
        try:
            if varbinds is not None:
                extra = [varbind_record(vb) for vb in varbinds]
            where = target or self.config.traps.target
            if where is None:
                raise ConditionError("no trap target given and the station file sets none")
            host_port = parse_target(where)
            settings = self.config.traps
            return Notification(
                target=host_port,
                community=community or settings.community,
                trap_oid=".".join(str(int(p)) for p in trap_oid.strip(".").split(".")),
                varbinds=extra,
                inform=inform,
                timeout_s=settings.inform_timeout_s,
                retries=settings.inform_retries,
            )
        except ValueError as exc:
            raise ConditionError(f"bad trap for {device_id}: {exc}") from None

    def send_trap(
        self,
        device_id: str,
        *,
        preset: str | None = None,
        trap_oid: str | None = None,
        varbinds: list[Any] | None = None,
        target: str | None = None,
        inform: bool = False,
        community: str | None = None,
    ) -> dict[str, Any]:
        """Send a v2c trap (or an inform, retried until acknowledged) from an SNMP device."""
        note = self._notification(
            device_id,
            preset=preset,
            trap_oid=trap_oid,
            varbinds=varbinds,
            target=target,
            inform=inform,
            community=community,
        )
        if self._snmp is None:
            raise SimulatorError("the station is not running")
        result: dict[str, Any] = self._snmp.notify(device_id, note)
        return {"device": device_id, "target": f"{note.target[0]}:{note.target[1]}", **result}

    def trap_storm(
        self,
        device_id: str,
        *,
        count: int,
        rate: float,
        preset: str | None = None,
        trap_oid: str | None = None,
        varbinds: list[Any] | None = None,
        target: str | None = None,
        community: str | None = None,
    ) -> dict[str, Any]:
        """Send `count` identical traps at `rate` per second; returns once all are sent."""
        note = self._notification(
            device_id,
            preset=preset,
            trap_oid=trap_oid,
            varbinds=varbinds,
            target=target,
            community=community,
        )
        if self._snmp is None:
            raise SimulatorError("the station is not running")
        try:
            result: dict[str, Any] = self._snmp.storm(device_id, note, count, rate)
        except ValueError as exc:
            raise ConditionError(f"bad trap storm: {exc}") from None
        return {"device": device_id, "target": f"{note.target[0]}:{note.target[1]}", **result}

    def reset(self, device_id: str | None = None) -> None:
        """Clear every condition of one device, or of all devices."""
        targets = [self.device(device_id)] if device_id else list(self.devices.values())
        for device in targets:
            device.reset()

    def device_info(self, device_id: str) -> dict[str, Any]:
        """One device as the control API shows it."""
        device = self.device(device_id)
        ep = self._endpoints.get(device_id, {})
        if ep.get("protocol") == "snmp":
            endpoint = f"udp:{ep['host']}:{ep['port']}"
        elif ep.get("protocol") == "ssh":
            endpoint = f"ssh://{ep['host']}:{ep['port']}"
        else:
            endpoint = str(ep.get("port", ""))
        return {
            "id": device.id,
            "protocol": device.protocol,
            "device_class": device.spec.device_class,
            "profile": device.spec.profile,
            "endpoint": endpoint,
            "active_conditions": device.active_conditions(),
            "allowed_conditions": device.allowed_conditions,
            **(
                {"trap_presets": sorted(device.spec.traps)}
                if isinstance(device.spec, SnmpDeviceSpec)
                else {}
            ),
        }

    def device_status(self) -> list[dict[str, Any]]:
        """Every device as the control API shows it."""
        return [self.device_info(device_id) for device_id in self.devices]
