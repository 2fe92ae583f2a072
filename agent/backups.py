"""Config backups on the agent: capture, scrub, keep versions, raise "configuration changed",
and upload the scrubbed text to HQ (retried until HQ has the latest version).

Scrubbing happens in collectors.backups.ConfigStore.record before anything is kept, logged or
sent: the raw text never leaves this module's call to it. What a change means as a fault is
checks.config_change's to say; the finding goes to the fault sink like any other.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from agent.config import AgentConfig, Device
from agent.devices import DeviceSet
from agent.errors import UplinkError
from agent.faults import FaultSink
from agent.state import StateDir
from agent.uplink import Uplink
from checks.config_change import change_findings
from collectors.backups import BackupResult, ConfigSource, ConfigStore
from collectors.errors import CollectorError
from collectors.scrub import Scrubber
from collectors.targets import SshTarget
from protocol.faults import CONFIG_CHANGED
from protocol.wire import BackupAck, ConfigBackup

logger = logging.getLogger(__name__)


class BackupManager:
    """Runs config backups for the devices whose profile says how to take one."""

    def __init__(
        self, faults: FaultSink, devices: DeviceSet, uplink: Uplink, config: AgentConfig
    ) -> None:
        """`config`: the agent's settings (site, state dir, backup interval)."""
        self.faults = faults
        self.devices = devices
        self.uplink = uplink  # the agent replaces it when a reload names another HQ
        self.config = config
        self.store = ConfigStore(config.state_dir)

    def source(self, device: Device) -> ConfigSource | None:
        """Where this device's configuration comes from, if its profile says how to take one."""
        spec, ssh = device.profile.backup, device.profile.ssh
        if spec is not None and spec.via == "serial":
            # The port is opened exclusively: the polling collector itself takes the dump.
            collector = self.devices.collectors.get(device.id)
            return collector if hasattr(collector, "fetch_config") else None  # type: ignore[return-value]
        if spec is None or spec.via != "ssh" or ssh is None:
            return None
        if spec.command:
            ssh = ssh.model_copy(update={"config_command": spec.command})
        target = device.target if isinstance(device.target, SshTarget) else device.backup_target
        if target is None:
            return None  # an SNMP-polled device without an ssh: section for its backups
        from collectors.ssh import SshCollector  # paramiko only where SSH is used

        known_hosts = StateDir(self.config.state_dir).known_hosts
        return SshCollector(device.id, target, ssh, known_hosts)

    def supports(self, device: Device) -> bool:
        """Whether this device's configuration can be backed up."""
        return self.source(device) is not None

    async def backup(self, device: Device) -> BackupResult:
        """Take one backup; raise or clear the config_changed fault; upload when new."""
        source = self.source(device)
        if source is None:
            raise ValueError(f"{device.id}: no way to back up this device's configuration")
        timeout = getattr(device.target, "timeout_s", 10.0) * 6
        raw = await asyncio.wait_for(source.fetch_config(), timeout)
        scrubber = Scrubber.for_backup(device.profile.backup)
        result = await asyncio.to_thread(self.store.record, device.id, raw, scrubber)
        del raw
        active = self.faults.tracker.view(device.id).is_active(CONFIG_CHANGED)
        await self.faults.record(device.id, change_findings(result, active))
        await self.upload_latest(device.id)
        return result

    async def upload_latest(self, device_id: str) -> bool:
        """Send the newest kept version if HQ does not have it yet; False if HQ was not reached."""
        versions = self.store.versions(device_id)
        if not versions:
            return True
        latest = versions[-1]
        key = f"backup_sent:{device_id}"
        if self.faults.outbox.get_meta(key) == latest["sha256"]:
            return True
        text = self.store.latest_text(device_id)
        if text is None:
            return True
        backup = ConfigBackup(
            device_id=device_id,
            sha256=latest["sha256"],
            text=text,
            taken_at=datetime.fromisoformat(latest["taken_at"]),
        )
        try:
            ack = await self.uplink.upload_backup(backup)
        except UplinkError as exc:
            logger.warning(
                "site=%s device=%s backup upload deferred: %s", self.config.site, device_id, exc
            )
            return False
        await self.faults.in_db(self.faults.outbox.set_meta, key, latest["sha256"])
        logger.info(
            "site=%s device=%s backup stored at HQ as version %d (%s)",
            self.config.site,
            device_id,
            ack.version,
            _ack_note(ack),
        )
        return True

    async def run(self) -> None:
        """Back up every supported device periodically (and retry pending uploads)."""
        while True:
            for device in list(self.devices.devices):
                if not self.supports(device):
                    continue
                try:
                    result = await self.backup(device)
                    logger.info(
                        "site=%s device=%s config backup: %s",
                        self.config.site,
                        device.id,
                        result.status,
                    )
                except (CollectorError, TimeoutError, OSError, ValueError) as exc:
                    # Reachability is the poll loop's business; here it only delays the backup.
                    logger.warning(
                        "site=%s device=%s config backup failed: %s",
                        self.config.site,
                        device.id,
                        exc,
                    )
            await asyncio.sleep(self.config.backups.interval_s)


def _ack_note(ack: BackupAck) -> str:
    """What HQ's answer means: HQ says `changed: false` for a device's first version too."""
    if ack.changed:
        return "changed"
    return "first version" if ack.version == 1 else "unchanged"
