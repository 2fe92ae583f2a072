"""Trimming a LibreNMS `.snmprec` capture to what identification and the profiles can read.

The captures in tests/data/snmprec/identify keep the system group (1.3.6.1.2.1.1), UPS-MIB
(1.3.6.1.2.1.33) and the records under an OID some shipped profile reads (scalars, table
columns, row-name columns); everything else (IP/TCP/UDP/SNMP counters, vendor subtrees no
profile knows) was dropped. `python -m tests.snmprec_trim IN OUT` trims a file; the tests check
every stored capture is sorted by numeric OID and holds only kept records.
"""

from __future__ import annotations

import sys
from pathlib import Path

from collectors.profiles import Profile, builtin_profiles

SYSTEM = "1.3.6.1.2.1.1"
UPS_MIB = "1.3.6.1.2.1.33"  # kept whole: the UPS cards' identity and status


def _oid(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.strip().strip(".").split("."))


def read_prefixes(profiles: dict[str, Profile]) -> set[tuple[int, ...]]:
    """OID prefixes a record must be under to be kept: the system group and what profiles read."""
    kept = {_oid(SYSTEM), _oid(UPS_MIB)}
    for p in profiles.values():
        if p.snmp is None:
            continue
        kept |= {_oid(s.oid) for s in p.snmp.scalars}
        for t in p.snmp.tables:
            kept |= {_oid(c.oid) for c in t.columns}
            if t.component_oid:
                kept.add(_oid(t.component_oid))
    return kept


def kept(oid: tuple[int, ...], prefixes: set[tuple[int, ...]]) -> bool:
    """Whether a record's OID is under one of the kept prefixes."""
    return any(oid[: len(p)] == p for p in prefixes)


def trim(text: str, profiles: dict[str, Profile] | None = None) -> str:
    """The kept records of a capture, sorted by numeric OID (blank and comment lines dropped)."""
    prefixes = read_prefixes(builtin_profiles() if profiles is None else profiles)
    records: list[tuple[tuple[int, ...], str]] = []
    for line in text.splitlines():
        name = line.split("|", 1)[0]
        if not name or line.startswith("#"):
            continue
        oid = _oid(name)
        if kept(oid, prefixes):
            records.append((oid, line))
    return "".join(line + "\n" for _, line in sorted(records))


if __name__ == "__main__":
    source, dest = Path(sys.argv[1]), Path(sys.argv[2])
    dest.write_text(trim(source.read_text(encoding="utf-8")), encoding="utf-8")
