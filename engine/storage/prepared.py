"""Ledger statements compiled once and run straight on the driver's connection.

SQLAlchemy Core re-checks and re-processes every execution: on the worker's hot path (create, claim, finish and
their event rows) its execution machinery costs many times the SQLite work itself, and capped end-to-end
throughput. A ``Prepared`` statement keeps what Core is good at
— one statement definition, rendered for whichever dialect the ledger runs on, and each column type's own
conversions (JSON, aware UTC datetimes) — and leaves execution to the DBAPI cursor.

Statements must not use "expanding" IN parameters (``column.in_([...])`` of plain values), which Core renders
only at execution time; compare with literal SQL (see ``status_in``) or bind each value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Executable, literal_column
from sqlalchemy.sql.compiler import SQLCompiler

from engine.storage.status import JobStatus
from engine.storage.tables import JOBS

_REQUIRED = object()
Processor = Callable[[Any], Any] | None
Bound = tuple[Any, ...] | dict[str, Any]  # parameters in the driver's form: positional or named


def status_in(statuses: Iterable[JobStatus]) -> ColumnElement[bool]:
    """``jobs.status IN ('a', 'b')`` with the statuses as SQL literals (our own enum values, never user text)."""
    return JOBS.c.status.in_([literal_column(f"'{s.value}'") for s in statuses])


class Prepared:
    """One compiled statement: its SQL text, how to order and convert its parameters, how to convert its rows."""

    __slots__ = ("_binds", "_columns", "_dialect", "_index", "_positional", "_types", "returns_rows", "sql")

    def __init__(self, stmt: Executable, dialect: Dialect, column_keys: list[str] | None = None) -> None:
        # Every statement here is a ClauseElement (which has compile(), compiling to a SQLCompiler);
        # Executable, the type that says "can be run", does not declare it.
        compiled: SQLCompiler = stmt.compile(dialect=dialect, column_keys=column_keys)  # type: ignore[attr-defined]
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        order = compiled.positiontup if compiled.positional else list(by_name)
        self.sql = compiled.string
        self._positional = compiled.positional
        self._binds: list[tuple[str, Any, Processor]] = []
        for name in order or ():
            bind = by_name[name]
            default = _REQUIRED if bind.required else bind.effective_value
            self._binds.append((name, default, bind.type.dialect_impl(dialect).bind_processor(dialect)))
        self._index = {name: i for i, (name, _, _) in enumerate(self._binds)}
        columns = getattr(stmt, "exported_columns", None) or []
        self.returns_rows = bool(columns)
        self._dialect = dialect
        self._types = [(col.key, col.type.dialect_impl(dialect)) for col in columns]
        self._columns: list[tuple[str, Processor]] | None = None  # known once a cursor has described the rows

    def parameters(self, params: Mapping[str, Any]) -> Bound:
        values: list[Any] = []
        for name, default, process in self._binds:
            value = params.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"statement needs a value for {name!r}")
            values.append(value if process is None else process(value))
        if self._positional:
            return tuple(values)
        return {name: value for (name, _, _), value in zip(self._binds, values, strict=True)}

    def bound_value(self, bound: Bound, name: str) -> Any:
        """One parameter of ``bound`` (as ``parameters`` made it), in the driver's form."""
        return bound[self._index[name]] if isinstance(bound, tuple) else bound[name]

    def rebind(self, bound: Bound, values: Mapping[str, Any]) -> Bound:
        """``bound`` with some parameters replaced by values already in the driver's form (nothing is converted)."""
        if not isinstance(bound, tuple):
            return {**bound, **values}
        replaced = list(bound)
        for name, value in values.items():
            replaced[self._index[name]] = value
        return tuple(replaced)

    def execute(self, cursor: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows it returned as dicts (empty for a statement without RETURNING; see ``rowcount``)."""
        return self.execute_bound(cursor, self.parameters(params))

    def execute_bound(self, cursor: Any, bound: Bound) -> list[dict[str, Any]]:
        """``execute`` with parameters already converted by ``parameters`` (say, before a lock was taken)."""
        cursor.execute(self.sql, bound)
        if not self.returns_rows:
            return []
        columns = self._columns
        if columns is None:  # some drivers' conversions depend on the database's own column types
            described = [d[1] for d in cursor.description]
            columns = self._columns = [
                (key, type_.result_processor(self._dialect, code))
                for (key, type_), code in zip(self._types, described, strict=True)
            ]
        return [
            {
                key: value if process is None else process(value)
                for (key, process), value in zip(columns, row, strict=True)
            }
            for row in cursor.fetchall()
        ]
