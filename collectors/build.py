"""Making the right collector for a device from its profile and its target."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from collectors.base import Collector
from collectors.profiles import Profile
from collectors.targets import HostTarget, SerialTarget, SnmpTarget, SshTarget

if TYPE_CHECKING:
    from collectors.snmp import SnmpEngineHolder

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
    # Imported on demand: a site without SSH or serial devices never loads paramiko/pyserial
    # (the agent's memory budget on a small station box).
    if isinstance(target, SnmpTarget):
        from collectors.snmp import SnmpCollector

        assert profile.snmp is not None  # Profile validates the section for its protocol
        return SnmpCollector(device_id, target, profile.snmp, snmp_engine)
    if isinstance(target, SshTarget):
        from collectors.ssh import SshCollector

        assert profile.ssh is not None
        return SshCollector(device_id, target, profile.ssh, known_hosts)
    if isinstance(target, HostTarget):
        from collectors.host import HostCollector

        # The agent's state dir (next to known_hosts) always gets a disk reading.
        return HostCollector(device_id, [known_hosts.parent, *target.extra_paths])
    from collectors.serial import SerialCollector

    assert profile.serial is not None
    return SerialCollector(device_id, target, profile.serial)
