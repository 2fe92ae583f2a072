"""Config backups on the agent: capture, scrub, keep versions, raise "configuration changed",
and upload the scrubbed text to HQ (retried until HQ has the latest version).

Scrubbing happens in collectors.backups.ConfigStore.record before anything is kept, logged or
sent: the raw text never leaves this module's call to it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from agent.errors import UplinkError
from collectors.backups import BackupResult, ConfigSource, ConfigStore
from collectors.errors import CollectorError
from collectors.scrub import Scrubber
from collectors.targets import SshTarget
from protocol.faults import CONFIG_CHANGED
from protocol.wire import BackupAck, ConfigBackup

if TYPE_CHECKING:
    from agent.config import Device
    from agent.runner import AgentRuntime

logger = logging.getLogger(__name__)


class BackupManager:
    """Runs config backups for the devices whose profile says how to take one."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.rt = runtime
        self.store = ConfigStore(runtime.loaded.agent.state_dir)

    def source(self, device: Device) -> ConfigSource | None:
        """Where this device's configuration comes from, if its profile says how to take one."""
        spec, ssh = device.profile.backup, device.profile.ssh
        if spec is not None and spec.via == "serial":
            # The port is opened exclusively: the polling collector itself takes the dump.
            collector = self.rt.collectors.get(device.id)
            return collector if hasattr(collector, "fetch_config") else None  # type: ignore[return-value]
        if spec is None or spec.via != "ssh" or ssh is None:
            return None
        if spec.command:
            ssh = ssh.model_copy(update={"config_command": spec.command})
        target = device.target if isinstance(device.target, SshTarget) else device.backup_target
        if target is None:
            return None  # an SNMP-polled device without an ssh: section for its backups
        from collectors.ssh import SshCollector  # paramiko only where SSH is used

        known_hosts = self.rt.loaded.agent.state_dir / "known_hosts"
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
        active = self.rt.tracker.view(device.id).is_active(CONFIG_CHANGED)
        changes = self.rt.tracker.apply(device.id, result.findings(active))
        await self.rt.commit(changes)
        await self.upload_latest(device.id)
        return result

    async def upload_latest(self, device_id: str) -> bool:
        """Send the newest kept version if HQ does not have it yet; False if HQ was not reached."""
        versions = self.store.versions(device_id)
        if not versions:
            return True
        latest = versions[-1]
        key = f"backup_sent:{device_id}"
        if self.rt.outbox.get_meta(key) == latest["sha256"]:
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
            ack = await self.rt.uplink.upload_backup(backup)
        except UplinkError as exc:
            logger.warning(
                "site=%s device=%s backup upload deferred: %s", self.rt.site, device_id, exc
            )
            return False
        await asyncio.to_thread(self.rt.outbox.set_meta, key, latest["sha256"])
        logger.info(
            "site=%s device=%s backup stored at HQ as version %d (%s)",
            self.rt.site,
            device_id,
            ack.version,
            _ack_note(ack),
        )
        return True

    async def run(self) -> None:
        """Back up every supported device periodically (and retry pending uploads)."""
        interval = self.rt.loaded.agent.backups.interval_s
        while True:
            for device in list(self.rt.loaded.devices):
                if not self.supports(device):
                    continue
                try:
                    result = await self.backup(device)
                    logger.info(
                        "site=%s device=%s config backup: %s",
                        self.rt.site,
                        device.id,
                        result.status,
                    )
                except (CollectorError, TimeoutError, OSError, ValueError) as exc:
                    # Reachability is the poll loop's business; here it only delays the backup.
                    logger.warning(
                        "site=%s device=%s config backup failed: %s", self.rt.site, device.id, exc
                    )
            await asyncio.sleep(interval)


def _ack_note(ack: BackupAck) -> str:
    """What HQ's answer means: HQ says `changed: false` for a device's first version too."""
    if ack.changed:
        return "changed"
    return "first version" if ack.version == 1 else "unchanged"
