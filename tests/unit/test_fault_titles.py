"""Every fault title a station or HQ raises has its Simplified Chinese title (issue 13): the
rules of the bundled profiles carry `title_zh`, and the codes of protocol/faults.py theirs."""

from __future__ import annotations

import re

from checks.profile_rules import builtin_profiles
from protocol import faults

HAN = re.compile(r"[\u4e00-\u9fff]")


def test_every_rule_of_the_bundled_profiles_has_a_chinese_title() -> None:
    missing = [
        f"{name}: {rule.code} ({rule.title})"
        for name, profile in builtin_profiles().items()
        for rule in [*profile.checks, *profile.traps, *profile.log_patterns]
        if rule.title and not HAN.search(rule.title_zh)
    ]
    assert missing == []


def test_every_fault_code_of_the_protocol_has_both_titles() -> None:
    codes = {
        value for name, value in vars(faults).items() if name.isupper() and isinstance(value, str)
    }
    assert codes == set(faults.TITLES)
    for code, (english, chinese) in faults.TITLES.items():
        assert faults.title(code) == english and english.isascii()
        assert faults.title_zh(code) == chinese and HAN.search(chinese)
    assert faults.title_zh("off_air") == ""
