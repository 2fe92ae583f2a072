"""Texts made to make a careless regular expression backtrack: the agent's scrubber, HQ's secret
check and HQ's JSON body screening read each once.

Each input is large (up to 1 MiB on one line): a rule that rescans the rest of the text from
each of its starts takes minutes over it (the suite's timeout fails the test), a linear one a
fraction of a second. The tests assert what comes out; figures are in benchmarks/scrub_bench.py.
"""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from collectors.scrub import REMOVED, Scrubber
from hq_server.api.jsonbody import check_items, parse_json
from hq_server.jobs.secret_check import MAX_MODIFIERS, unscrubbed_lines

MiB = 1024 * 1024
SCRUBBER = Scrubber.for_backup(None)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
PEM_SCRUBBED = f"-----BEGIN RSA PRIVATE KEY-----{REMOVED}-----END RSA PRIVATE KEY-----\n"


def _repeat(unit: str, size: int = MiB) -> str:
    return unit * (size // len(unit))


def test_a_line_of_pem_begins_without_an_end() -> None:
    """Each BEGIN looks for its END up to the next BEGIN only, not to the end of the text."""
    run = _repeat("-----BEGIN A-----")
    assert SCRUBBER.scrub(f"{run}\n{PEM}") == f"{run}\n{PEM_SCRUBBED}"
    assert unscrubbed_lines(run) == []


def test_public_key_blocks_without_an_end() -> None:
    """Begin lines without their end: each block body stops at the next begin line."""
    begins = _repeat("public-key-code begin\n")
    block = "public-key-code begin\n 3082010A 02820101\npublic-key-code end\n"
    out = SCRUBBER.scrub(begins + block)
    assert out == f"{begins}public-key-code begin\n{REMOVED}\npublic-key-code end\n"


@pytest.mark.parametrize("prefix", ["", "#", "!  "])
def test_noise_on_a_line_of_blanks(prefix: str) -> None:
    """A line of blanks (and a comment mark) is read once by each noise rule."""
    blanks = _repeat(" \t", 256 * 1024)
    assert not SCRUBBER.is_noise(f"{blanks}{prefix}x")
    assert SCRUBBER.is_noise(f"{blanks}{prefix}Last configuration change at 10:00")
    assert SCRUBBER.is_noise(f"{blanks}{prefix}switch uptime is 3 weeks")
    text = f"hostname a\n{blanks}{prefix}\nend\n"
    assert SCRUBBER.significant(text) == text


@pytest.mark.parametrize(
    "unit",
    [
        "auth sha <removed> ",  # a keyword slot each few words, each value scrubbed
        "md5 1 key <removed> ",
        'key="<removed>" ',  # an assignment slot each few words
        '"password": "<removed>", ',
    ],
)
def test_hq_reads_a_line_of_scrubbed_slots_once(unit: str) -> None:
    """Each slot of HQ's check looks at a few words after it, never the rest of the line."""
    line = _repeat(unit)
    assert unscrubbed_lines(line) == []
    assert unscrubbed_lines(f"{line}{unit.replace(REMOVED, 'Clear-1')}") == [1]
    assert SCRUBBER.scrub(line) == line


def test_hq_refuses_a_run_of_type_words_longer_than_any_device_prints() -> None:
    """Past MAX_MODIFIERS type words after a keyword the next word is the value, whatever it
    is: such a line is refused (configurations print a few, e.g. `key 7 cipher X`)."""
    assert unscrubbed_lines("password 7 " + "cipher " * (MAX_MODIFIERS - 2) + REMOVED) == []
    assert unscrubbed_lines("password 7 " + "cipher " * (MAX_MODIFIERS + 2) + REMOVED) == [1]


def test_a_mebibyte_of_secret_lines() -> None:
    """Many secrets: each replaced in place (no copy of the rest of the text per secret)."""
    raw = _repeat("enable secret 5 $1$abcd$Q9oFq1mYwV0n3bZkS7uJd.\n")
    out = SCRUBBER.scrub(raw)
    assert out == raw.replace("$1$abcd$Q9oFq1mYwV0n3bZkS7uJd.", REMOVED)
    assert unscrubbed_lines(raw)[:2] == [1, 2] and unscrubbed_lines(out) == []


def test_json_strings_left_open_are_read_once() -> None:
    """A body of escaped quotes without a closing one: counted in one pass, then refused."""
    body = b"[" + b"1," * 200 + b'"' + b'\\"' * (MiB // 4) + b"]"
    with pytest.raises(HTTPException) as refused:
        check_items(body, max_items=100)
    assert refused.value.status_code == 413
    check_items(body, max_items=1000)  # the open string holds the rest: 202 values
    with pytest.raises(ValueError, match="Unterminated string"):
        parse_json(body, max_items=1000, max_depth=8)
