"""Paging channels: one small module per way of reaching a contact, behind one interface.

    base.py         Page (what a page says), Channel (the interface), ChannelRegistry
    errors.py       ChannelConfigError, DeliveryError, RegistryError
    catalogue.py    the wording per language (zh-CN, en); compose.py builds texts from it
    validation.py   URL, phone, e-mail and secret checks shared by the channels' settings
    transport.py    one bounded HTTP attempt, secrets kept out of errors and httpx's log
    email.py webhook.py dingtalk.py wecom.py feishu.py sms.py    the channels
    deliver.py      a contact's channels in order, falling back; several contacts at once

Depends on the standard library, httpx and pydantic only (nothing else of hq_server), so the
outbox and the on-call rotas can use it without the channels knowing about either.
"""

from __future__ import annotations

from hq_server.channels.base import (
    Channel,
    ChannelClass,
    ChannelConfig,
    ChannelOptions,
    ChannelRegistry,
    DigestItem,
    EventKind,
    Page,
    Prepared,
    Timeouts,
)
from hq_server.channels.deliver import Attempt, DeliveryOutcome, deliver, deliver_each
from hq_server.channels.dingtalk import DingTalkChannel
from hq_server.channels.email import EmailChannel
from hq_server.channels.errors import ChannelConfigError, ChannelError, DeliveryError, RegistryError
from hq_server.channels.feishu import FeishuChannel
from hq_server.channels.sms import SmsChannel
from hq_server.channels.webhook import WebhookChannel
from hq_server.channels.wecom import WeComChannel

BUILTIN: tuple[ChannelClass, ...] = (
    EmailChannel,
    WebhookChannel,
    DingTalkChannel,
    WeComChannel,
    FeishuChannel,
    SmsChannel,
)


def builtin_registry() -> ChannelRegistry:
    """A registry holding the built-in channels (a new one each call; add your own to it)."""
    registry = ChannelRegistry()
    for cls in BUILTIN:
        registry.register(cls)
    return registry


__all__ = [
    "BUILTIN",
    "Attempt",
    "Channel",
    "ChannelClass",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelError",
    "ChannelOptions",
    "ChannelRegistry",
    "DeliveryError",
    "DeliveryOutcome",
    "DigestItem",
    "EventKind",
    "Page",
    "Prepared",
    "RegistryError",
    "Timeouts",
    "builtin_registry",
    "deliver",
    "deliver_each",
]
