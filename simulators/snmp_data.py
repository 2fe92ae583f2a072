"""What a simulated SNMP agent serves: a capture, its overlays and the active conditions.

The data is held as a sorted OID list with pre-encoded varbinds, so GET/GETNEXT are a bisect
and a list index. Each condition change builds a new `MibView` and swaps it in.
"""

from __future__ import annotations

import copy
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from pathlib import Path

from simulators import ber
from simulators.config import (
    SerialDeviceSpec,
    SnmpCondition,
    SnmpDeviceSpec,
    SnmpOverlay,
    SshDeviceSpec,
)
from simulators.devices import ConditionValue, SimDevice
from simulators.errors import ConditionError, StationConfigError
from simulators.snmprec import (
    TAG_COUNTER64,
    Oid,
    Record,
    convert_value,
    format_oid,
    load_snmprec,
    parse_line,
    parse_oid,
)


@dataclass(frozen=True, slots=True)
class MibView:
    """An immutable, sorted view of an agent's OIDs with their encoded varbinds."""

    oids: list[Oid]
    varbinds: list[bytes]
    counter64: frozenset[int]  # indexes of Counter64 values (invisible to SNMPv1)

    def exact(self, oid: Oid) -> int | None:
        """Index of exactly this OID, or None."""
        i = bisect_left(self.oids, oid)
        return i if i < len(self.oids) and self.oids[i] == oid else None

    def after(self, oid: Oid) -> int:
        """Index of the first OID greater than this one (len(oids) at the end of the MIB)."""
        return bisect_right(self.oids, oid)

    def has_under(self, prefix: Oid) -> bool:
        """Whether some OID lies strictly below this prefix."""
        i = bisect_right(self.oids, prefix)
        return i < len(self.oids) and self.oids[i][: len(prefix)] == prefix


def apply_overlay(records: dict[Oid, Record], overlay: SnmpOverlay) -> None:
    """Add an overlay's records to a capture (in memory)."""
    for line in overlay.records:
        record = parse_line(line)
        records[record.oid] = record
    derive = overlay.derive_column
    if derive is None:
        return
    column, source = parse_oid(derive.column), parse_oid(derive.from_column)
    for oid, record in list(records.items()):
        if oid[: len(source)] != source or len(oid) == len(source):
            continue
        value = derive.map.get(record.text(), derive.default)
        if value is not None:
            target = column + oid[len(source) :]
            records[target] = Record(target, derive.type, convert_value(derive.type, value))


class SnmpDevice(SimDevice):
    """An SNMP device: a capture plus overlays, changed by OID-override conditions."""

    protocol = "snmp"
    spec: SnmpDeviceSpec

    def __init__(self, spec: SnmpDeviceSpec, station_file: Path) -> None:
        super().__init__(spec)
        self.data_file = (station_file.parent / spec.data).resolve()
        self._where = f"{station_file}: devices({spec.id})"
        records = {r.oid: r for r in load_snmprec(self.data_file)}
        for n, overlay in enumerate(spec.overlays):
            try:
                apply_overlay(records, overlay)
            except ValueError as exc:
                raise StationConfigError(f"{self._where}.overlays[{n}]: {exc}") from None
        self._records = records
        self._base = self._build_view({})
        self._row_names = self._index_row_names()
        self._check_conditions()
        self.view = self._base

    def replica(self, spec: SnmpDeviceSpec | SshDeviceSpec | SerialDeviceSpec) -> SnmpDevice:
        """A device serving the same data under another spec (id, port); nothing is re-parsed."""
        assert isinstance(spec, SnmpDeviceSpec)
        twin = copy.copy(self)
        SimDevice.__init__(twin, spec)
        twin.spec = spec
        twin.view = self._base
        return twin

    def _build_view(self, overrides: dict[Oid, Record]) -> MibView:
        if not hasattr(self, "_base"):
            oids = sorted(self._records)
            records = [self._records[oid] for oid in oids]
            return MibView(
                oids=oids,
                varbinds=[ber.varbind(r.oid, r.encoded_value()) for r in records],
                counter64=frozenset(i for i, r in enumerate(records) if r.tag == TAG_COUNTER64),
            )
        if not overrides:
            return self._base
        # Overrides only touch existing OIDs and keep their types: order and tags stay.
        varbinds = list(self._base.varbinds)
        for oid, record in overrides.items():
            index = self._base.exact(oid)
            assert index is not None
            varbinds[index] = ber.varbind(oid, record.encoded_value())
        return MibView(self._base.oids, varbinds, self._base.counter64)

    def _override(self, oid: Oid, value: int | str, field: str) -> Record:
        base = self._records.get(oid)
        if base is None:
            raise StationConfigError(
                f"{self._where}.{field}: OID {format_oid(oid)} is not in {self.data_file.name}"
            )
        try:
            return Record(oid, base.tag, convert_value(base.tag, value))
        except ValueError as exc:
            raise StationConfigError(f"{self._where}.{field}: {exc}") from None

    def _index_row_names(self) -> dict[str, dict[str, Oid]]:
        names: dict[str, dict[str, Oid]] = {}
        for cond_name, cond in self.spec.conditions.items():
            if cond.rows is None:
                continue
            table: dict[str, Oid] = {}
            for column_text in reversed(cond.rows.name_columns):  # first column wins
                column = parse_oid(column_text)
                for oid, record in self._records.items():
                    if oid[: len(column)] == column and len(oid) > len(column):
                        table[record.text()] = oid[len(column) :]
            names[cond_name] = table
        return names

    def _check_conditions(self) -> None:
        for name, cond in self.spec.conditions.items():
            for oid_text, value in cond.set.items():
                self._override(parse_oid(oid_text), value, f"conditions.{name}.set.{oid_text}")
            if cond.rows is not None:
                try:
                    self._row_overrides(name, cond, None)
                except ConditionError as exc:
                    raise StationConfigError(f"{self._where}.conditions.{name}: {exc}") from None

    def _row_overrides(
        self, name: str, cond: SnmpCondition, value: ConditionValue
    ) -> dict[Oid, Record]:
        assert cond.rows is not None
        table = self._row_names[name]
        out: dict[Oid, Record] = {}
        for row_name in (value or cond.rows.default).split(","):
            row_name = row_name.strip()
            index = table.get(row_name)
            if index is None:
                folded = {k.lower(): v for k, v in table.items()}
                index = folded.get(row_name.lower())
            if index is None:
                raise ConditionError(f"{self.id} has no row named {row_name!r} for {name!r}")
            for column_text, cell in cond.rows.set.items():
                oid = parse_oid(column_text) + index
                if oid not in self._records:
                    raise ConditionError(f"{self.id}: {format_oid(oid)} does not exist")
                out[oid] = self._override(oid, cell, f"conditions.{name}.rows.set")
        return out

    def _check_value(self, condition: str, value: ConditionValue) -> ConditionValue:
        cond = self.spec.conditions.get(condition)
        if cond is None or cond.rows is None:
            return super()._check_value(condition, value)
        value = value.strip() if value else None
        self._row_overrides(condition, cond, value)  # raises ConditionError on unknown rows
        return value

    def _rebuild(self, active: list[tuple[str, ConditionValue]]) -> None:
        overrides: dict[Oid, Record] = {}
        for name, value in active:
            cond = self.spec.conditions[name]
            for oid_text, cell in cond.set.items():
                oid = parse_oid(oid_text)
                overrides[oid] = self._override(oid, cell, f"conditions.{name}.set")
            if cond.rows is not None:
                overrides.update(self._row_overrides(name, cond, value))
        self.view = self._build_view(overrides)
