"""Fault codes with a meaning of their own on both sides (the agent raises them, HQ treats some
specially); profile-defined codes (off_air, vswr_high, ...) live in the device profiles."""

from __future__ import annotations

from typing import Final

# The agent could not get an answer from a device (timeout, refused, bad credentials, host key).
UNREACHABLE: Final = "unreachable"
# The device answered, but with nothing the agent could use (garbage, a crash in parsing).
UNREADABLE: Final = "unreadable"
# The site file's definition of a device is invalid: the device is not monitored.
CONFIG_INVALID: Final = "config_invalid"
# A poll yielded none of the profile's key readings: probably the wrong profile.
PROFILE_MISMATCH: Final = "profile_mismatch"
# A significant change of a device's configuration (backup differs from the last one).
CONFIG_CHANGED: Final = "config_changed"
# HQ's own fault: a site's agent has stopped sending heartbeats (dead man's switch).
SITE_UNREACHABLE: Final = "site_unreachable"

# The titles of the codes above, in English and Simplified Chinese: the one place both sides
# take them from (the agent's findings, HQ's own alarms, the console).
TITLES: Final[dict[str, tuple[str, str]]] = {
    UNREACHABLE: ("Device unreachable", "设备不可达"),
    UNREADABLE: ("Device answers unreadable data", "设备返回无法解析的数据"),
    CONFIG_INVALID: (
        "Device definition invalid: device not monitored",
        "设备定义无效：该设备未受监控",  # noqa: RUF001
    ),
    PROFILE_MISMATCH: (
        "Profile mismatch: the device gives none of its profile's key readings",
        "设备模板不匹配：设备未返回其模板的任何关键读数",  # noqa: RUF001
    ),
    CONFIG_CHANGED: ("Configuration changed", "配置已更改"),
    SITE_UNREACHABLE: (
        "Site unreachable: no heartbeat from its agents",
        "站点不可达：未收到其代理的心跳",  # noqa: RUF001
    ),
}


def title(code: str) -> str:
    """The English title of one of the codes above."""
    return TITLES[code][0]


def title_zh(code: str) -> str:
    """The Chinese title of one of the codes above ("" for another code)."""
    entry = TITLES.get(code)
    return entry[1] if entry else ""
