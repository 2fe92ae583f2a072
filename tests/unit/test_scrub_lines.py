"""The agent's scrubber against secret lines as real devices and files print them (the table in
tests/secret_lines.py): every secret value goes, its keyword stays, clean lines stay untouched,
and HQ's independent check agrees on each line before and after scrubbing."""

from __future__ import annotations

import pytest

from collectors.profiles import builtin_profiles
from collectors.scrub import REMOVED, Scrubber
from hq_server.jobs.secret_check import unscrubbed_lines
from tests.secret_lines import CLEAN_LINES, SECRET_LINES, SecretLine
from tests.unit.test_scrub import CONFIGS
from tests.unit.test_scrub import SECRETS as SAMPLE_SECRETS

SCRUBBER = Scrubber.for_backup(None)  # the built-in rules only: no profile helps here


def test_the_table_is_broad() -> None:
    """At least 40 secret lines from at least ten kinds of device or file."""
    assert len(SECRET_LINES) >= 40
    assert len({line.source for line in SECRET_LINES}) >= 10


@pytest.mark.parametrize("line", SECRET_LINES, ids=lambda line: line.id)
def test_the_agent_scrubs_the_value_and_keeps_the_keyword(line: SecretLine) -> None:
    """The scrubbed line is exactly the expected one: no secret left, keyword and layout kept."""
    out = SCRUBBER.scrub(line.raw)
    for secret in line.secrets:
        assert secret not in out, f"{secret!r} survived"
    assert out == line.scrubbed
    assert SCRUBBER.scrub(out) == out  # idempotent


@pytest.mark.parametrize("line", SECRET_LINES, ids=lambda line: line.id)
def test_hq_flags_the_raw_line_and_accepts_the_scrubbed_one(line: SecretLine) -> None:
    """HQ's own check finds the clear secret, and is satisfied once it is <removed>."""
    assert unscrubbed_lines(f"hostname x\n{line.raw}\nend\n") == [2]
    assert REMOVED in line.scrubbed
    assert unscrubbed_lines(f"hostname x\n{line.scrubbed}\nend\n") == []


def test_a_whole_file_of_secret_lines() -> None:
    """All lines at once: scrubbed line for line, every line flagged raw, none once scrubbed."""
    raw = "\n".join(line.raw for line in SECRET_LINES) + "\n"
    out = SCRUBBER.scrub(raw)
    assert out == "\n".join(line.scrubbed for line in SECRET_LINES) + "\n"
    assert unscrubbed_lines(raw) == list(range(1, len(SECRET_LINES) + 1))
    assert unscrubbed_lines(out) == []


@pytest.mark.parametrize("line", CLEAN_LINES)
def test_clean_lines_are_left_alone(line: str) -> None:
    """No secret, no change: neither the agent nor HQ touches the line."""
    assert SCRUBBER.scrub(line + "\n") == line + "\n"
    assert unscrubbed_lines(line) == []


@pytest.mark.parametrize(
    "line",
    [
        "snmp-server user u g v3 auth sha <removed> priv aes 128 Pr1vClear",
        "username admin password 0 <removed> secret 5 $1$Xk2p$Q9oFq1mYwV0n3bZkS7uJd.",
        '<reg reg.1.auth.password="<removed>" reg.2.auth.password="Sip-2" />',
        "secret = <removed> s3cret",
        "secret <removed> s3cret",
        "secret hunter2 <removed>",
    ],
)
def test_hq_does_not_trust_a_line_for_its_marker(line: str) -> None:
    """A line may carry a removed secret and a clear one: the marker does not excuse it."""
    assert unscrubbed_lines(line) == [1]


# The sample captures and the profile each is taken with; tests/data/configs/scrubbed holds what
# the scrubber made of them before the key=value rules were added, and must go on making.
CAPTURES = {
    "ios_switch.cfg": "cisco_ios_switch",
    "huawei_vrp.cfg": "huawei_vrp",
    "hpe_comware.cfg": "hpe_comware",
    "pbx.cfg": "generic_pbx_ssh",
    "codec.cfg": "generic_mcu_ssh",
}


@pytest.mark.parametrize(("name", "profile"), sorted(CAPTURES.items()))
def test_sample_captures_scrub_exactly_as_before(name: str, profile: str) -> None:
    """New rules change nothing in the captures: the same bytes as before they existed."""
    scrubber = Scrubber.for_backup(builtin_profiles()[profile].backup)
    out = scrubber.scrub((CONFIGS / name).read_text(encoding="utf-8"))
    assert out == (CONFIGS / "scrubbed" / name).read_text(encoding="utf-8")
    assert unscrubbed_lines(out) == []


# Certificate and public-key bodies: the agent removes them too, but they are no secret to refuse.
PUBLIC = {"3082022B", "2A864886", "D8E2B5A1"}


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_hq_flags_every_secret_line_of_the_captures(name: str) -> None:
    """HQ's check, on its own, finds each line of a raw capture that holds a known secret."""
    raw = (CONFIGS / name).read_text(encoding="utf-8")
    holding = [
        n
        for n, line in enumerate(raw.splitlines(), start=1)
        if any(secret in line for secret in SAMPLE_SECRETS[name] if secret not in PUBLIC)
    ]
    assert holding and set(holding) <= set(unscrubbed_lines(raw))


@pytest.mark.parametrize("eol", ["\r\n", "\r"], ids=["CRLF", "CR"])
def test_lines_ending_in_carriage_returns_are_scrubbed_alike(eol: str) -> None:
    """Devices print CRLF over SSH and serial lines: a rule that ends at the line's end must
    still see it (the text comes out with LF line ends, as it is stored)."""
    raw = eol.join(line.raw for line in SECRET_LINES) + eol
    assert SCRUBBER.scrub(raw) == "\n".join(line.scrubbed for line in SECRET_LINES) + "\n"
