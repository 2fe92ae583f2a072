"""Channel settings: a malformed URL, secret, phone number or address is refused with the field
named and what was expected, never echoing a secret; the registry refuses a kind twice."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, ClassVar

import pytest

from hq_server.channels import (
    ChannelConfig,
    ChannelConfigError,
    ChannelOptions,
    Page,
    Prepared,
    RegistryError,
    Timeouts,
    builtin_registry,
)
from hq_server.channels.dingtalk import DingTalkChannel
from tests.channels.conftest import LOOPBACK

REGISTRY = builtin_registry()
TOKEN = "a1" * 32
DING = f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7d1e-4bc4-97a0-0ec2f1fa5aaa"
FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/5e3d587e-d78e-4a07-bd07-265f269f86fd"
SMS = {
    "phone": "+8613800138000",
    "url_template": "https://sms.example.cn/send",
    "body_template": '{"to": "{phone}", "text": "{text}", "key": "{secret}"}',
    "secret": "gateway-api-key-123",
}
MAIL = {"host": "smtp.example.com", "sender": "hq@example.com", "to": ["duty@example.com"]}


def refused(kind: str, settings: dict[str, Any], options: ChannelOptions | None = None) -> str:
    """The field named by the refusal (asserting one happened)."""
    with pytest.raises(ChannelConfigError) as caught:
        REGISTRY.validate(kind, settings, options)
    return caught.value.field


def test_builtin_registry_has_every_channel() -> None:
    assert REGISTRY.kinds() == ("dingtalk", "email", "feishu", "sms", "webhook", "wecom")


def test_registering_a_kind_twice_is_refused() -> None:
    registry = builtin_registry()
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(DingTalkChannel)


def test_a_new_channel_is_registered_explicitly() -> None:
    class PagerConfig(ChannelConfig):
        number: str

    class Pager:
        kind: ClassVar[str] = "pager"
        config_model: ClassVar[type[ChannelConfig]] = PagerConfig

        def __init__(self, config: PagerConfig) -> None:
            self.config = config

        @property
        def target(self) -> str:
            return f"pager {self.config.number}"

        def render(self, page: Page, now: Any = None) -> Prepared:
            return Prepared("PAGE", self.config.number, {}, page.title.encode())

        def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
            pass

    registry = builtin_registry()
    registry.register(Pager)
    assert registry.build("pager", {"number": "42"}).target == "pager 42"
    assert "pager" not in builtin_registry().kinds()  # each registry is its own


def test_unknown_kind_names_the_kind_field() -> None:
    with pytest.raises(ChannelConfigError) as caught:
        REGISTRY.build("telegram", {})
    assert caught.value.field == "kind"
    assert "dingtalk" in str(caught.value)


# (kind, settings, options, field named)
CASES: list[tuple[str, dict[str, Any], ChannelOptions | None, str]] = [
    ("dingtalk", {"webhook_url": DING.replace("https", "http")}, None, "webhook_url"),
    (
        "dingtalk",
        {"webhook_url": DING.replace("oapi.dingtalk.com", "evil.example")},
        None,
        "webhook_url",
    ),
    ("dingtalk", {"webhook_url": DING.replace("/robot/send", "/robot/other")}, None, "webhook_url"),
    ("dingtalk", {"webhook_url": DING[:-2]}, None, "webhook_url"),
    ("dingtalk", {"webhook_url": DING + "&x=1"}, None, "webhook_url"),
    ("dingtalk", {"webhook_url": DING, "secret": "SEC123"}, None, "secret"),
    ("dingtalk", {"webhook_url": DING, "at_mobiles": ["12345"]}, None, "at_mobiles.0"),
    ("dingtalk", {"webhook_url": DING, "at_mobiles": ["+8612800138000"]}, None, "at_mobiles.0"),
    ("dingtalk", {"webhook_url": DING, "colour": "red"}, None, "colour"),
    ("dingtalk", {}, None, "webhook_url"),
    ("wecom", {"webhook_url": WECOM.replace("key=693a", "key=zz3a")}, None, "webhook_url"),
    (
        "wecom",
        {"webhook_url": WECOM.replace("qyapi.weixin.qq.com", "127.0.0.1")},
        None,
        "webhook_url",
    ),
    ("wecom", {"webhook_url": WECOM, "mention_mobiles": ["13800138000"]}, None, "mention_mobiles"),
    (
        "feishu",
        {"webhook_url": FEISHU.replace("open.feishu.cn", "open.example.cn")},
        None,
        "webhook_url",
    ),
    ("feishu", {"webhook_url": FEISHU[:-4]}, None, "webhook_url"),
    ("feishu", {"webhook_url": FEISHU, "secret": "short"}, None, "secret"),
    ("feishu", {"webhook_url": FEISHU, "message_type": "image"}, None, "message_type"),
    ("webhook", {"url": "http://hooks.example.com/x"}, None, "url"),
    ("webhook", {"url": "https://user:pw@hooks.example.com/x"}, None, "url"),
    ("webhook", {"url": "https://hooks.example.com/x", "secret": "short"}, None, "secret"),
    ("webhook", {"url": "not a url"}, None, "url"),
    ("email", {**MAIL, "sender": "not-an-address"}, None, "sender"),
    ("email", {**MAIL, "to": ["duty@example.com", "Duty <duty@example.com>"]}, None, "to.1"),
    ("email", {**MAIL, "to": []}, None, "to"),
    ("email", {**MAIL, "port": 70000}, None, "port"),
    ("email", {**MAIL, "username": "u"}, None, "password"),
    ("email", {**MAIL, "security": "none", "username": "u", "password": "p"}, None, "security"),
    ("email", {**MAIL, "host": "smtp example"}, None, "host"),
    ("email", {**MAIL, "ca_file": "/nonexistent/ca.pem"}, None, "ca_file"),
    ("sms", {**SMS, "phone": "12345"}, None, "phone"),
    ("sms", {**SMS, "phone": "+86 123 0013 8000"}, None, "phone"),
    ("sms", {**SMS, "url_template": "http://sms.example.cn/send"}, None, "url_template"),
    ("sms", {**SMS, "body_template": '{"to": "{phone}", "text": "{txt}"}'}, None, "body_template"),
    ("sms", {**SMS, "body_template": '{"to": "{phone}", "key": "{secret}"}'}, None, "url_template"),
    ("sms", {**SMS, "body_template": '{"to": "{phone}", "text": "{text}"}'}, None, "secret"),
    ("sms", {**SMS, "method": "GET"}, None, "body_template"),
    ("sms", {**SMS, "success_regex": "("}, None, "success_regex"),
    ("sms", {**SMS, "success_json_field": "code"}, None, "success_json_value"),
    ("sms", {**SMS, "headers": {"X-Key": "a\nb"}}, None, "headers"),
    ("sms", {**SMS, "headers": {"X-Text": "{text}"}}, None, "headers"),
    ("sms", {**SMS, "secret": "key with spaces"}, None, "secret"),
    ("sms", {**SMS, "max_chars": 10}, None, "max_chars"),
]


@pytest.mark.parametrize(("kind", "settings", "options", "field"), CASES)
def test_malformed_settings_name_the_field(
    kind: str, settings: dict[str, Any], options: ChannelOptions | None, field: str
) -> None:
    assert refused(kind, settings, options) == field


def test_refusal_says_what_was_expected_and_never_echoes_a_secret() -> None:
    secret = "SEC" + "Z" * 64  # wrong shape (upper case), but a real secret's length
    url = DING.replace("oapi.dingtalk.com", "evil.example")
    with pytest.raises(ChannelConfigError) as caught:
        REGISTRY.validate("dingtalk", {"webhook_url": url, "secret": secret})
    text = str(caught.value)
    assert "webhook_url: expected the host oapi.dingtalk.com" in text
    assert "secret: expected 'SEC' and 64 hex digits" in text
    assert secret not in text and TOKEN not in text and "Z" * 10 not in text


def test_sms_secret_in_a_bad_template_is_not_echoed() -> None:
    key = "gateway-api-key-123"
    with pytest.raises(ChannelConfigError) as caught:
        REGISTRY.validate("sms", {**SMS, "url_template": "ftp://sms.example.cn/{secret}"})
    assert caught.value.field == "url_template" and key not in str(caught.value)


def test_loopback_and_http_only_with_the_options_passed() -> None:
    local = DING.replace("https://oapi.dingtalk.com", "http://127.0.0.1:8080")
    assert refused("dingtalk", {"webhook_url": local}) == "webhook_url"
    only_insecure = ChannelOptions(allow_insecure=True)
    assert refused("dingtalk", {"webhook_url": local}, only_insecure) == "webhook_url"
    REGISTRY.validate("dingtalk", {"webhook_url": local}, LOOPBACK)


def test_phone_numbers_are_stored_in_e164() -> None:
    config = REGISTRY.validate("sms", {**SMS, "phone": "138 0013 8000"})
    assert config.model_dump()["phone"] == "+8613800138000"
    config = REGISTRY.validate("sms", {**SMS, "phone": "+44 20 7946 0958"})
    assert config.model_dump()["phone"] == "+442079460958"


def test_build_all_names_the_entry_and_field() -> None:
    entries = [
        {"kind": "webhook", "url": "https://hooks.example.com/a"},
        {"kind": "feishu", "webhook_url": FEISHU, "secret": "short"},
    ]
    with pytest.raises(ChannelConfigError) as caught:
        REGISTRY.build_all(entries)
    assert caught.value.field == "1.secret"


def test_secrets_are_hidden_in_repr_and_dump() -> None:
    secret = "SEC" + "4d" * 32
    config = REGISTRY.validate("dingtalk", {"webhook_url": DING, "secret": secret})
    assert secret not in repr(config) and secret not in str(config.model_dump())


def test_the_package_needs_nothing_else_of_hq_server() -> None:
    code = (
        "import sys, hq_server.channels; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'fastapi', "
        "'agent', 'checks', 'collectors', 'cryptography'})); "
        "print(sorted(m for m in sys.modules if m.startswith('hq_server.') "
        "and not m.startswith('hq_server.channels')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["[]", "[]"]
