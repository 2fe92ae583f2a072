"""Every channel sends a Chinese and an English page to a real receiver on 127.0.0.1 that checks
the vendor's signature and body the way the vendor's own server does; wrong secrets are refused
by the receiver and reported as failures that are not retried."""

from __future__ import annotations

# ruff: noqa: RUF001 -- Chinese text takes full-width punctuation
import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest

from hq_server.channels import (
    Channel,
    DeliveryError,
    Timeouts,
    builtin_registry,
)
from hq_server.channels import webhook as webhook_channel
from hq_server.channels.dingtalk import signature as dingtalk_signature
from hq_server.tickets import notify
from tests.channels.conftest import (
    DINGTALK_PLAIN,
    DINGTALK_SECRET,
    DINGTALK_SIGNED,
    FEISHU_PLAIN,
    FEISHU_SECRET,
    FEISHU_SIGNED,
    LOOPBACK,
    SMS_APIKEY,
    SMS_LOGIN,
    SMTP_LOGIN,
    WEBHOOK_SECRET,
    WECOM_KEY,
    Mailbox,
    TlsFiles,
    make_page,
)
from tests.channels.receivers import Vendors

TIMEOUTS = Timeouts(connect=5, read=5)
REGISTRY = builtin_registry()
LANGUAGES = ["zh-CN", "en"]
# What each language's page must say (grade name, a field label, the deadline in its zone).
EXPECTED = {
    "zh-CN": [
        "1级 重大故障",
        "确认期限",
        "2026-03-02 16:10（Asia/Shanghai，UTC+08:00）",
        "查看工单",
    ],
    "en": [
        "major system fault",
        "Acknowledge by",
        "2026-03-02 16:10 (Asia/Shanghai",
        "Open the ticket",
    ],
}


def build(kind: str, settings: dict[str, Any]) -> Channel:
    """A channel pointed at the local receivers (the loopback override passed explicitly)."""
    return REGISTRY.build(kind, settings, LOOPBACK)


def send(channel: Channel, language: str, **changes: Any) -> None:
    """Render the test page in `language` now and send it once."""
    channel.send(channel.render(make_page(language, **changes)), TIMEOUTS)


def dingtalk(v: Vendors, token: str = DINGTALK_SIGNED, **extra: Any) -> Channel:
    return build("dingtalk", {"webhook_url": f"{v.base}/robot/send?access_token={token}", **extra})


def feishu(v: Vendors, token: str = FEISHU_SIGNED, **extra: Any) -> Channel:
    return build("feishu", {"webhook_url": f"{v.base}/open-apis/bot/v2/hook/{token}", **extra})


# ---- DingTalk ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_dingtalk_signed_robot_accepts_the_page(vendors: Vendors, language: str) -> None:
    channel = dingtalk(vendors, secret=DINGTALK_SECRET, at_mobiles=["+86 138 0013 8000"])
    send(channel, language)
    [request] = vendors.of("dingtalk")
    assert request.answer == {"errcode": 0, "errmsg": "ok"}
    assert set(request.query) == {"access_token", "timestamp", "sign"}
    body = request.json()
    assert body["msgtype"] == "markdown"
    assert body["at"] == {"atMobiles": ["13800138000"], "isAtAll": False}
    text = body["markdown"]["text"]
    for words in EXPECTED[language]:
        assert words in text
    assert "@13800138000" in text  # DingTalk highlights a mention only if it is in the text
    assert "https://hq.example.com/console/tickets/7" in text
    assert request.headers["content-type"] == "application/json; charset=utf-8"


def test_dingtalk_unsigned_robot_gets_no_timestamp_or_sign(vendors: Vendors) -> None:
    send(dingtalk(vendors, token=DINGTALK_PLAIN), "zh-CN")
    [request] = vendors.of("dingtalk")
    assert request.answer["errcode"] == 0
    assert set(request.query) == {"access_token"}


def test_dingtalk_wrong_secret_is_refused_and_not_retried(vendors: Vendors) -> None:
    wrong = "SEC" + "ab" * 32
    channel = dingtalk(vendors, secret=wrong)
    with pytest.raises(DeliveryError) as caught:
        send(channel, "en")
    assert vendors.of("dingtalk")[0].answer == {"errcode": 310000, "errmsg": "sign not match"}
    assert not caught.value.retryable
    assert "310000" in caught.value.reason
    assert wrong not in caught.value.reason and DINGTALK_SIGNED not in caught.value.reason


