"""Agent log lines: JSON lines carry the site; secrets are not in them."""

from __future__ import annotations

import json
import logging

import pytest

from agent.logs import JsonFormatter, SiteFilter


def test_json_lines_name_the_site(caplog: pytest.LogCaptureFixture) -> None:
    record = logging.LogRecord(
        "agent.runner",
        logging.WARNING,
        __file__,
        1,
        "site=%s device=%s fault %s",
        ("fm1", "tx1", "RAISE"),
        None,
    )
    assert SiteFilter("fm1").filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["site"] == "fm1" and line["level"] == "warning"
    assert line["msg"] == "site=fm1 device=tx1 fault RAISE"
    assert line["ts"].endswith("+00:00")
