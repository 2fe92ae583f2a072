"""Grading a configuration backup: collectors.backups says whether the configuration changed
significantly and gives the scrubbed diff; here that becomes the `config_changed` fault.

A significant change raises config_changed (grade 4) with the diff; a change while the fault is
still raised clears and raises it again, so the new diff is not lost. A later backup without a
significant change clears it.
"""

from __future__ import annotations

from checks.base import Finding
from collectors.backups import BackupResult
from collectors.base import Value
from protocol import faults
from protocol.faults import CONFIG_CHANGED
from protocol.grades import Grade

CONFIG_CHANGED_TITLE = faults.title(faults.CONFIG_CHANGED)
CONFIG_CHANGED_TITLE_ZH = faults.title_zh(faults.CONFIG_CHANGED)
CONFIG_CHANGED_GRADE = Grade.MINOR
DETAIL_MAX = 1900  # the wire's fault detail holds 2,000 characters


def change_findings(result: BackupResult, active: bool) -> list[Finding]:
    """Findings for the fault tracker; `active`: config_changed is raised now."""
    grade, title, zh = CONFIG_CHANGED_GRADE, CONFIG_CHANGED_TITLE, CONFIG_CHANGED_TITLE_ZH
    if result.significant:
        values: dict[str, Value] = {
            "sha256": result.sha256,
            "previous_sha256": result.previous_sha256,
        }
        detail = change_detail(result)
        raised = Finding(CONFIG_CHANGED, "", True, grade, title, detail, values, zh)
        if not active:
            return [raised]
        again = Finding(CONFIG_CHANGED, "", False, grade, title, "changed again", title_zh=zh)
        return [again, raised]
    if active and result.status in ("unchanged", "noise"):
        detail = f"no further change (sha256 {result.sha256[:12]})"
        return [Finding(CONFIG_CHANGED, "", False, grade, title, detail, title_zh=zh)]
    return []


def change_detail(result: BackupResult) -> str:
    """The diff, cut to what a fault event carries, naming the versions."""
    head = f"config {(result.previous_sha256 or '-')[:12]} -> {result.sha256[:12]}\n"
    body = result.diff
    if len(head) + len(body) > DETAIL_MAX:
        cut = body[: DETAIL_MAX - len(head) - 40]
        cut = cut[: cut.rfind("\n") + 1] if "\n" in cut else cut
        more = body[len(cut) :].count("\n")
        body = f"{cut}... ({more} more diff lines)\n"
    return head + body
