"""Model instances read and written in bulk with Core statements, outside the ORM's unit of work.

Ingest touches hundreds of alarms and tickets per request; the ORM's per-object bookkeeping
(identity map, change history, flush planning) costs more than the SQL itself. The hot path
works on *detached copies*: instances of the mapped classes (so the code that reads them is the
same) that no session tracks. They are loaded with one SELECT, changed with `put` (straight
into the instance's dict: no change history, which costs more than the rest of the work on an
attribute) and written back with one executemany per statement shape. Whoever holds copies
must write them before ORM code reads the same rows (hq_server.tickets.book settles first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, bindparam, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state

from hq_server.store.models import Base

M = TypeVar("M", bound=Base)


def table_of(model: type[Base]) -> Table:
    """The model's table."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def detached(model: type[M], values: Mapping[str, Any], missing: Iterable[str] = ()) -> M:
    """An instance of `model` holding `values`, built the way the ORM builds loaded rows (no
    change history), and tracked by no session. Reading one of the `missing` attributes of a
    stored row (one with its id) raises DetachedInstanceError instead of answering None."""
    mapper = model.__mapper__
    obj: M = mapper.class_manager.new_instance()
    obj.__dict__.update(values)
    row_id = values.get("id")
    if row_id is not None:
        state = instance_state(obj)
        state.key = mapper.identity_key_from_primary_key((row_id,))
        state.expired_attributes = set(missing)
    return obj


def put(obj: Base, **values: Any) -> None:
    """Set attributes of a detached copy or of a new instance written with Core (no change
    history: the book writes the columns it changed)."""
    obj.__dict__.update(values)


def load(
    session: Session,
    model: type[M],
    *where: ColumnElement[bool],
    columns: Sequence[str] | None = None,
    **extra: Any,
) -> list[M]:
    """Detached copies of the rows matching `where` (only `columns`, if given: reading another
    column raises); `extra` attributes (e.g. a relationship to an object already at hand) are
    set on each."""
    table = table_of(model)
    keys = [c.key for c in table.columns] if columns is None else list(columns)
    missing = frozenset(c.key for c in table.columns if c.key not in keys)
    result = []
    for row in session.execute(select(*(table.c[k] for k in keys)).where(*where)):
        values = dict(zip(keys, row, strict=True))
        values.update(extra)
        result.append(detached(model, values, missing))
    return result


def insert_new(
    session: Session, model: type[M], objects: Sequence[M], key: str, *where: ColumnElement[bool]
) -> None:
    """INSERT new instances with one executemany, then set their ids from one SELECT of `key`
    (a column unique among the rows matching `where`). Cheaper than INSERT ... RETURNING,
    which SQLAlchemy runs 3-4 times slower on PostgreSQL."""
    if not objects:
        return
    table = table_of(model)
    columns = [c.key for c in table.columns if c.key != "id"]
    insert_rows(session, table, columns, ([obj.__dict__[c] for c in columns] for obj in objects))
    wanted = [obj.__dict__[key] for obj in objects]
    stmt = select(table.c.id, table.c[key]).where(table.c[key].in_(wanted), *where)
    ids = {k: i for i, k in session.connection().execute(stmt)}
    for obj in objects:
        obj.__dict__["id"] = ids[obj.__dict__[key]]


def update_by_id(
    session: Session, model: type[M], objects: Iterable[M], columns: Sequence[str]
) -> None:
    """UPDATE these columns of these instances' rows in one executemany."""
    values = ([obj.__dict__["id"], *(obj.__dict__[c] for c in columns)] for obj in objects)
    update_rows(session, table_of(model), columns, values)


def update_rows(
    session: Session, table: Table, columns: Sequence[str], values: Iterable[Sequence[Any]]
) -> None:
    """UPDATE `columns` of the rows with these ids in one executemany; each of `values` holds
    the row's id, then the columns' new values in order."""
    _executemany(session, _compiled("update", table, tuple(columns), session), values)


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], values: Iterable[Sequence[Any]]
) -> None:
    """INSERT rows with one executemany; each of `values` holds the `columns` in order."""
    _executemany(session, _compiled("insert", table, tuple(columns), session), values)


# ---- executemany without SQLAlchemy's per-row parameter building --------------------------
# Core's executemany builds a parameter dict per row and then a list per row from it; for the
# hundreds of rows of a batch that was a fifth of a bulk write. The statement is compiled once
# per shape here, and each row's values are converted straight into the driver's form.


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    # For each driver parameter in order: the index of its value in a row, and its converter.
    slots: tuple[tuple[int, Callable[[Any], Any] | None], ...]
    names: tuple[str, ...] | None  # the parameter names, for drivers taking a dict per row


_COMPILED: dict[tuple[str, str, type[Dialect], str, tuple[str, ...]], _Compiled] = {}


def _compiled(kind: str, table: Table, columns: tuple[str, ...], session: Session) -> _Compiled:
    dialect = session.get_bind().dialect
    key = (kind, table.fullname, type(dialect), dialect.paramstyle, columns)
    found = _COMPILED.get(key)
    if found is not None:
        return found
    if kind == "insert":
        index = {c: i for i, c in enumerate(columns)}
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
    else:
        # The row's id comes first, then the columns.
        index = {"b_id": 0, **{f"b_{c}": i + 1 for i, c in enumerate(columns)}}
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in columns})
        )
        compiled = stmt.compile(dialect=dialect)
    order = compiled.positiontup if compiled.positional else list(compiled.binds)
    assert order is not None and set(order) == set(index), (order, index)
    slots = tuple(
        (index[name], compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
        for name in order
    )
    found = _COMPILED[key] = _Compiled(
        compiled.string, slots, None if compiled.positional else tuple(order)
    )
    return found


def _executemany(session: Session, compiled: _Compiled, values: Iterable[Sequence[Any]]) -> None:
    slots = compiled.slots
    params: list[Any] = [
        tuple(row[i] if convert is None else convert(row[i]) for i, convert in slots)
        for row in values
    ]
    if not params:
        return
    if compiled.names is not None:
        params = [dict(zip(compiled.names, row, strict=True)) for row in params]
    session.connection().exec_driver_sql(compiled.sql, params)
