"""DingTalk (钉钉) custom group robot (自定义机器人).

Vendor documentation:
- sending: https://open.dingtalk.com/document/orgapp/custom-robot-access
- message types (markdown, at.atMobiles): https://open.dingtalk.com/document/development/robot-message-type
- signing (加签): https://open.dingtalk.com/document/robots/customize-robot-security-settings

The robot's webhook is https://oapi.dingtalk.com/robot/send?access_token=<64 hex digits>. A
robot with signing on has a secret "SEC" + 64 hex digits; every request then adds
`&timestamp=<ms since the epoch>&sign=<s>` to the URL, where

    s = urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}")))

(UTF-8 throughout). DingTalk recomputes the signature and refuses it, or a timestamp more than
one hour away from its own clock, with errcode 310000. The body is JSON:
{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles": [...], "isAtAll"}};
a mentioned mobile must also appear as "@<mobile>" in the text. The answer is HTTP 200 with
{"errcode": 0, "errmsg": "ok"} on success, a non-zero errcode otherwise (310000 bad signature
or missing keyword, 300001 unknown token, 130101 more than 20 messages a minute).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import parse_qsl, quote_plus

from pydantic import SecretStr, ValidationInfo, field_validator

from hq_server.channels import compose
from hq_server.channels.base import ChannelConfig, Page, Prepared, Timeouts, options_of
from hq_server.channels.transport import check_vendor_code, send
from hq_server.channels.validation import PhoneNumber, check_secret, check_url, national_mobile

HOSTS = frozenset({"oapi.dingtalk.com"})
PATH = re.compile(r"/robot/send")
TOKEN = r"[0-9a-f]{64}"  # noqa: S105 -- the shape of a token, not one
SECRET = r"SEC[0-9a-f]{64}"  # noqa: S105
# -1 busy, 130101 / 410100 sent too fast (throttled): worth trying again later.
RETRYABLE_CODES = frozenset({-1, 130101, 410100})


def signature(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter, URL-encoded: base64(HMAC-SHA256(secret, "<ts>\\n<secret>"))."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


class DingTalkConfig(ChannelConfig):
    """The robot's webhook URL (as DingTalk shows it), its signing secret, who to mention."""

    webhook_url: str
    secret: SecretStr | None = None
    at_mobiles: tuple[PhoneNumber, ...] = ()
    at_all: bool = False

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        parts = check_url(
            value,
            options_of(info.context),
            hosts=HOSTS,
            path=PATH,
            path_expected="/robot/send",
        )
        query = parse_qsl(parts.query, keep_blank_values=True)
        if len(query) != 1 or query[0][0] != "access_token":
            raise ValueError("expected the query ?access_token=<the robot's token> alone")
        check_secret(query[0][1], TOKEN, "expected an access_token of 64 hex digits")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_secret(value.get_secret_value(), SECRET, "expected 'SEC' and 64 hex digits")
        return value

    @property
    def token(self) -> str:
        """The access_token of the webhook URL."""
        return self.webhook_url.rpartition("access_token=")[2]


class DingTalkChannel:
    """A markdown message through a DingTalk custom robot, signed when it has a secret."""

    kind: ClassVar[str] = "dingtalk"
    config_model: ClassVar[type[ChannelConfig]] = DingTalkConfig

    def __init__(self, config: DingTalkConfig) -> None:
        self.config = config

    @property
    def target(self) -> str:
        """The robot, without its token."""
        return "DingTalk robot" + (" (signed)" if self.config.secret else "")

    def render(self, page: Page, now: datetime | None = None) -> Prepared:
        """The markdown message, with timestamp and sign in the URL for a signed robot."""
        mobiles = [national_mobile(m) for m in self.config.at_mobiles]
        body = {
            "msgtype": "markdown",
            "markdown": {
                "title": compose.headline(page),
                "text": compose.markdown(page, paragraph="\n\n", mentions=mobiles),
            },
            "at": {"atMobiles": mobiles, "isAtAll": self.config.at_all},
        }
        url = self.config.webhook_url
        secrets = [self.config.token]
        if self.config.secret is not None:
            secret = self.config.secret.get_secret_value()
            timestamp = int((now or datetime.now(UTC)).timestamp() * 1000)
            url += f"&timestamp={timestamp}&sign={signature(secret, timestamp)}"
            secrets.append(secret)
        return Prepared(
            "POST",
            url,
            {"Content-Type": "application/json; charset=utf-8"},
            json.dumps(body, ensure_ascii=False).encode("utf-8"),
            secrets=tuple(secrets),
        )

    def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
        """POST once; errcode 0 is success, anything else a failure (HTTP 200 or not)."""
        check_vendor_code(
            send(prepared, timeouts),
            "DingTalk",
            code_keys=("errcode",),
            message_keys=("errmsg",),
            retryable_codes=RETRYABLE_CODES,
            secrets=prepared.secrets,
        )
