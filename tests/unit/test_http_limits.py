"""HQ's request limits as pure functions: JSON bounds, forwarded addresses, log flood filter,
connection limits, settings."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
from fastapi import HTTPException

from hq_server.api.forwarded import TrustedProxies
from hq_server.api.jsonbody import parse_json
from hq_server.core.settings import Settings
from hq_server.serving import (
    RESERVED_FDS,
    RateLimitFilter,
    connection_limits,
    install_log_filters,
)

DEFAULTS = Settings()


def _event(seq: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "seq": seq,
        "kind": "raise",
        "device_id": "tx1",
        "device_class": "transmitter",
        "code": "off_air",
        "component": "",
        "grade": 1,
        "title": "Transmitter off air, [alarm {1}], a, b, c",
        "detail": "",
        "observed_at": "2026-03-02T08:00:00+00:00",
        "values": {"forward_power_w": 0.0, "reflected_power_w": 1.5, "state": "off"},
    }


def _refused(raw: bytes, items: int, depth: int) -> HTTPException:
    with pytest.raises(HTTPException) as caught:
        parse_json(raw, items, depth)
    return caught.value


def test_an_agent_batch_of_5000_events_is_within_the_default_bounds() -> None:
    batch = {"events": [_event(i) for i in range(5000)]}
    raw = json.dumps(batch).encode()
    assert parse_json(raw, DEFAULTS.max_json_items, DEFAULTS.max_json_depth) == batch


def test_values_are_counted_before_parsing_and_the_limit_is_named() -> None:
    raw = b"[" + b"[]," * 1000 + b"[]]"  # 1,002 values
    assert len(parse_json(raw, 1002, 8)) == 1001
    refused = _refused(raw, 1001, 8)
    assert refused.status_code == 413
    assert refused.detail == "JSON body holds more than 1001 values (setting max_json_items)"


def test_commas_and_brackets_inside_strings_are_not_counted() -> None:
    text = '["' + "[{,}]" * 10_000 + '", "a\\"[,{"]'  # escaped quote: still inside the string
    assert parse_json(text.encode(), 3, 4) == ["[{,}]" * 10_000, 'a"[,{']


def test_nesting_is_bounded_and_the_limit_is_named() -> None:
    deep = b"[" * 33 + b"]" * 33
    refused = _refused(deep, 1000, 32)
    assert refused.status_code == 400
    assert refused.detail == "JSON body nested deeper than 32 levels (setting max_json_depth)"
    assert parse_json(b"[" * 32 + b"]" * 32, 1000, 32) is not None
    # Mixed arrays and objects, with many siblings: depth, not the number of brackets, counts.
    doc = {"a": [{"b": [{"c": [1, 2]}] * 50}] * 50}
    assert parse_json(json.dumps(doc).encode(), 100_000, 6) == doc
    assert _refused(json.dumps(doc).encode(), 100_000, 5).status_code == 400


def test_a_syntax_error_is_left_to_the_parser() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_json(b"[" * 40 + b"}" * 40, 1000, 32)
    with pytest.raises(json.JSONDecodeError):
        parse_json(b'{"a": [1, 2}', 1000, 32)


def test_a_lone_surrogate_is_refused_with_its_place() -> None:
    raw = b'{"username": "bob", "password": "pw\\ud800x"}'
    refused = _refused(raw, 1000, 32)
    assert refused.status_code == 422
    assert refused.detail == [
        {
            "type": "string_unicode",
            "loc": ["body", "password"],
            "msg": "\\ud800 is half of a UTF-16 pair, not a character: send the text as valid "
            "Unicode",
        }
    ]
    assert "pw" not in json.dumps(refused.detail)  # the value itself is never shown
    nested = _refused(b'{"events": [{"title": "ok"}, {"values": {"\\udfff": 1}}]}', 1000, 32)
    assert nested.detail[0]["loc"] == ["body", "events", 1, "values", "\\udfff"]  # type: ignore[index]


def test_surrogate_pairs_and_escaped_backslashes_are_fine() -> None:
    assert parse_json(b'["\\ud83d\\ude00", "\\\\ud800"]', 1000, 32) == ["\U0001f600", "\\ud800"]


def test_a_body_that_is_not_utf8_is_refused_and_a_bom_is_accepted() -> None:
    refused = _refused(b'{"a": "\xed\xa0\x80"}', 1000, 32)  # a surrogate encoded raw
    assert refused.status_code == 400
    assert "not UTF-8" in str(refused.detail)
    assert parse_json(b'\xef\xbb\xbf{"a": 1}', 1000, 32) == {"a": 1}


def test_forwarded_addresses_are_believed_from_trusted_proxies_only() -> None:
    none = TrustedProxies([])
    assert none.client("127.0.0.1", ["203.0.113.9"], "198.51.100.1") == "127.0.0.1"
    local = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert local.client("192.0.2.7", ["203.0.113.9"], None) == "192.0.2.7"  # peer not trusted
    assert local.client("127.0.0.1", ["203.0.113.9"], None) == "203.0.113.9"
    # Right to left: past the trusted hops, the first other address; the client's own claims
    # (left of it) are ignored, and so is X-Real-IP when X-Forwarded-For is there.
    assert local.client("127.0.0.1", ["1.1.1.1, 203.0.113.9", "10.1.2.3"], "9.9.9.9") == (
        "203.0.113.9"
    )
    assert local.client("127.0.0.1", ["10.1.2.3"], None) == "10.1.2.3"  # all trusted: leftmost
    assert local.client("127.0.0.1", ["garbage, 10.1.2.3"], None) == "10.1.2.3"
    assert local.client("127.0.0.1", ["203.0.113.9:4711"], None) == "203.0.113.9"
    assert local.client("127.0.0.1", [], "198.51.100.1") == "198.51.100.1"
    assert local.client("127.0.0.1", [], "not an address") == "127.0.0.1"
    # X-Real-IP twice (a client's own passed on beside the proxy's): neither is believed.
    assert local.client("127.0.0.1", [], ["198.51.100.1", "198.51.100.2"]) == "127.0.0.1"
    assert local.client("127.0.0.1", [], ["198.51.100.1"]) == "198.51.100.1"
    v6 = TrustedProxies(["::1"])
    assert v6.client("::1", ["[2001:db8::5]:443"], None) == "2001:db8::5"


def test_trusted_proxies_setting_parses_lists_and_names_a_bad_entry() -> None:
    env = {"STATIONWATCH_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"}
    assert Settings.from_env(env).trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128")
    assert Settings().trusted_proxies == ()
    with pytest.raises(ValueError, match=r"'proxy\.example' is not an IP address or network"):
        Settings(trusted_proxies=("proxy.example",))


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)


def test_flooding_log_lines_pass_once_per_interval_with_a_count() -> None:
    clock = _Clock()
    flood = RateLimitFilter(["socket.accept() out of system resource"], 10.0, clock)
    first = _record("socket.accept() out of system resource\nsocket: <fd=13>")
    assert flood.filter(first)
    assert first.msg == "socket.accept() out of system resource\nsocket: <fd=13>"
    held = [flood.filter(_record("socket.accept() out of system resource")) for _ in range(500)]
    assert not any(held)
    assert flood.filter(_record("something else"))  # other lines are never held
    clock.now = 10.0
    later = _record("socket.accept() out of system resource")
    assert flood.filter(later)
    assert later.msg == (
        "socket.accept() out of system resource [500 more like this in the last 10 s]"
    )


def test_connection_limits_fit_the_open_files_limit() -> None:
    assert connection_limits(4096, 2048, 65536) == (4096, 2048)
    cap, backlog = connection_limits(4096, 2048, 1024)
    # A full backlog is accepted before any connection can be refused: both must fit.
    assert cap + backlog + RESERVED_FDS <= 1024
    assert cap >= 500 and backlog >= 16


def test_the_lines_that_flooded_hqs_log_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    filters = install_log_filters()
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(1000):
                logging.getLogger("asyncio").error(
                    "socket.accept() out of system resource\nsocket: <fd=13>"
                )
                logging.getLogger("uvicorn.error").warning("Exceeded concurrency limit.")
                logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
            logging.getLogger("uvicorn.error").info("Application startup complete.")
        messages = [record.getMessage() for record in caplog.records]
        assert len(messages) == 4
        assert messages[-1] == "Application startup complete."
    finally:
        for flood_filter in filters:
            for name in ("asyncio", "uvicorn.error", "hq_server.serving"):
                logging.getLogger(name).removeFilter(flood_filter)