def test_dingtalk_refuses_a_timestamp_older_than_an_hour(vendors: Vendors) -> None:
    channel = dingtalk(vendors, secret=DINGTALK_SECRET)
    stale = channel.render(make_page("en"), dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with pytest.raises(DeliveryError) as caught:
        channel.send(stale, TIMEOUTS)
    assert vendors.of("dingtalk")[0].answer["errcode"] == 310000
    assert not caught.value.retryable


def test_dingtalk_unknown_token_is_a_failure_although_http_200(vendors: Vendors) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(dingtalk(vendors, token="f" * 64), "en")
    assert "300001" in caught.value.reason and not caught.value.retryable


def test_dingtalk_signature_matches_the_documented_scheme() -> None:
    # Independent known answer: DingTalk's documented algorithm applied to ("1700000000000",
    # "secret") by another implementation gives this value.
    assert dingtalk_signature("secret", 1700000000000) == (
        "OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
    )


# ---- WeCom ---------------------------------------------------------------------------------


def wecom(v: Vendors, key: str = WECOM_KEY, **extra: Any) -> Channel:
    return build("wecom", {"webhook_url": f"{v.base}/cgi-bin/webhook/send?key={key}", **extra})


@pytest.mark.parametrize("language", LANGUAGES)
def test_wecom_markdown_is_accepted(vendors: Vendors, language: str) -> None:
    send(wecom(vendors), language)
    [request] = vendors.of("wecom")
    assert request.answer == {"errcode": 0, "errmsg": "ok"}
    content = request.json()["markdown"]["content"]
    for words in EXPECTED[language]:
        assert words in content


def test_wecom_text_mentions_by_mobile(vendors: Vendors) -> None:
    send(wecom(vendors, message_type="text", mention_mobiles=["13900139000"]), "zh-CN")
    [request] = vendors.of("wecom")
    assert request.answer["errcode"] == 0
    assert request.json()["text"]["mentioned_mobile_list"] == ["13900139000"]


def test_wecom_long_page_is_cut_to_the_byte_limit_and_accepted(vendors: Vendors) -> None:
    send(wecom(vendors), "zh-CN", detail="故障详情" * 1000, title="标题" * 250)
    [request] = vendors.of("wecom")
    assert request.answer["errcode"] == 0
    content = request.json()["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.endswith("[查看工单](https://hq.example.com/console/tickets/7)")


def test_wecom_unknown_key_is_refused_and_not_retried(vendors: Vendors) -> None:
    other = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(DeliveryError) as caught:
        send(wecom(vendors, key=other), "en")
    assert "93000" in caught.value.reason and not caught.value.retryable
    assert other not in caught.value.reason


# ---- Feishu / Lark -------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("message_type", ["interactive", "post", "text"])
def test_feishu_signed_bot_accepts_every_message_type(
    vendors: Vendors, language: str, message_type: str
) -> None:
    send(feishu(vendors, secret=FEISHU_SECRET, message_type=message_type), language)
    [request] = vendors.of("feishu")
    assert request.answer == {"code": 0, "data": {}, "msg": "success"}
    body = request.json()
    assert body["msg_type"] == message_type
    assert body["timestamp"].isdigit() and body["sign"]
    flat = json.dumps(body, ensure_ascii=False)
    for words in EXPECTED[language][:3]:
        assert words in flat


def test_feishu_card_header_takes_the_grade_colour(vendors: Vendors) -> None:
    send(feishu(vendors, token=FEISHU_PLAIN), "zh-CN", grade=2)
    card = vendors.of("feishu")[0].json()["card"]
    assert card["header"]["template"] == "orange"
    button = card["elements"][1]["actions"][0]
    assert button["url"] == "https://hq.example.com/console/tickets/7"


def test_feishu_wrong_secret_is_refused_and_not_retried(vendors: Vendors) -> None:
    wrong = "WrongSecret0123456789"
    with pytest.raises(DeliveryError) as caught:
        send(feishu(vendors, secret=wrong), "en")
    assert vendors.of("feishu")[0].answer["code"] == 19021
    assert "19021" in caught.value.reason and not caught.value.retryable
    assert wrong not in caught.value.reason and FEISHU_SIGNED not in caught.value.reason


def test_feishu_refuses_a_timestamp_older_than_an_hour(vendors: Vendors) -> None:
    channel = feishu(vendors, secret=FEISHU_SECRET)
    stale = channel.render(make_page("en"), dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with pytest.raises(DeliveryError) as caught:
        channel.send(stale, TIMEOUTS)
    assert vendors.of("feishu")[0].answer["code"] == 19021 and not caught.value.retryable


def test_feishu_signature_is_keyed_by_timestamp_and_secret() -> None:
    from hq_server.channels.feishu import signature

    expected = base64.b64encode(
        hmac.new(f"1599360473\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert signature(FEISHU_SECRET, 1599360473) == expected


# ---- generic webhook -----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_webhook_is_signed_over_the_raw_body(vendors: Vendors, language: str) -> None:
    channel = build("webhook", {"url": f"{vendors.base}/hook", "secret": WEBHOOK_SECRET})
    send(channel, language)
    [request] = vendors.of("webhook")
    expected = (
        "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    )
    assert request.headers["x-stationwatch-signature"] == expected
    assert request.headers["idempotency-key"] == f"page:7:opened:0:{language}"
    payload = request.json()
    assert payload["event"] == "opened" and payload["ticket"]["number"] == "T-2026-0007"
    assert payload["ticket"]["deadline"] == "2026-03-02T08:10:00+00:00"
    for words in EXPECTED[language]:
        assert words in payload["text"]


def test_webhook_wrong_secret_gets_401_not_retried(vendors: Vendors) -> None:
    channel = build("webhook", {"url": f"{vendors.base}/hook", "secret": "another-key-123"})
    with pytest.raises(DeliveryError) as caught:
        send(channel, "en")
    assert caught.value.reason == "HTTP 401" and not caught.value.retryable


def test_webhook_format_is_the_outbox_format_byte_for_byte() -> None:
    # notify.py (the outbox) signs and encodes through the channel module: same bytes, headers.
    payload = {"event": "escalation", "text": "停播", "ticket": {"id": 1, "grade": 1}}
    prepared = webhook_channel.prepare("https://x.example/hook", payload, "k:1", "key-12345678")
    assert prepared.body == json.dumps(payload, sort_keys=True).encode("utf-8")
    assert notify.sign("key-12345678", prepared.body) == prepared.headers[notify.SIGNATURE_HEADER]
    assert prepared.headers[notify.IDEMPOTENCY_HEADER] == "k:1"


# ---- SMS gateway ---------------------------------------------------------------------------


def sms_json(v: Vendors, **extra: Any) -> Channel:
    settings = {
        "phone": "13800138000",
        "phone_format": "national",
        "url_template": f"{v.base}/sms/send",
        "body_template": '{"apikey": "{secret}", "mobile": "{phone}", "text": "【{sign}】{text}"}',
        "secret": SMS_APIKEY,
        "sign": "StationWatch",
        "success_json_field": "code",
        "success_json_value": "0",
        "max_chars": 120,
    }
    return build("sms", {**settings, **extra})


@pytest.mark.parametrize("language", LANGUAGES)
def test_sms_json_gateway_gets_the_short_text(vendors: Vendors, language: str) -> None:
    send(sms_json(vendors), language)
    [request] = vendors.of("sms")
    assert request.answer["code"] == 0
    body = request.json()
    assert body["mobile"] == "13800138000"
    assert body["text"].startswith("【StationWatch】")
    text = body["text"].removeprefix("【StationWatch】")
    assert len(text) <= 120
    assert text.endswith("https://hq.example.com/console/tickets/7")  # the link kept whole
    assert ("1级 重大故障" if language == "zh-CN" else "major system fault") in text


def test_sms_get_gateway_with_basic_auth_and_answer_regex(vendors: Vendors) -> None:
    channel = build(
        "sms",
        {
            "phone": "+8613800138000",
            "method": "GET",
            "url_template": vendors.base + "/sms/get?apikey={secret}&mobile={phone}&text={text}",
            "secret": SMS_APIKEY,
            "basic_auth_user": SMS_LOGIN[0],
            "basic_auth_password": SMS_LOGIN[1],
            "success_regex": r"^OK:\d+$",
        },
    )
    send(channel, "zh-CN")
    [request] = vendors.of("sms")
    assert request.answer.startswith(b"OK:")
    assert request.query["mobile"] == "+8613800138000"  # percent-encoded on the wire
    assert "北京发射台" in request.query["text"]


def test_sms_gateway_refusal_in_a_200_answer_is_a_failure(vendors: Vendors) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(sms_json(vendors, secret="not-the-api-key"), "en")
    assert "code='2'" in caught.value.reason or "code=2" in caught.value.reason
    assert not caught.value.retryable
    assert "not-the-api-key" not in caught.value.reason


# ---- e-mail --------------------------------------------------------------------------------


def email(box: Mailbox, **extra: Any) -> Channel:
    settings = {
        "host": "127.0.0.1",
        "port": box.port,
        "sender": "stationwatch@example.com",
        "to": ["duty@example.com", "manager@example.com"],
    }
    return build("email", {**settings, **extra})


def check_mail(box: Mailbox, language: str) -> None:
    [message] = box.messages
    assert box.envelopes == [
        ("stationwatch@example.com", ["duty@example.com", "manager@example.com"])
    ]
    assert message.get_content_type() == "multipart/alternative"
    assert message["Content-Language"] == language
    subject = str(message["Subject"])
    assert "T-2026-0007" in subject
    assert ("新故障" if language == "zh-CN" else "New fault") in subject
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    for words in EXPECTED[language]:
        assert words in text
    assert '<a href="https://hq.example.com/console/tickets/7">' in html
    assert message["Idempotency-Key"] == f"page:7:opened:0:{language}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_email_through_a_plain_relay(smtp_plain: Mailbox, language: str) -> None:
    send(email(smtp_plain, security="none"), language)
    check_mail(smtp_plain, language)
    assert smtp_plain.sessions == [{"tls": False, "authenticated": False}]


@pytest.mark.parametrize("language", LANGUAGES)
def test_email_starttls_and_login(
    smtp_starttls: Mailbox, tls_files: TlsFiles, language: str
) -> None:
    channel = email(
        smtp_starttls,
        security="starttls",
        ca_file=str(tls_files.ca),
        username=SMTP_LOGIN[0],
        password=SMTP_LOGIN[1],
    )
    send(channel, language)
    check_mail(smtp_starttls, language)
    assert smtp_starttls.sessions == [{"tls": True, "authenticated": True}]


def test_email_implicit_tls_and_login(smtp_tls: Mailbox, tls_files: TlsFiles) -> None:
    channel = email(
        smtp_tls,
        security="ssl",
        ca_file=str(tls_files.ca),
        username=SMTP_LOGIN[0],
        password=SMTP_LOGIN[1],
    )
    send(channel, "en")
    check_mail(smtp_tls, "en")
    assert smtp_tls.sessions == [{"tls": True, "authenticated": True}]


def test_email_wrong_password_is_refused_and_not_retried(
    smtp_starttls: Mailbox, tls_files: TlsFiles
) -> None:
    channel = email(
        smtp_starttls,
        ca_file=str(tls_files.ca),
        username=SMTP_LOGIN[0],
        password="wrong-password",
    )
    with pytest.raises(DeliveryError) as caught:
        send(channel, "en")
    assert caught.value.reason == "login refused: 535" and not caught.value.retryable
    assert smtp_starttls.messages == []


def test_email_untrusted_certificate_is_refused(smtp_starttls: Mailbox) -> None:
    # Without the test CA the server's certificate is not trusted: no fallback to plain text.
    channel = email(smtp_starttls, username=SMTP_LOGIN[0], password=SMTP_LOGIN[1])
    with pytest.raises(DeliveryError) as caught:
        send(channel, "en")
    assert caught.value.reason.startswith("TLS certificate not trusted")
    assert not caught.value.retryable and smtp_starttls.messages == []


def test_email_starttls_not_offered_is_a_failure_not_plain_text(smtp_plain: Mailbox) -> None:
    with pytest.raises(DeliveryError) as caught:
        send(email(smtp_plain, security="starttls"), "en")
    assert "STARTTLS" in caught.value.reason and not caught.value.retryable
    assert smtp_plain.messages == []


def test_email_message_id_is_the_same_on_every_attempt(smtp_plain: Mailbox) -> None:
    channel = email(smtp_plain, security="none")
    page = make_page("en")
    for minutes in (0, 7):  # a retry, later
        when = dt.datetime(2026, 3, 2, 8, minutes, tzinfo=dt.UTC)
        channel.send(channel.render(page, when), TIMEOUTS)
    first, second = smtp_plain.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert first["Message-ID"].endswith("@example.com>")
    assert first["Date"] != second["Date"]


# ---- purity ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
def test_render_is_pure(vendors: Vendors, kind: str) -> None:
    channel = (
        dingtalk(vendors, secret=DINGTALK_SECRET)
        if kind == "dingtalk"
        else feishu(vendors, secret=FEISHU_SECRET)
    )
    page, when = make_page("zh-CN"), dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    first, second = channel.render(page, when), channel.render(page, when)
    assert (first.url, first.body, dict(first.headers)) == (
        second.url,
        second.body,
        dict(second.headers),
    )
    assert vendors.received == []  # rendering sends nothing
    assert "***" in repr(first) and DINGTALK_SIGNED not in repr(first)
    assert FEISHU_SIGNED not in repr(first)
