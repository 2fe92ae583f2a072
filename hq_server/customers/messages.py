"""The texts of the customer notifications, in the customer's language (zh or en).

One table in one place, until the console's translation catalogues hold them: each message is
a subject and a body with {placeholders} filled by `render`.
"""

from __future__ import annotations

from typing import Any

# ruff: noqa: RUF001 -- Chinese text takes full-width punctuation

MESSAGES: dict[str, dict[str, tuple[str, str]]] = {
    "acknowledged": {
        "en": (
            "[{number}] Fault acknowledged: {title}",
            "Dear {contact},\n\nyour fault report {number} at site {site} (grade {grade}) was "
            "acknowledged at {at} by our service desk.\n\nFault: {title}\n"
            "Restore target: {restore_due}\n\nStationWatch service desk\n",
        ),
        "zh": (
            "[{number}] 故障已受理：{title}",
            "{contact}，您好：\n\n您在站点 {site} 的故障 {number}（等级 {grade}）已于 {at} "
            "由我方服务台受理。\n\n故障：{title}\n修复时限：{restore_due}\n\nStationWatch 服务台\n",
        ),
    },
    "resolved": {
        "en": (
            "[{number}] Fault resolved: {title}",
            "Dear {contact},\n\nthe fault {number} at site {site} (grade {grade}) was resolved "
            "at {at}.\n\nFault: {title}\nCause: {cause}\nFix: {fix}\n\n"
            "StationWatch service desk\n",
        ),
        "zh": (
            "[{number}] 故障已修复：{title}",
            "{contact}，您好：\n\n站点 {site} 的故障 {number}（等级 {grade}）已于 {at} 修复。\n\n"
            "故障：{title}\n原因：{cause}\n处理：{fix}\n\nStationWatch 服务台\n",
        ),
    },
}
NO_DEADLINE = {"en": "none", "zh": "无"}


def render(event: str, language: str, **values: Any) -> tuple[str, str]:
    """The subject and body of a notification in `language` (en when it has none)."""
    subject, body = MESSAGES[event].get(language, MESSAGES[event]["en"])
    return subject.format(**values), body.format(**values)
