"""Feishu / Lark custom bot (飞书自定义机器人).

Vendor documentation:
- https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot (custom bot guide:
  webhook, signature verification, message types, error codes)
- https://open.feishu.cn/document/ukTMukTMukTM/ucTM5YjL3ETO24yNxkjN (the same guide's older
  address; Lark's copy is on open.larksuite.com)

The bot's webhook is https://open.feishu.cn/open-apis/bot/v2/hook/<token> (Lark:
open.larksuite.com). A bot with signature verification on has a secret; every request then
carries, in the JSON body, "timestamp" (seconds since the epoch, as a string) and

    "sign": base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}", msg=b""))

(note: the string is the key and the message is empty, unlike DingTalk). Feishu refuses a
wrong sign, or a timestamp more than an hour away from its clock, with code 19021. The body
is at most 20 KB: {"msg_type": "interactive", "card": {...}} (a message card), or "post"
(rich text) or "text". The answer is {"code": 0, "msg": "success", ...} on success (older
deployments answer {"StatusCode": 0, "StatusMessage": "success"}), a non-zero code otherwise
(19021 bad signature, 19024 keyword missing, 9499 bad request, 11232 rate limited).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import SecretStr, ValidationInfo, field_validator

from hq_server.channels import compose
from hq_server.channels.base import ChannelConfig, EventKind, Page, Prepared, Timeouts, options_of
from hq_server.channels.catalogue import message
from hq_server.channels.transport import check_vendor_code, send
from hq_server.channels.validation import check_secret, check_url

HOSTS = frozenset({"open.feishu.cn", "open.larksuite.com"})
PATH = re.compile(
    r"/open-apis/bot/v2/hook/([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
)
SECRET = r"[A-Za-z0-9]{16,64}"  # noqa: S105 -- the shape of a secret, not one
MAX_BODY = 20 * 1024
RETRYABLE_CODES = frozenset({11232})  # rate limited
# Card header colours by grade; green once acknowledged or resolved.
TEMPLATES = {1: "red", 2: "orange", 3: "yellow", 4: "blue", 5: "grey"}


def signature(secret: str, timestamp: int) -> str:
    """The `sign` field: base64(HMAC-SHA256(key="<timestamp>\\n<secret>", msg=b""))."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


class FeishuConfig(ChannelConfig):
    """The bot's webhook URL (as Feishu shows it), its signing secret, the message type."""

    webhook_url: str
    secret: SecretStr | None = None
    message_type: Literal["interactive", "post", "text"] = "interactive"

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parts = check_url(
            value,
            options_of(info.context),
            hosts=HOSTS,
            path=PATH,
            path_expected="/open-apis/bot/v2/hook/<token in UUID form>",
        )
        if parts.query:
            raise ValueError("expected no query string")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value(), SECRET, "expected 16 to 64 letters and digits")
        return value

    @property
    def token(self) -> str:
        """The token at the end of the webhook URL."""
        return self.webhook_url.rstrip("/").rpartition("/")[2]


def _lark_md(page: Page) -> str:
    sep = message(page.language, "field.sep")
    if page.kind is EventKind.DIGEST:
        lines = [f"- {compose.item_line(page, item)}" for item in page.items]
    else:
        lines = [f"**{label}**{sep}{value}" for label, value in compose.facts(page)]
    if page.detail:
        lines += ["", compose.one_line(page.detail)]
    return "\n".join(lines)


def card(page: Page) -> dict[str, Any]:
    """A message card: the subject as header in the grade's colour, the facts, a button."""
    closed = page.kind in (EventKind.ACKNOWLEDGED, EventKind.RESOLVED)
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "template": "green" if closed else TEMPLATES[page.grade],
            "title": {"tag": "plain_text", "content": compose.subject(page)},
        },
        "elements": [
            {"tag": "div", "text": {"tag": "lark_md", "content": _lark_md(page)}},
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": compose.link_text(page)},
                        "type": "primary",
                        "url": page.link,
                    }
                ],
            },
        ],
    }


def post(page: Page) -> dict[str, Any]:
    """A rich-text post: one paragraph per fact, then the link."""
    sep = message(page.language, "field.sep")
    if page.kind is EventKind.DIGEST:
        lines = [compose.item_line(page, item) for item in page.items]
    else:
        lines = [f"{label}{sep}{value}" for label, value in compose.facts(page)]
    if page.detail:
        lines.append(compose.one_line(page.detail))
    content: list[list[dict[str, str]]] = [[{"tag": "text", "text": line}] for line in lines]
    content.append([{"tag": "a", "text": compose.link_text(page), "href": page.link}])
    locale = "zh_cn" if page.language == "zh-CN" else "en_us"
    return {"post": {locale: {"title": compose.subject(page), "content": content}}}


class FeishuChannel:
    """A message card (or post, or text) through a Feishu/Lark custom bot."""

    kind: ClassVar[str] = "feishu"
    config_model: ClassVar[type[ChannelConfig]] = FeishuConfig

    def __init__(self, config: FeishuConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The bot, without its token."""
        host = self.config.webhook_url.split("/")[2]
        return f"Feishu bot at {host}" + (" (signed)" if self.config.secret else "")

    def _body(self, page: Page) -> dict[str, Any]:
        kind = self.config.message_type
        if kind == "interactive":
            return {"msg_type": "interactive", "card": card(page)}
        if kind == "post":
            return {"msg_type": "post", "content": post(page)}
        return {"msg_type": "text", "content": {"text": compose.plain_text(page)}}

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The message, with timestamp and sign in the body for a signed bot."""
        body = self._body(page)
        if len(json.dumps(body, ensure_ascii=False).encode()) > MAX_BODY - 200:
            body = self._body(page.model_copy(update={"detail": ""}))
        secrets = [self.config.token]
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            timestamp = int((now or datetime.now(UTC)).timestamp())
            body = {"timestamp": str(timestamp), "sign": signature(secret, timestamp), **body}
            secrets.append(secret)
        return Prepared(
            "POST",
            self.config.webhook_url,
            {"Content-Type": "application/json; charset=utf-8"},
            json.dumps(body, ensure_ascii=False).encode("utf-8"),
            secrets=tuple(secrets),
        )

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """POST once; code 0 is success, anything else a failure (HTTP 200 or not)."""
        check_vendor_code(
            send(prepared, timeouts),
            "Feishu",
            code_keys=("code", "StatusCode"),
            message_keys=("msg", "StatusMessage"),
            retryable_codes=RETRYABLE_CODES,
            secrets=prepared.secrets,
        )
