"""Fault titles in the reader's language: the Chinese title a profile gave (title_zh, kept on
alarms and tickets) when the console speaks Chinese and one is known, else the English one."""

from __future__ import annotations

from typing import Protocol

from hq_server.web.i18n import Translator


class Titled(Protocol):
    """An alarm or a ticket."""

    title: str
    title_zh: str


def fault_title(t: Translator, row: Titled) -> str:
    """`row`'s title in `t`'s language, when known in it."""
    if t.language == "zh_CN" and row.title_zh:
        return row.title_zh
    return row.title
