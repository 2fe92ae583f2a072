"""Making the right collector for a device from its profile and its target."""

from __future__ import annotations

from pathlib import Path

from collectors.base import Collector
from collectors.host import HostCollector
from collectors.profiles import Profile
from collectors.serial import SerialCollector
from collectors.snmp import SnmpCollector, SnmpEngineHolder
from collectors.ssh import SshCollector
from collectors.targets import HostTarget, SerialTarget, SnmpTarget, SshTarget

_TARGET_PROTOCOL: dict[type, str] = {
    SnmpTarget: "snmp",
    SshTarget: "ssh",
    SerialTarget: "serial",
    HostTarget: "host",
}


def make_collector(
    device_id: str,
    profile: Profile,
    target: SnmpTarget | SshTarget | SerialTarget | HostTarget,
    *,
    snmp_engine: SnmpEngineHolder,
    known_hosts: Path,
) -> Collector:
    """The collector for a device; ValueError when the target's protocol is not the profile's."""
    given = _TARGET_PROTOCOL.get(type(target), type(target).__name__)
    if given != profile.protocol:
        raise ValueError(
            f"device {device_id!r}: profile {profile.name!r} speaks {profile.protocol}, "
            f"but the device's connection settings are for {given}"
        )
    if isinstance(target, SnmpTarget):
        assert profile.snmp is not None  # Profile validates the section for its protocol
        return SnmpCollector(device_id, target, profile.snmp, snmp_engine)
    if isinstance(target, SshTarget):
        assert profile.ssh is not None
        return SshCollector(device_id, target, profile.ssh, known_hosts)
    if isinstance(target, HostTarget):
        # The agent's state dir (next to known_hosts) always gets a disk reading.
        return HostCollector(device_id, [known_hosts.parent, *target.extra_paths])
    assert profile.serial is not None
    return SerialCollector(device_id, target, profile.serial)
