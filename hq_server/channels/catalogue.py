"""The wording of pages, one dictionary per language (zh-CN, en).

Plain keys and str.format placeholders, so the entries move to gettext/Babel catalogues
unchanged when the console brings them. The grade names are the project's (protocol/grades.py
for English, a test keeps the two the same).
"""

from __future__ import annotations

# ruff: noqa: RUF001 -- Chinese text takes full-width punctuation

CATALOGUE: dict[str, dict[str, str]] = {
    "zh-CN": {
        "prefix": "[StationWatch]",
        "event.opened": "新故障",
        "event.regraded": "故障等级变更",
        "event.repeat": "故障仍未确认",
        "event.escalated": "故障已升级",
        "event.digest": "故障汇总",
        "event.acknowledged": "故障已确认",
        "event.resolved": "故障已恢复",
        "event.undelivered": "寻呼未能送达",
        "digest.more": "列出最严重的{shown}张，其余请在控制台查看。",
        "undelivered.detail": "未能通知{user}：{error}",
        "grade.1": "重大故障",
        "grade.2": "严重故障",
        "grade.3": "一般故障",
        "grade.4": "轻微故障",
        "grade.5": "需求",
        "grade.label": "{grade}级 {name}",
        "grade.label.own": "{own}（{grade}级 {name}）",
        "grade.value": "{grade}级 {name}",
        "grade.value.own": "{own}（{grade}级 {name}）",
        "field.sep": "：",
        "field.grade": "等级",
        "field.site": "站点",
        "field.device": "设备",
        "field.ticket": "工单",
        "field.title": "故障",
        "field.detail": "详情",
        "field.deadline.ack": "确认期限",
        "field.deadline.restore": "恢复期限",
        "deadline.format": "{time}（{zone}，UTC{offset}）",
        "sms.deadline.ack": "{time}前确认",
        "sms.deadline.restore": "{time}前恢复",
        "link.ticket": "查看工单",
        "link.tickets": "查看工单列表",
        "digest.count": "共{count}张工单",
        "footer": "此消息由 StationWatch 自动发送。",
    },
    "en": {
        "prefix": "[StationWatch]",
        "event.opened": "New fault",
        "event.regraded": "Fault regraded",
        "event.repeat": "Still not acknowledged",
        "event.escalated": "Fault escalated",
        "event.digest": "Fault digest",
        "event.acknowledged": "Fault acknowledged",
        "event.resolved": "Fault resolved",
        "event.undelivered": "Page not delivered",
        "digest.more": "The {shown} worst are listed; see the console for the rest.",
        "undelivered.detail": "{user} could not be paged: {error}",
        "grade.1": "major system fault",
        "grade.2": "severe fault",
        "grade.3": "general fault",
        "grade.4": "minor fault",
        "grade.5": "request",
        "grade.label": "grade {grade} {name}",
        "grade.label.own": "grade {own} ({grade}, {name})",
        "grade.value": "{grade} ({name})",
        "grade.value.own": "{own} ({grade}, {name})",
        "field.sep": ": ",
        "field.grade": "Grade",
        "field.site": "Site",
        "field.device": "Device",
        "field.ticket": "Ticket",
        "field.title": "Fault",
        "field.detail": "Detail",
        "field.deadline.ack": "Acknowledge by",
        "field.deadline.restore": "Restore by",
        "deadline.format": "{time} ({zone}, UTC{offset})",
        "sms.deadline.ack": "ack by {time}",
        "sms.deadline.restore": "restore by {time}",
        "link.ticket": "Open the ticket",
        "link.tickets": "Open the tickets",
        "digest.count": "{count} tickets",
        "footer": "Sent automatically by StationWatch.",
    },
}


def message(language: str, key: str, **values: object) -> str:
    """The catalogue entry `key` in `language`, formatted with `values`."""
    return CATALOGUE[language][key].format(**values)
