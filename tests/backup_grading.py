"""A config store whose results carry their grading, as the agent's BackupManager grades them:
collectors.backups says what changed, checks.config_change makes it a fault."""

from __future__ import annotations

from typing import Any

from checks.base import Finding
from checks.config_change import change_findings
from collectors.backups import BackupResult, ConfigStore


class GradedBackup:
    """A BackupResult (its fields read through) with `findings(active)`."""

    def __init__(self, result: BackupResult) -> None:
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def findings(self, active: bool) -> list[Finding]:
        """What the fault tracker gets; `active`: config_changed is raised now."""
        return change_findings(self.result, active)


class GradingStore(ConfigStore):
    """ConfigStore whose `record` results are GradedBackups."""

    def record(self, *args: Any, **kwargs: Any) -> GradedBackup:  # type: ignore[override]
        """Record a capture (ConfigStore.record) and grade it."""
        return GradedBackup(super().record(*args, **kwargs))
