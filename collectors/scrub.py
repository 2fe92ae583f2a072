"""Removing secrets from device configuration text, and telling noise lines from significant ones.

Secrets (passwords, enable secrets, SNMP communities, TACACS+/RADIUS keys, PSKs, SNMPv3 keys,
PINs, certificate and key blocks) are replaced with `<removed>` before the text leaves the device
module: nothing unscrubbed is stored, diffed, logged or uploaded. A rule is a regex; the text of
its named group `secret` (or, without that group, the whole match) is replaced. Profile rules
(BackupSpec.secrets) add to the built-in ones.

The built-in rules know device CLIs (Cisco IOS/NX-OS, Huawei VRP, H3C Comware, Junos in set and
curly form) and setting files (`secret = x`, `password=x`, `api_key: x`, `"password": "x"`,
`localAdminPassword="x"`, `Password: "x"`, wpa_supplicant, hostapd, ifupdown, net-snmp). Only the
value goes; the keyword stays so the line still reads. Scrubbing is idempotent: scrubbed text
comes out unchanged. HQ checks the result again with rules of its own (hq_server.secret_check).

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
    r"(?:[ \t]+(?:\d{1,2}|cipher|simple|plain|encrypted|irreversible-cipher|hash|sha\d*|md5|enc"
    r"|role[ \t]+\S+|level[ \t]+\d+))*"
)
_S = r"[ \t]+"  # spacing inside one line: a rule must never run on into the next line
# One value: a quoted string (spaces and all) or a word. Never `<removed>` (already scrubbed),
# nor `=`/`:` (an assignment, scrubbed by its own rule) or brackets (Junos/JSON structure).
_VALUE = r"(?:\"[^\"\n]*\"|'[^'\n]*'|(?![=:\[\]{};])[^\s<]\S*)"
_SECRET = rf"(?P<secret>{_VALUE})"
# Words after `password` that are settings of the password policy, not a password.
_POLICY_SETTING = (
    r"(?!(?:policy|history|expire|encryption|format|minimum-length|maximum-length|strength-check)"
    r"(?![\w-]))"
)
# Names of settings that hold a secret in `name = value`, `name: value`, `"name": "value"`,
# `name="value"` files (INI, YAML, JSON, XML attributes, .env): the name ends in one of these.
_ASSIGNED = (
    r"[\w.-]*?(?:pass(?:word|wd|phrase)(?:[_.-]?hash(?:ed)?)?|pswd|secret|token|apikey"
    r"|snmpstring|community(?:[_.-]?(?:name|string))?"
    r"|(?:api|private|preshared|pre[_.-]shared|access|secret|auth|wep|master|encryption)"
    r"[_.-]?key\d*)"
    r"|(?:[\w.-]*[_.-])?(?:pwd|pin|psk)|key"
)

# The body of a block: any text up to (not across) the next marker of a block's begin or end.
# Written unrolled, so that a failed match is given up in one pass (no backtracking into it).
_UNTIL_PEM = r"[^-]*(?:-(?!----(?:BEGIN|END) )[^-]*)*"
_PUBLIC_KEY_LINE = r"(?![ \t]*public-key-code (?:begin|end))[^\n]*"
_UNTIL_PUBLIC_KEY = rf"{_PUBLIC_KEY_LINE}(?:\n{_PUBLIC_KEY_LINE})*"

# Built-in secret rules, applied in order. Each matches within one line unless it says otherwise.
DEFAULT_SECRETS: tuple[str, ...] = (
    # PEM keys and certificates, anywhere (multi-line). The body never runs past another BEGIN
    # or END line: text of many BEGINs without an END is read once, not once a BEGIN.
    rf"-----BEGIN [A-Z0-9 ]+-----(?P<secret>{_UNTIL_PEM})-----END [A-Z0-9 ]+-----",
    # IOS certificate bodies: "certificate ..." then hex lines up to "quit" (multi-line).
    r"^[ \t]*certificate\b[^\n]*\n[ \t]+(?P<secret>[0-9A-Fa-f][0-9A-Fa-f \t\n]*?)\n[ \t]*quit\b",
    # VRP/Comware public-key blocks (multi-line), read up to the next begin or end line.
    rf"public-key-code begin[ \t]*\n(?P<secret>{_UNTIL_PUBLIC_KEY})\n[ \t]*public-key-code end",
    # Junos marks every stored secret: `secret "$9$..."; ## SECRET-DATA`.
    # (Anchored at the line start so that a line of many quotes is read once, not once a quote.)
    r"^[^\n]*?(?P<secret>\"[^\"\n]*\")[^\"\n]*##[ \t]*SECRET-DATA",
    # Assignments: `secret = x`, `password=x`, `api_key: x`, `"password": "x"`, `psk="x"`,
    # `Password: "x"` (Cisco codecs). A quoted value keeps its quotes (the file stays valid
    # JSON/XML); an unquoted one runs to the end of the line (INI and YAML values may hold
    # spaces), less a trailing comma.
    # (The lookahead first finds a word followed by `=` or `:`, cheaply, before the names are
    # tried on it.)
    rf"(?<![\w.-])(?=[\"']?[\w.-]+[\"']?[ \t]*[=:])[\"']?(?:{_ASSIGNED})[\"']?[ \t]*(?:=>?|:)[ \t]*"
    r"(?P<q>[\"'])?"
    r"(?P<secret>(?(q)(?:(?!(?P=q))[^\n])+|[^\s<\"'{\[|>][^\n]*?))(?(q)(?P=q)|[ \t]*,?[ \t]*$)",
    # Asterisk voicemail.conf: `2010 => 4711,Name,mail` (the PIN).
    r"^[ \t]*\d+[ \t]*=>[ \t]*(?P<secret>[-*]?\d+)(?=[ \t]*,)",
    # ifupdown `wpa-passphrase` runs to the end of the line (a passphrase may hold spaces).
    rf"^[ \t]*wpa-passphrase{_S}(?P<secret>[^\s<][^\n]*?)[ \t]*$",
    # password / secret with optional type or encryption keywords ("password 7 X", "secret 5 X",
    # "password irreversible-cipher X", "password role network-admin hash X").
    # (FortiOS marks stored ones `ENC`; Junos also takes `plain-text-password-value X`.)
    rf"\b(?:password|passwd|secret|plain-text-password-value){_MODIFIERS}{_S}{_POLICY_SETTING}"
    rf"{_SECRET}",
    # SNMP communities: IOS "snmp-server community X", Junos "set snmp community X" and its
    # curly form "community X {", VRP/Comware "snmp-agent community read X", net-snmp.
    rf"^[ \t]*(?:snmp-server|(?:set{_S})?snmp){_S}community{_S}{_SECRET}",
    rf"^[ \t]*community{_S}{_SECRET}(?={_S}\{{)",
    rf"\.community(?<=\w\.community){_S}{_SECRET}",  # `snmp.community x` (codecs)
    rf"^[ \t]*snmp-agent community{_S}(?:read|write)(?:{_S}(?:cipher|simple))?{_S}{_SECRET}",
    rf"^[ \t]*snmp-server host{_S}\S+(?:{_S}(?:informs|traps))*"
    rf"(?:{_S}version{_S}(?:1|2c|3{_S}\S+))?{_S}(?P<secret>(?!version\b){_VALUE})",
    rf"^[ \t]*r[ow]community6?{_S}{_SECRET}",
    rf"^[ \t]*com2sec6?{_S}(?:-Cn{_S}\S+{_S})?\S+{_S}\S+{_S}{_SECRET}",
    rf"^[ \t]*createUser{_S}(?:-e{_S}\S+{_S})?\S+{_S}(?:MD5|SHA\S*){_S}{_SECRET}",
    rf"^[ \t]*createUser\b[^\n]*?{_S}(?:AES\S*|DES){_S}{_SECRET}",
    # SNMPv3 user keys: "auth sha X priv aes 128 Y" (both found, one match each); NX-OS shows
    # "priv aes-128 0x..." or "priv 0x..." (DES).
    rf"\b(?:auth|priv){_S}(?:md5|sha\d*|aes(?:-\d+|{_S}\d+)?|des|3des){_S}{_SECRET}",
    rf"\bpriv{_S}(?P<secret>0x[0-9a-f]+)",
    # TACACS+/RADIUS keys and shared keys.
    rf"^[ \t]*(?:tacacs-server|radius-server|tacacs|radius)\b[^\n]*?[ \t]key"
    rf"(?:{_S}\d)?{_S}{_SECRET}",
    rf"(?<![\w-])shared-key(?:{_S}(?:cipher|simple))?{_S}{_SECRET}",
    rf"^[ \t]*key(?:{_S}\d)?{_S}{_SECRET}[ \t]*$",
    # Pre-shared keys, key strings, authentication keys, Wi-Fi PSKs and passphrases.
    rf"\b(?:pre-shared-key|preshared-key|pre-share-key|key-string|authentication-key|auth-key"
    rf"|wpa-psk|psk|psksecret|pass-phrase|passphrase)"
    rf"(?:{_S}(?:address{_S}\S+(?:{_S}[\d.]+(?={_S}))?|ascii-text|ascii|hexadecimal|hex|local|enc"
    rf"|remote|key|cipher|simple|plain|pass-phrase|type{_S}\S+|value|\d+|md5))*{_S}{_SECRET}",
    # SNMPv3 keys in VRP/Comware: "authentication-mode sha [cipher] X privacy-mode aes128 Y";
    # VRP OSPF/IS-IS: "authentication-mode md5 1 plain|cipher X".
    rf"\b(?:authentication|privacy)-mode{_S}(?:md5|sha\S*|aes\d*|des\S*|3des)"
    rf"(?:{_S}\d+(?={_S}(?:cipher|simple|plain)))?(?:{_S}(?:cipher|simple|plain))?{_S}{_SECRET}",
    # md5 keys at the end of a line: IOS "message-digest-key 1 md5 7 X", Junos "md5 1 key X".
    rf"\bmd5(?:{_S}\d+(?:{_S}key)?)?{_S}{_SECRET}[ \t]*$",
    # HSRP, GLBP and VRRP plain-text authentication: "standby 1 authentication text X",
    # "vrrp 1 authentication X" (not "authentication md5 key-chain NAME").
    rf"^[ \t]*(?:standby|glbp|vrrp)(?:{_S}\d+)?{_S}authentication(?:{_S}text)?{_S}"
    rf"(?!(?:md5|text)\b){_SECRET}[ \t]*$",
    # HTTP credentials: "Authorization: Basic X", "Proxy-Authorization: Bearer X".
    rf"\b(?:proxy-)?authorization[ \t]*:[ \t]*(?:basic|bearer|token|negotiate){_S}{_SECRET}",
    # XML elements (Poly, codecs): "<password>X</password>", "<AdminPassword>X</AdminPassword>".
    # (Not a bare `<key>`: plist and other XML name their keys that way.)
    rf"<(?!key>)(?P<tag>{_ASSIGNED})>[ \t]*(?P<secret>[^<\s][^<\n]*?)[ \t]*</(?P=tag)>",
    # PINs (voicemail, admin).
    rf"\bpin{_S}(?P<secret>\d+)",
    # IKE keys: "crypto isakmp key X address A".
    rf"\bisakmp{_S}key(?:{_S}\d)?{_S}{_SECRET}",
    # Avaya phone settings files: "SET PROCPSWD 27238", "SET SNMPSTRING x".
    rf"^[ \t]*SET{_S}(?:\w*(?:PASSWORD|PASSWD|PSWD)|SNMPSTRING){_S}{_SECRET}",
    # Redis.
    rf"^[ \t]*(?:requirepass|masterauth){_S}{_SECRET}",
    # Credentials in URLs: scheme://user:password@host.
    r"(?<![\w+.-])[a-z][a-z0-9+.-]*://[^\s/@:]*:(?P<secret>[^\s/@]+)@",  # user may be empty
    # Last: VRP/Comware mark any other stored secret with "cipher" or "simple".
    # Not SSH cipher lists (`ssh server cipher aes256_ctr aes128_ctr`): ciphertext never starts
    # with an algorithm's name.
    rf"(?<![\w-])(?:cipher{_S}(?!(?:aes|3des|des|blowfish|arcfour|chacha|camellia)[\w-]*(?:\s|$))"
    rf"|simple{_S})(?!(?:authentication|privacy)-mode\b){_SECRET}",
    # Secrets by their shape alone, wherever they stand (`root:$6$salt$hash:19000:...`): crypt
    # hashes, IOS type 8/9, Junos $9$, Comware $c$/$h$, Huawei ciphertext.
    r"(?P<secret>\$(?:1|2[aby]?|5|6|7|8|9|y|1[a-d]|[hc]\$\d)\$[./\w]{4,}[^\s\"'<:;,]*"
    r"|%\^%#\S+?%\^%#|%@%@\S+?%@%@|@%@%\S+?@%@%)",
)

# A comment mark between blanks: `(?:[!#]\s*)?`, never `[!#]?\s*` after `\s*` (two blank runs
# side by side are tried in every split of a line of blanks: cubic in its length).
DEFAULT_NOISE: tuple[str, ...] = (
    r"^\s*(?:[!#]\s*)?Last configuration change\b",
    r"^\s*(?:[!#]\s*)?NVRAM config last updated\b",
    r"^\s*(?:[!#]\s*)?No configuration change since last restart",
    r"^\s*ntp clock-period\b",
    r"^\s*Building configuration",
    r"^\s*Current configuration\s*:",
    r"^\s*(?:[!#]\s*)?(?:Time|Date|Generated|Written|Saved)\s*[:=]",
    r"\buptime is\b",
    r"^\s*(?:[!#]\s*)?(?:System\s+)?uptime\b",
    r"^\s*(?:[!#]\s*)?Last (?:login|saved|modified)\b",
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
        """The text with every secret replaced by <removed>, its line ends made LF first: a
        device printing CRLF (SSH, serial lines) would otherwise hide a line's end from the
        rules anchored there."""
        text = text.replace("\r\n", "\n").replace("\r", "\n")
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


# Looked for where a match ends, in place: copying the rest of the text once a match would make
# scrubbing quadratic in the number of secrets.
_BEFORE_REMOVED = re.compile(rf"[ \t]*{re.escape(REMOVED)}")


def _replace(match: re.Match[str]) -> str:
    """The match with its `secret` group (or all of it) replaced by <removed>."""
    if _BEFORE_REMOVED.match(match.string, match.end()):
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
