"""A simulated station: every device of a station definition on real loopback endpoints.

    config = load_station_config()            # None: the bundled demo station
    with SimulatedStation(config, workdir, ephemeral_ports=True) as station:
        station.manifest                      # where each device listens
        station.set_condition("tx1", "off_air")

`start()` returns once every endpoint listens; the work runs in background threads (one
asyncio loop for all SNMP agents, a thread per SSH session and per serial port).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from simulators.config import (
    SerialDeviceSpec,
    SnmpDeviceSpec,
    SshDeviceSpec,
    StationConfig,
    load_station_config,
)
from simulators.control import ControlServer
from simulators.devices import ConditionValue, SerialTxDevice, SimDevice
from simulators.errors import SimulatorError, UnknownDeviceError
from simulators.pbx import PbxDevice
from simulators.serial_port import SerialPortServer
from simulators.snmp_agent import SnmpServer
from simulators.snmp_data import SnmpDevice
from simulators.ssh_cli import SshCliServer

__all__ = ["SimulatedStation", "load_station_config"]

logger = logging.getLogger(__name__)


def _make_device(
    spec: SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec, source: Path
) -> SimDevice:
    if isinstance(spec, SnmpDeviceSpec):
        return SnmpDevice(spec, source)
    if isinstance(spec, SshDeviceSpec):
        return PbxDevice(spec)
    return SerialTxDevice(spec)


class SimulatedStation:
    """The devices of one station definition, served on 127.0.0.1 and controllable."""

    def __init__(
        self, config: StationConfig, workdir: Path, *, ephemeral_ports: bool = False
    ) -> None:
        self.config = config
        self.workdir = Path(workdir).resolve()
        self.ephemeral_ports = ephemeral_ports
        self.devices: dict[str, SimDevice] = {
            spec.id: _make_device(spec, config.source) for spec in config.devices
        }
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
                }
            elif isinstance(device, PbxDevice):
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
        self.device(device_id).set_condition(condition, value)

    def clear_condition(self, device_id: str, condition: str) -> None:
        """Deactivate a fault condition on a device."""
        self.device(device_id).clear_condition(condition)

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
        }

    def device_status(self) -> list[dict[str, Any]]:
        """Every device as the control API shows it."""
        return [self.device_info(device_id) for device_id in self.devices]
