"""Removing secrets from device configuration text, and telling noise lines from significant ones.

Secrets (passwords, enable secrets, SNMP communities, TACACS+/RADIUS keys, PSKs, SNMPv3 keys,
PINs, certificate and key blocks) are replaced with `<removed>` before the text leaves the device
module: nothing unscrubbed is stored, diffed, logged or uploaded. A rule is a regex; the text of
its named group `secret` (or, without that group, the whole match) is replaced. Profile rules
(BackupSpec.secrets) add to the built-in ones.

Noise lines (timestamps, "Last configuration change", "ntp clock-period", "Building
configuration", uptime) change on their own; they are kept in the stored text but never make a
change significant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from collectors.profiles import BackupSpec

REMOVED = "<removed>"

_M = re.MULTILINE | re.IGNORECASE
_MODIFIERS = (
    r"(?:[ \t]+(?:\d{1,2}|cipher|simple|plain|encrypted|irreversible-cipher|hash|sha\d*|md5"
    r"|role[ \t]+\S+))*"
)
_S = r"[ \t]+"  # spacing inside one line: a rule must never run on into the next line

# Built-in secret rules, applied in order. Each matches within one line unless it says otherwise.
DEFAULT_SECRETS: tuple[str, ...] = (
    # PEM keys and certificates, anywhere (multi-line).
    r"-----BEGIN [A-Z0-9 ]+-----(?P<secret>.*?)-----END [A-Z0-9 ]+-----",
    # IOS certificate bodies: "certificate ..." then hex lines up to "quit" (multi-line).
    r"^[ \t]*certificate\b[^\n]*\n[ \t]+(?P<secret>[0-9A-Fa-f][0-9A-Fa-f \t\n]*?)\n[ \t]*quit\b",
    # VRP/Comware public-key blocks (multi-line).
    r"public-key-code begin[ \t]*\n(?P<secret>.*?)\n[ \t]*public-key-code end",
    # password / secret with optional type or encryption keywords ("password 7 X", "secret 5 X",
    # "password irreversible-cipher X", "password role network-admin hash X").
    rf"\b(?:password|passwd|secret){_MODIFIERS}{_S}(?P<secret>\"[^\"\n]*\"|[^\s<]\S*)",
    # SNMP communities: IOS "snmp-server community X", VRP/Comware "snmp-agent community read X".
    rf"^[ \t]*snmp-server community{_S}(?P<secret>[^\s<]\S*)",
    rf"^[ \t]*snmp-agent community{_S}(?:read|write)(?:{_S}(?:cipher|simple))?"
    rf"{_S}(?P<secret>[^\s<]\S*)",
    rf"^[ \t]*snmp-server host{_S}\S+(?:{_S}(?:informs|traps))*"
    rf"(?:{_S}version{_S}(?:1|2c|3{_S}\S+))?{_S}(?P<secret>(?!version\b)[^\s<]\S*)",
    # SNMPv3 user keys: "auth sha X priv aes 128 Y" (both found, one match each).
    rf"\b(?:auth|priv){_S}(?:md5|sha\d*|aes(?:{_S}\d+)?|des|3des){_S}(?P<secret>[^\s<]\S*)",
    # TACACS+/RADIUS keys and shared keys.
    rf"^[ \t]*(?:tacacs-server|radius-server|tacacs|radius)\b[^\n]*?[ \t]key"
    rf"(?:{_S}\d)?{_S}(?P<secret>[^\s<]\S*)",
    rf"(?<![\w-])shared-key(?:{_S}(?:cipher|simple))?{_S}(?P<secret>[^\s<]\S*)",
    rf"^[ \t]*key(?:{_S}\d)?{_S}(?P<secret>[^\s<]\S*)[ \t]*$",
    # Pre-shared keys, key strings, authentication keys, Wi-Fi PSKs.
    rf"\b(?:pre-shared-key|pre-share-key|key-string|authentication-key|auth-key|wpa-psk|psk)"
    rf"(?:{_S}(?:address{_S}\S+(?:{_S}[\d.]+(?={_S}))?|ascii|hex|local|remote|key|cipher|simple"
    rf"|\d+|md5))*{_S}(?P<secret>[^\s<]\S*)",
    # SNMPv3 keys in VRP/Comware: "authentication-mode sha [cipher] X privacy-mode aes128 Y".
    rf"\b(?:authentication|privacy)-mode{_S}(?:md5|sha\S*|aes\d*|des\S*|3des)"
    rf"(?:{_S}\d+(?={_S}(?:cipher|simple)))?(?:{_S}(?:cipher|simple))?{_S}(?P<secret>[^\s<]\S*)",
    rf"\bmd5{_S}(?P<secret>[^\s<]\S*)[ \t]*$",
    # PINs (voicemail, admin).
    rf"\bpin{_S}(?P<secret>\d+)",
    # IKE keys: "crypto isakmp key X address A".
    rf"\bisakmp{_S}key(?:{_S}\d)?{_S}(?P<secret>[^\s<]\S*)",
    # Last: VRP/Comware mark any other stored secret with "cipher" or "simple".
    rf"(?<![\w-])(?:cipher|simple){_S}(?!(?:authentication|privacy)-mode\b)(?P<secret>[^\s<]\S*)",
)

DEFAULT_NOISE: tuple[str, ...] = (
    r"^\s*[!#]?\s*Last configuration change\b",
    r"^\s*[!#]?\s*NVRAM config last updated\b",
    r"^\s*[!#]?\s*No configuration change since last restart",
    r"^\s*ntp clock-period\b",
    r"^\s*Building configuration",
    r"^\s*Current configuration\s*:",
    r"^\s*[!#]?\s*(?:Time|Date|Generated|Written|Saved)\s*[:=]",
    r"^\s*[!#]?\s*.*\buptime is\b",
    r"^\s*[!#]?\s*(?:System\s+)?uptime\b",
    r"^\s*[!#]?\s*Last (?:login|saved|modified)\b",
)


@dataclass(frozen=True, slots=True)
class Scrubber:
    """Secret and noise rules of one device model."""

    secrets: tuple[re.Pattern[str], ...]
    noise: tuple[re.Pattern[str], ...]

    @classmethod
    def for_backup(cls, spec: BackupSpec | None) -> Scrubber:
        """The built-in rules plus a profile's own (only its own when default_rules is off)."""
        secrets: list[str] = []
        noise: list[str] = []
        if spec is None or spec.default_rules:
            secrets += DEFAULT_SECRETS
            noise += DEFAULT_NOISE
        if spec is not None:
            secrets += spec.secrets
            noise += spec.noise
        return cls(_compile(secrets, re.DOTALL), _compile(noise, 0))

    def scrub(self, text: str) -> str:
        """The text with every secret replaced by <removed>."""
        for rule in self.secrets:
            text = rule.sub(_replace, text)
        return text

    def is_noise(self, line: str) -> bool:
        """Whether a line changes on its own and never makes a change significant."""
        return any(rule.search(line) for rule in self.noise)

    def significant(self, text: str) -> str:
        """The text without its noise lines (what a significant change is judged on)."""
        return "\n".join(line for line in text.split("\n") if not self.is_noise(line))


def _compile(patterns: Iterable[str], extra: int) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, _M | extra) for p in patterns)


def _replace(match: re.Match[str]) -> str:
    """The match with its `secret` group (or all of it) replaced by <removed>."""
    if match.string[match.end() :].lstrip(" \t").startswith(REMOVED):
        return match.group(0)  # already scrubbed: this "secret" is a keyword before <removed>
    if "secret" not in match.re.groupindex:
        return REMOVED
    start, end = match.span("secret")
    if start < 0:
        return match.group(0)
    base = match.start()
    whole = match.group(0)
    return whole[: start - base] + REMOVED + whole[end - base :]


def normalise(text: str) -> str:
    """Line ends as LF, no trailing blanks, no leading/trailing empty lines, a final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
