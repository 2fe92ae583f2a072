"""Fallback and isolation: a dead or slow endpoint fails within its timeout and the page moves
to the contact's next channel; one contact's slow endpoint does not hold back another's page;
no secret reaches a log record or an error."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from hq_server.channels import (
    Channel,
    ChannelConfig,
    Page,
    Prepared,
    Timeouts,
    builtin_registry,
    deliver,
    deliver_each,
)
from tests.channels.conftest import (
    DINGTALK_SECRET,
    DINGTALK_SIGNED,
    FEISHU_PLAIN,
    FEISHU_SECRET,
    FEISHU_SIGNED,
    LOOPBACK,
    SMS_APIKEY,
    SMS_LOGIN,
    WEBHOOK_SECRET,
    WECOM_KEY,
    make_page,
)
from tests.channels.receivers import Received, Vendors
from tests.peers import free_port

REGISTRY = builtin_registry()


def build(kind: str, settings: dict[str, Any]) -> Channel:
    return REGISTRY.build(kind, settings, LOOPBACK)


def dead_dingtalk() -> Channel:
    """A DingTalk channel whose endpoint has nobody listening (a closed port)."""
    url = f"http://127.0.0.1:{free_port()}/robot/send?access_token={DINGTALK_SIGNED}"
    return build("dingtalk", {"webhook_url": url, "secret": DINGTALK_SECRET})


def slow_webhook(v: Vendors) -> Channel:
    """A webhook whose receiver holds the request until released."""
    return build("webhook", {"url": f"{v.base}/slow/hook", "secret": WEBHOOK_SECRET})


def feishu(v: Vendors) -> Channel:
    return build("feishu", {"webhook_url": f"{v.base}/open-apis/bot/v2/hook/{FEISHU_PLAIN}"})


def test_dead_and_slow_channels_fail_in_time_and_fall_back(vendors: Vendors) -> None:
    timeouts = Timeouts(connect=1, read=0.5)
    outcome = deliver(
        make_page("zh-CN"), [dead_dingtalk(), slow_webhook(vendors), feishu(vendors)], timeouts
    )
    dead, slow, good = outcome.attempts
    assert (dead.kind, slow.kind, good.kind) == ("dingtalk", "webhook", "feishu")
    assert not dead.ok and dead.retryable and "ConnectError" in str(dead.error)
    assert not slow.ok and slow.retryable and slow.error == "no answer within 0.5 s"
    assert good.ok and outcome.delivered and outcome.delivered_by == good
    assert not outcome.retryable
    # The slow receiver really got the request (and was still holding it) ...
    assert len(vendors.of("webhook")) == 1 and vendors.of("webhook")[0].answer is None
    # ... and each failed attempt ended near its own timeout, not the receiver's 30 s hold.
    assert dead.seconds < 10 and slow.seconds < 10
    assert vendors.of("feishu")[0].answer["code"] == 0


def test_fallback_goes_on_after_a_refusal_and_stops_at_the_first_success(
    vendors: Vendors,
) -> None:
    wrong = build(
        "dingtalk",
        {
            "webhook_url": f"{vendors.base}/robot/send?access_token={DINGTALK_SIGNED}",
            "secret": "SEC" + "0" * 64,
        },
    )
    outcome = deliver(make_page("en"), [wrong, feishu(vendors), feishu(vendors)], Timeouts())
    assert [a.ok for a in outcome.attempts] == [False, True]  # the third is never tried
    assert not outcome.attempts[0].retryable and "310000" in str(outcome.attempts[0].error)
    assert len(vendors.of("feishu")) == 1


def test_all_channels_failing_is_retryable_only_if_one_failure_is() -> None:
    refused = deliver(make_page("en"), [], Timeouts())
    assert not refused.delivered and not refused.retryable
    dead = deliver(make_page("en"), [dead_dingtalk()], Timeouts(connect=1, read=1))
    assert not dead.delivered and dead.retryable


def test_a_channel_that_crashes_does_not_stop_the_fallback(vendors: Vendors) -> None:
    class Broken:
        kind = "broken"
        config_model = ChannelConfig
        config = ChannelConfig()
        target = "broken channel"

        def render(self, page: Page, now: Any = None) -> Prepared:
            raise RuntimeError("bug in a channel")

        def send(self, prepared: Prepared, timeouts: Timeouts) -> None:
            raise AssertionError("not reached")

    outcome = deliver(make_page("en"), [Broken(), feishu(vendors)], Timeouts())
    assert [a.ok for a in outcome.attempts] == [False, True]
    assert outcome.attempts[0].error == "RuntimeError: bug in a channel"


@pytest.mark.parametrize("workers", [8, 1])
def test_a_slow_endpoint_does_not_hold_back_another_contact(vendors: Vendors, workers: int) -> None:
    # Contact A's only endpoint answers only once contact B's page has arrived: that can
    # happen within A's timeout only if B's page is not queued behind A's.
    def release_on_b(request: Received) -> None:
        if request.vendor == "feishu":
            vendors.release.set()

    vendors.on_receive.append(release_on_b)
    a = make_page("zh-CN", idempotency_key="page:a")
    b = make_page("en", idempotency_key="page:b")
    timeouts = Timeouts(connect=2, read=2)
    first, second = deliver_each(
        [(a, [slow_webhook(vendors)]), (b, [feishu(vendors)])], timeouts, workers=workers
    )
    assert second.delivered
    if workers > 1:
        assert first.delivered
    else:  # one at a time: A waits out its timeout before B is even sent
        assert not first.delivered and first.attempts[0].error == "no answer within 2 s"


def test_no_secret_in_logs_or_errors(vendors: Vendors, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Other tests in this process may have quieted the library loggers (quiet_libraries).
    caplog.set_level(logging.DEBUG, logger="httpx")
    base = vendors.base
    secrets = [
        DINGTALK_SIGNED,
        DINGTALK_SECRET,
        WECOM_KEY,
        FEISHU_SIGNED,
        FEISHU_SECRET,
        WEBHOOK_SECRET,
        SMS_APIKEY,
        SMS_LOGIN[1],
    ]
    ding = f"{base}/robot/send?access_token={DINGTALK_SIGNED}"
    good = [
        build("dingtalk", {"webhook_url": ding, "secret": DINGTALK_SECRET}),
        build("wecom", {"webhook_url": f"{base}/cgi-bin/webhook/send?key={WECOM_KEY}"}),
        build(
            "feishu",
            {
                "webhook_url": f"{base}/open-apis/bot/v2/hook/{FEISHU_SIGNED}",
                "secret": FEISHU_SECRET,
            },
        ),
        build("webhook", {"url": f"{base}/hook?token={SMS_APIKEY}", "secret": WEBHOOK_SECRET}),
        build(
            "sms",
            {
                "phone": "13800138000",
                "method": "GET",
                "url_template": base + "/sms/get?apikey={secret}&mobile={phone}&text={text}",
                "secret": SMS_APIKEY,
                "basic_auth_user": SMS_LOGIN[0],
                "basic_auth_password": SMS_LOGIN[1],
                "success_regex": "^OK",
            },
        ),
    ]
    wrong_key = "11111111-2222-4333-8444-555555555555"
    bad = [
        build("dingtalk", {"webhook_url": ding, "secret": "SEC" + "9" * 64}),
        build("wecom", {"webhook_url": f"{base}/cgi-bin/webhook/send?key={wrong_key}"}),
        build(
            "feishu",
            {
                "webhook_url": f"{base}/open-apis/bot/v2/hook/{FEISHU_SIGNED}",
                "secret": "Wrong" + FEISHU_SECRET,
            },
        ),
        build("dingtalk", {"webhook_url": ding.replace(base, f"http://127.0.0.1:{free_port()}")}),
    ]
    secrets += ["SEC" + "9" * 64, wrong_key, "Wrong" + FEISHU_SECRET]
    # Generous timeouts: this test is about secrets, not time (the machine may be loaded).
    outcomes = [deliver(make_page("en"), [channel], Timeouts(5, 10)) for channel in good + bad]
    assert [o.delivered for o in outcomes] == [True] * len(good) + [False] * len(bad)
    # httpx logged every request URL; the filter replaced the tokens in them.
    requests = [r for r in caplog.records if r.getMessage().startswith("HTTP Request")]
    assert len(requests) == len(good) + len(bad) - 1  # the closed port logs no request
    assert all("***" in r.getMessage() for r in requests)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    errors = "\n".join(o.summary() for o in outcomes) + repr(outcomes)
    for secret in secrets:
        assert secret not in logged
        assert secret not in errors
