"""HQ's own check that a config backup holds no secret in clear (the second line of defence).

The agent scrubs secrets before upload and puts the marker `<removed>` in their place. This
check is written apart from the agent's rules (collectors/scrub.py), on purpose, so that a gap in
one is not a gap in both. It looks for *slots*, the places where a secret value stands:

- after a secret keyword and its type, encryption or algorithm words (`password 7 X`,
  `snmp-server community X`, `pre-shared-key ascii-text "X"`, `auth sha X priv aes 128 Y`);
- after the `=`, `:` or `=>` of a setting whose name ends in a secret's name (`secret = X`,
  `api_key: X`, `"password": "X"`, `localAdminPassword="X"`, `Password: "X"`);
- values that are secrets by their shape alone, wherever they stand (crypt hashes, Junos `$9$`,
  Huawei ciphertext, a private key, the password of a URL).

A line is flagged when any slot in it holds something other than the marker: a marker elsewhere
on the line excuses nothing (`auth sha <removed> priv aes 128 X` is flagged).
"""

from __future__ import annotations

import re
from itertools import islice

SCRUB_MARKER = "<removed>"

_I = re.IGNORECASE

# A line that starts with `password` or `secret` (`enable secret 5 X`, `super password level 15
# cipher X`, Junos `secret "$9$..."; ## SECRET-DATA`) holds one value and nothing after it but a
# comment: `secret <removed> s3cret` is what a scrubber that took `=` for the value leaves.
_LEADING_SECRET = re.compile(
    r"^\s*(?:enable\s+(?:algorithm-type\s+\S+\s+)?|super\s+)?(?:password|passwd|secret)\s", _I
)

# Where a secret keyword ends and its value (after type and encryption words) begins.
_KEYWORD_SLOTS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, _I)
    for p in (
        # Cisco-style CLIs: `password X`, `username u privilege 15 secret 5 X`,
        # `local-user u password cipher X`, `neighbor A password 7 X`.
        _LEADING_SECRET.pattern,
        r"\b(?:username|local-user|user)\s+\S+(?:\s+(?:privilege|level)\s+\d+)?"
        r"(?:\s+algorithm-type\s+\S+)?\s+(?:password|secret)\s",
        r"\b(?:password|passwd|secret)(?=\s+(?:\d{1,2}|cipher|simple|irreversible-cipher|hash"
        r"|encrypted)\s+\S)\s",
        # Anywhere else on a line, when the value ends it: `ip ftp password X`, `set password
        # ENC X` (FortiOS), Junos `plain-text-password-value X` (not `description password
        # reset desk`).
        r"(?<![\w.-])(?:password|passwd|secret|plain-text-password-value)\s"
        r"(?=\s*(?:(?:\d{1,2}|enc|encrypted|cipher|simple|hash)\s+)?\S+\s*$)",
        # A quoted value after a password or secret (Junos, codecs): `secret "$9$..."`.
        r"(?<![\w.-])(?:[\w.-]*password|[\w-]*secret)\s+(?=(?:[\w-]+\s+){0,2}[\"'])",
        # Dotted or hyphenated settings: `sip.password x`, `auth-password x`, `snmp.community x`.
        r"(?<![\w.-])\w+(?:[.-]\w+)*(?:[.-](?:password|passwd|secret)|\.community)\s",
        # Keys that always precede a secret.
        r"(?<![\w-])(?:pre-?shared-key|pre-share-key|key-string|authentication-key|md5-key"
        r"|shared-key|wpa-psk|psk|psksecret|pass-?phrase|wpa-passphrase|isakmp\s+key"
        r"|message-digest-key\s+\d+\s+md5|requirepass|masterauth)\s",
        r"^\s*(?:tacacs-server|radius-server|hwtacacs-server|tacacs|radius)\b.*?\skey\s",
        r"^\s*key\s+(?:authentication|authorization|accounting)\s",
        r"^\s*key\s(?=\s*(?:\d\s+)?\S+\s*$)",
        r"\bmd5\s+\d+\s+key\s",
        # SNMP communities (IOS, Junos, VRP/Comware, net-snmp) and SNMPv3 keys.
        r"\bsnmp-server\s+community\s",
        r"^\s*(?:set\s+)?snmp\s+community\s",
        r"^\s*community\s(?=\s*\S+\s+\{)",
        r"\bsnmp-agent\s+community\s+(?:read|write)\s",
        r"\bsnmp-server\s+host\s+\S+(?:\s+(?:informs|traps))*(?:\s+version\s+(?:1|2c|3\s+\S+))?\s",
        r"^\s*r[ow]community6?\s",
        r"^\s*com2sec6?\s+(?:-Cn\s+\S+\s+)?\S+\s+\S+\s",
        r"^\s*createUser\s+(?:-e\s+\S+\s+)?\S+\s+(?:md5|sha\S*)\s",
        r"^\s*createUser\s.*\s(?:aes\S*|des)\s",
        r"\bauth\s+(?:md5|sha\S*)\s",
        r"\bpriv\s+(?:(?:aes\S*|des\S*|3des)(?:\s+\d{3})?\s+|(?=0x))",
        r"\b(?:authentication|privacy)-mode\s+(?:md5|sha\S*|aes\S*|des\S*|3des)\s",
        # HSRP, GLBP, VRRP plain-text authentication; HTTP credentials.
        r"^\s*(?:standby|glbp|vrrp)(?:\s+\d+)?\s+authentication(?:\s+text)?\s"
        r"(?!\s*(?:md5|text)\b)",
        r"\b(?:proxy-)?authorization\s*:\s*(?:basic|bearer|token|negotiate)\s",
        # PINs; Avaya phone settings files.
        r"\bpin\s+(?=\d)",
        r"^\s*SET\s+(?:\w*(?:PASSWORD|PASSWD|PSWD)|SNMPSTRING)\s",
    )
)

