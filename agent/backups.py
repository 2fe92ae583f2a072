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
from agent.wire import ConfigBackup
from collectors.backups import CONFIG_CHANGED, BackupResult, ConfigStore
from collectors.errors import CollectorError
from collectors.scrub import Scrubber

if TYPE_CHECKING:
    from agent.config import Device
    from agent.runner import AgentRuntime

logger = logging.getLogger(__name__)


class BackupManager:
    """Runs config backups for the devices whose profile says how to take one."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.rt = runtime
        self.store = ConfigStore(runtime.loaded.agent.state_dir)

    def supports(self, device: Device) -> bool:
        """Whether this device's configuration can be backed up now."""
        spec = device.profile.backup
        collector = self.rt.collectors.get(device.id)
        return bool(spec and spec.via == "ssh" and hasattr(collector, "fetch_config"))

    async def backup(self, device: Device, job_id: object = None) -> BackupResult:
        """Take one backup; raise or clear the config_changed fault; upload when new."""
        collector = self.rt.collectors[device.id]
        fetch = collector.fetch_config  # type: ignore[attr-defined]
        timeout = getattr(device.target, "timeout_s", 10.0) * 6
        raw = await asyncio.wait_for(fetch(), timeout)
        scrubber = Scrubber.for_backup(device.profile.backup)
        result = await asyncio.to_thread(self.store.record, device.id, raw, scrubber)
        del raw
        active = self.rt.tracker.view(device.id).is_active(CONFIG_CHANGED)
        changes = self.rt.tracker.apply(device.id, result.findings(active))
        await self.rt._commit(changes)
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
            "site=%s device=%s backup stored at HQ as version %d%s",
            self.rt.site,
            device_id,
            ack.version,
            "" if ack.changed else " (unchanged)",
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
