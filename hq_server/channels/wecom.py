"""WeCom (WeChat Work, 企业微信) group robot (群机器人).

Vendor documentation: https://developer.work.weixin.qq.com/document/path/91770 (群机器人配置说明)

The robot's webhook is https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<UUID>. There is
no signature: the key in the URL is the secret, so the URL is never logged or shown. The body
is JSON, UTF-8:

- {"msgtype": "markdown", "markdown": {"content": ...}}: content at most 4096 bytes; WeCom's
  markdown cannot mention people by mobile number;
- {"msgtype": "text", "text": {"content": ..., "mentioned_mobile_list": [...]}}: content at
  most 2048 bytes, mentions by mobile number ("@all" for everybody).

The answer is HTTP 200 with {"errcode": 0, "errmsg": "ok"} on success, a non-zero errcode
otherwise (93000 invalid webhook URL / key, 40058 content too long, 45009 over the rate limit
of 20 messages a minute).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import ValidationInfo, field_validator, model_validator

from hq_server.channels import compose
from hq_server.channels.base import (
    ChannelConfig,
    FieldProblem,
    Page,
    Prepared,
    Timeouts,
    options_of,
)
from hq_server.channels.transport import check_vendor_code, send
from hq_server.channels.validation import PhoneNumber, check_secret, check_url, national_mobile

HOSTS = frozenset({"qyapi.weixin.qq.com"})
PATH = re.compile(r"/cgi-bin/webhook/send")
KEY = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
MARKDOWN_BYTES = 4096
TEXT_BYTES = 2048
# -1 busy, 45009 over the rate limit: worth trying again later.
RETRYABLE_CODES = frozenset({-1, 45009})


def fit_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (on a character boundary, "…" marking a cut)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - len("…".encode())].decode("utf-8", "ignore") + "…"


class WeComConfig(ChannelConfig):
    """The robot's webhook URL (as WeCom shows it), the message type, who to mention."""

    webhook_url: str
    message_type: Literal["markdown", "text"] = "markdown"
    mention_mobiles: tuple[PhoneNumber, ...] = ()

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parts = check_url(
            value,
            options_of(info.context),
            hosts=HOSTS,
            path=PATH,
            path_expected="/cgi-bin/webhook/send",
        )
        if not parts.query.startswith("key=") or "&" in parts.query:
            raise ValueError("expected the query ?key=<the robot's key> alone")
        check_secret(parts.query[4:], KEY, "expected a key in UUID form (8-4-4-4-12 hex digits)")
        return value

    @model_validator(mode="after")
    def _mentions_need_text(self) -> WeComConfig:
        if self.mention_mobiles and self.message_type != "text":
            raise FieldProblem(
                "mention_mobiles",
                "only with message_type text (WeCom's markdown cannot mention by mobile)",
            )
        return self

    @property
    def key(self) -> str:
        """The key of the webhook URL."""
        return self.webhook_url.rpartition("key=")[2]


class WeComChannel:
    """A markdown (or text) message through a WeCom group robot."""

    kind: ClassVar[str] = "wecom"
    config_model: ClassVar[type[ChannelConfig]] = WeComConfig

    def __init__(self, config: WeComConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The robot, without its key."""
        return "WeCom robot"

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The markdown (or text) message, cut to WeCom's size limit."""
        body: dict[str, Any]
        if self.config.message_type == "markdown":
            # The link goes last and is never cut; the detail goes first when over the limit.
            link = "\n" + compose.link_markdown(page)
            room = MARKDOWN_BYTES - len(link.encode("utf-8"))
            content = compose.markdown(page, link=False)
            if len(content.encode("utf-8")) > room and page.detail:
                content = compose.markdown(page.model_copy(update={"detail": ""}), link=False)
            body = {"msgtype": "markdown", "markdown": {"content": fit_utf8(content, room) + link}}
        else:
            text = fit_utf8(compose.plain_text(page), TEXT_BYTES)
            body = {"msgtype": "text", "text": {"content": text}}
            if self.config.mention_mobiles:
                mobiles = [national_mobile(m) for m in self.config.mention_mobiles]
                body["text"]["mentioned_mobile_list"] = mobiles
        return Prepared(
            "POST",
            self.config.webhook_url,
            {"Content-Type": "application/json; charset=utf-8"},
            json.dumps(body, ensure_ascii=False).encode("utf-8"),
            secrets=(self.config.key,),
        )

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """POST once; errcode 0 is success, anything else a failure (HTTP 200 or not)."""
        check_vendor_code(
            send(prepared, timeouts),
            "WeCom",
            code_keys=("errcode",),
            message_keys=("errmsg",),
            retryable_codes=RETRYABLE_CODES,
            secrets=prepared.secrets,
        )