# `name = value`, `name: value`, `"name": "value"`, `name="value"`, `name => value`.
_ASSIGNMENT_SLOT = re.compile(
    r"(?<![\w.-])[\"']?(?:[\w.-]*(?:(?:password|passwd|passphrase)(?:[_.-]?hash(?:ed)?)?|pswd"
    r"|secret|token|apikey|snmpstring|community|communityname|community_string"
    r"|(?:api|private|preshared|pre[_.-]shared|access|secret|auth|wep|master|encryption)"
    r"[_.-]?key\d*)"
    r"|(?:[\w.-]*[_.-])?(?:pwd|pin|psk)|key)[\"']?\s*(?:=>?|:)\s*",
    _I,
)

# Values that are secrets by their shape alone.
_SECRET_SHAPES: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"\$(?:1|2[aby]?|5|6|7|8|9|y|1[a-d]|[hc]\$\d)\$[./\w]{4,}",  # crypt, IOS 8/9, Junos $9$
        r"%\^%#\S+?%\^%#|%@%@\S+?%@%@|@%@%\S+?@%@%",  # Huawei VRP ciphertext
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?!<removed>)",
        r"://[^\s/@:]*:(?!<removed>@)[^\s/@]+@",  # the password of a URL (any user)
        r"^\s*\d+\s*=>\s*(?!<removed>)[-*]?\d+\s*,",  # Asterisk voicemail.conf PIN
        # An XML element of a secret's name holding text: `<AdminPassword>X</AdminPassword>`.
        r"(?i:<(?!key>)[\w.-]*(?:password|passwd|passphrase|secret|token|apikey|pswd|pwd|psk|pin"
        r"|key)>"
        r"(?!\s*<removed>\s*</)\s*[^<\s])",
    )
)

# Words between a keyword and its value: type codes and key numbers, encryption and algorithm
# names, addresses; and words that take one argument (`level 15`, `role network-admin`).
_MODIFIER = re.compile(
    r"\d{1,3}|\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?|cipher|simple|plain|irreversible-cipher|hash"
    r"|encrypted|md5|sha[\w-]*|aes[\w-]*|des|3des|ascii(?:-text)?|hex(?:adecimal)?|key|local"
    r"|remote|value|pass-phrase|enc",
    _I,
)
_MODIFIER_WITH_ARGUMENT = re.compile(r"level|role|address|type", _I)

