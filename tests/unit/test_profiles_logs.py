"""Profiles' log side: syslog parsing, log-pattern checks with dedup and clears, log cursors."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.logpatterns import LogPattern, LogPatternChecker
from checks.profile_rules import builtin_profiles
from checks.tracker import FaultTracker
from collectors.logs import LogCursors
from collectors.syslog import parse
from protocol.wire import EventKind


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (
            b'<187>1 2026-11-23T10:00:01.123Z PBX-01 alarmd 812 ALM [origin ip="10.0.0.9"]'
            b" TRUNK-2 E1 loss of signal",
            (23, 3, "2026-11-23T10:00:01.123Z", "PBX-01", "alarmd", "TRUNK-2 E1 loss of signal"),
        ),
        (
            b"<13>1 - - - - - -",
            (1, 5, "", "", "", ""),
        ),
        (
            b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick",
            (4, 2, "Oct 11 22:14:15", "mymachine", "su", "'su root' failed for lonvick"),
        ),
        (
            b"<165>Nov  3 04:05:06 sw1 %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
            (
                20,
                5,
                "Nov  3 04:05:06",
                "sw1",
                "%LINK-3-UPDOWN",
                "Interface Gi0/1, changed state to down",
            ),
        ),
        (b"no header at all\n", (1, 5, "", "", "", "no header at all")),
        (b"<999>bad pri", (1, 5, "", "", "", "<999>bad pri")),
    ],
)
def test_syslog_parse(datagram: bytes, expected: tuple[object, ...]) -> None:
    """RFC 5424, RFC 3164 and bare text all parse; bad PRIs read as user.notice."""
    m = parse(datagram)
    assert (m.facility, m.severity, m.timestamp, m.hostname, m.app, m.text) == expected


def test_log_patterns_raise_dedup_and_clear() -> None:
    """Repeated lines make one finding; the tracker raises once; a clear line clears it."""
    checker = LogPatternChecker(builtin_profiles()["generic_pbx_ssh"].log_patterns)
    tracker = FaultTracker()
    lines = ["TRUNK-2 E1 loss of signal"] * 50 + ["ok line", "TRUNK-3 E1 loss of signal"]
    findings = checker.evaluate(lines, tracker.view("pbx1"), now=100.0)
    assert sorted((f.code, f.component, f.active, int(f.grade)) for f in findings) == [
        ("e1_loss_of_signal", "TRUNK-2", True, 2),
        ("e1_loss_of_signal", "TRUNK-3", True, 2),
    ]
    assert "50 matching line(s)" in next(f.detail for f in findings if f.component == "TRUNK-2")
    assert len(tracker.apply("pbx1", findings)) == 2
    again = checker.evaluate(["TRUNK-2 E1 loss of signal"], tracker.view("pbx1"), now=101.0)
    assert tracker.apply("pbx1", again) == []  # already raised: no second event
    cleared = checker.evaluate(["TRUNK-2 E1 signal restored"], tracker.view("pbx1"), now=102.0)
    [change] = tracker.apply("pbx1", cleared)
    assert (change.kind, change.component) == (EventKind.CLEAR, "TRUNK-2")


def test_log_pattern_quiet_time_clears() -> None:
    """A pattern with clear_after_s clears once no matching line came for that long."""
    pattern = LogPattern(code="fan_failure", title="Fan", pattern="fan fail", grade=3,
                         clear_after_s=60)  # fmt: skip
    checker = LogPatternChecker([pattern])
    tracker = FaultTracker()
    tracker.apply("d", checker.evaluate(["fan failed"], tracker.view("d"), now=0.0))
    assert checker.evaluate([], tracker.view("d"), now=30.0) == []
    [finding] = checker.evaluate([], tracker.view("d"), now=61.0)
    assert not finding.active


def test_cursor_yields_only_new_lines_and_survives_restart(tmp_path: Path) -> None:
    """First read sets the cursor; later reads return only new lines, also after a restart."""
    state = tmp_path / "log_cursors.json"
    cursors = LogCursors(state)
    log = "10:00 call 1 ok\n10:01 call 2 ok\n"
    assert cursors.new_lines("mcu1", "call_log", log) == ([], True)
    log += "10:02 call 3 failed\n"
    assert cursors.new_lines("mcu1", "call_log", log) == (["10:02 call 3 failed"], False)
    assert cursors.new_lines("mcu1", "call_log", log) == ([], False)
    restarted = LogCursors(state)
    log += "10:03 call 4 ok\n"
    assert restarted.new_lines("mcu1", "call_log", log) == (["10:03 call 4 ok"], False)
    # Log cleared on the device: everything it now shows is new.
    assert restarted.new_lines("mcu1", "call_log", "11:00 boot\n") == (["11:00 boot"], False)