# What may stand after a secret keyword without being a secret: structure, an assignment sign,
# and the settings of a password policy.
_NOT_A_VALUE = re.compile(
    r"[\[\]{}|>;]|=>?|:|policy|history|expire|encryption|format|minimum-length|maximum-length"
    r"|strength-check",
    _I,
)
_TOKEN = re.compile(r"\"[^\"]*\"?|'[^']*'?|\S+")
# Type, encryption and algorithm words passed over after a keyword (see _value_tokens).
MAX_MODIFIERS = 12

# Every slot and shape above holds one of these: a line without any is not looked at further
# (most lines of a configuration), which keeps the check about as fast as reading the text.
_CANDIDATE = re.compile(
    r"pass|secret|key|community|psk|phrase|auth|priv|pin|pwd|pswd|token|snmp|com2sec|createuser"
    r"|\$|%\^%#|%@%@|@%@%|-----BEGIN|://|=>",
    _I,
)


def _value_tokens(line: str, start: int) -> list[str]:
    """The words from `start` on, less the type, encryption and algorithm words in front: the
    value first, then at most a few words after it.

    At most MAX_MODIFIERS words are passed over (real configurations have a few:
    `address A M key 7 cipher X`); past them the next word is the value, whatever it is (a line
    of nothing but type words is refused). So a keyword costs a few words, never the rest of
    the line: a line of `auth sha <removed> auth sha <removed> ...` is read once, not once a
    keyword.
    """
    tokens = [m.group(0) for m in islice(_TOKEN.finditer(line, start), MAX_MODIFIERS + 2)]
    i = 0
    while i < len(tokens) - 1:  # the last word is the value, whatever it looks like
        if _MODIFIER_WITH_ARGUMENT.fullmatch(tokens[i]) and i < len(tokens) - 2:
            i += 2
        elif _MODIFIER.fullmatch(tokens[i]):
            i += 1
        else:
            break
    return tokens[i:]


def _bare(value: str) -> str:
    """A value without its quotes and a trailing `,` or `;`."""
    return value.rstrip(",;").strip("\"'")


def _is_clear(value: str) -> bool:
    """Whether a value is a secret in clear: not empty, not the marker, not structure."""
    value = _bare(value)
    return bool(value) and value != SCRUB_MARKER and not _NOT_A_VALUE.fullmatch(value)


def _assigned_value(line: str, start: int) -> str:
    """A quoted value, or else the rest of the line (INI and YAML values may hold spaces)."""
    if line[start : start + 1] in ("'", '"'):
        # Read in place: copying the rest of the line for each `key="<removed>"` of a line of
        # them would be quadratic. (A value left unquoted takes the rest of the line, so a line
        # holds one of those at most: it is either clear, and the line is flagged, or the end.)
        quoted = _TOKEN.match(line, start)
        assert quoted is not None  # a quote starts a token
        return quoted.group(0).rstrip()  # one left open runs to the end of the line
    return line[start:].rstrip().rstrip(",").rstrip()


def _may_follow_a_value(word: str) -> bool:
    """A comment, or a type word after the value (ASA: `passwd <removed> encrypted`)."""
    return word.startswith(("#", "!")) or bool(_MODIFIER.fullmatch(word))


def has_clear_secret(line: str) -> bool:
    """Whether one line still holds a secret in clear."""
    if not _CANDIDATE.search(line):
        return False
    leading = _LEADING_SECRET.match(line)
    if leading is not None:
        value, *after = _value_tokens(line, leading.end()) or [""]
        if _is_clear(value):
            return True
        if _bare(value) == SCRUB_MARKER and after and not _may_follow_a_value(after[0]):
            return True
    for pattern in _KEYWORD_SLOTS:
        for match in pattern.finditer(line):
            tokens = _value_tokens(line, match.end())
            if tokens and _is_clear(tokens[0]):
                return True
    for match in _ASSIGNMENT_SLOT.finditer(line):
        if _is_clear(_assigned_value(line, match.end())):
            return True
    return any(p.search(line) for p in _SECRET_SHAPES)


def unscrubbed_lines(text: str) -> list[int]:
    """1-based numbers of the lines that still hold a secret in clear."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if has_clear_secret(line)]
