"""Statements of the booking path run straight on psycopg's cursor, compiled once by SQLAlchemy.

For each execution SQLAlchemy spends about twice the CPU that psycopg does: it builds an execution
context, checks the result's metadata, and asks psycopg for the columns' descriptions, which psycopg
builds anew every time. A booking runs several statements, and that work was most of the server's CPU
for it. `rows()` keeps SQLAlchemy as the one place where the SQL is written and compiled (with its bind
and result processing: enums, aware datetimes, JSON) and, on PostgreSQL, runs the compiled text with
psycopg, `IN` lists sent as one array (`= ANY(...)`), so each statement is prepared once whatever the
list's length, and with PostgreSQL's own `$n` placeholders, so psycopg sends the text as it is.
Elsewhere (SQLite) it is `connection.execute`.

Failures surface as SQLAlchemy's DBAPIError, as they would from `connection.execute`; a connection
found dropped is invalidated with the rest of its pool, as SQLAlchemy does, so the pool hands out none
of them again. Listeners of the engine's `before_cursor_execute` and `after_cursor_execute` events see
these statements too (with `$n` placeholders and a list of parameters; what they return is not used),
but SQLAlchemy's own statement logging (`echo`) does not."""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from psycopg import RawCursor
from sqlalchemy.sql.compiler import SQLCompiler

_IN_LIST = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_(\w+)\]\)")
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_REQUIRED = object()


@dataclass(frozen=True)
class _Slot:
    """One parameter of the statement as sent, `$n`, that the caller gives."""

    index: int
    """n - 1."""
    key: str
    name: str
    """The caller's name for it: the parameter's key, or failing that its name in the statement."""
    default: Any
    """The value when the caller gives none, or _REQUIRED."""
    process: Callable[[Any], Any] | None
    many: bool
    """An IN list, sent as one array."""


@dataclass(frozen=True)
class _Plan:
    statement: sa.Executable
    sql: str
    """With PostgreSQL's own `$n` placeholders, one per distinct parameter: psycopg sends it as it is.
    (Given `%(name)s` placeholders, psycopg parses the text on every execution once it is longer than
    4 KB or has more than 50 of them, as the booking's statements are.)"""
    constants: tuple[Any, ...]
    """Every parameter's value as sent, where the statement fixes it (a literal, the statuses of an
    IN list written in the query), processed once; None where the caller gives it."""
    slots: tuple[_Slot, ...]
    make: Callable[[Iterable[Any]], tuple[Any, ...]]
    """Builds a named tuple of the result's columns."""
    results: tuple[tuple[int, Callable[[Any], Any]], ...]
    """The result's columns that SQLAlchemy processes (enums, JSON), with their processor."""


_plans: dict[int, _Plan | None] = {}
"""By id(statement): the plan, or None for a statement run through SQLAlchemy (one this module does
not take apart). The statements are module constants or cached builders, so this stays small."""
MAX_PLANS = 256
"""More plans than this means statements built anew per call: start over rather than grow."""
_UNKNOWN = object()


def _plan_of(statement: sa.Executable, dialect: sa.Dialect) -> _Plan | None:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if (
        not isinstance(compiled, SQLCompiler)
        or compiled.escaped_bind_names
        or compiled.literal_execute_params
        or dialect.paramstyle != "pyformat"
    ):
        return None
    lists = frozenset(compiled.bind_names[p] for p in compiled.post_compile_params)

    def as_array(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in lists:
            raise ValueError(name)
        return f"<> ALL (%({name})s)" if match.group(1) else f"= ANY (%({name})s)"

    try:
        text = _IN_LIST.sub(as_array, compiled.string)
    except ValueError:
        return None
    if "__[POSTCOMPILE_" in text:
        return None
    order: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    sql = _PLACEHOLDER.sub(numbered, text)
    processors: Mapping[str, Callable[[Any], Any]] = compiled._bind_processors  # type: ignore[assignment]
    constants: list[Any] = []
    slots: list[_Slot] = []
    for index, name in enumerate(order):
        bind = compiled.binds[name]
        if bind.callable is not None:
            return None
        process = processors.get(name)
        many = name in lists
        if bind.unique and not bind.required:
            # An anonymous parameter with its value: a literal of the statement, not the caller's.
            value: Any = bind.value
            if many:
                value = [process(v) for v in value] if process is not None else list(value)
            elif process is not None:
                value = process(value)
            constants.append(value)
            continue
        constants.append(None)
        slots.append(
            _Slot(
                index=index,
                key=bind.key,
                name=name,
                default=_REQUIRED if bind.required else bind.value,
                process=process,
                many=many,
            )
        )
    names = [entry.keyname for entry in compiled._result_columns]
    results = tuple(
        (i, processor)
        for i, entry in enumerate(compiled._result_columns)
        if (processor := entry.type._cached_result_processor(dialect, None)) is not None
    )
    return _Plan(
        statement=statement,
        sql=sql,
        constants=tuple(constants),
        slots=tuple(slots),
        make=namedtuple("Row", names, rename=True)._make,  # type: ignore[attr-defined]
        results=results,
    )


def _parameters(plan: _Plan, params: Mapping[str, Any]) -> list[Any]:
    values = list(plan.constants)
    for slot in plan.slots:
        value = params.get(slot.key, _REQUIRED)
        if value is _REQUIRED:
            value = params.get(slot.name, slot.default)
            if value is _REQUIRED:
                raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {slot.name!r}")
        process = slot.process
        if slot.many:
            value = [process(v) for v in value] if process is not None else list(value)
        elif process is not None:
            value = process(value)
        values[slot.index] = value
    return values


def _plan_for(statement: sa.Executable, dialect: sa.Dialect) -> _Plan | None:
    key = id(statement)
    # One lookup, not `in` then `[]`: another thread may clear the dict in between.
    plan = _plans.get(key, _UNKNOWN)
    if plan is None or (isinstance(plan, _Plan) and plan.statement is statement):
        return plan
    if len(_plans) >= MAX_PLANS:
        _plans.clear()
    plan = _plans[key] = _plan_of(statement, dialect)
    return plan


def rows(connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any]) -> Sequence[Any]:
    """Every row `statement` returns with `params` (as named tuples on PostgreSQL, SQLAlchemy rows
    elsewhere: both are read by attribute and by position). The connection must be in a transaction
    (a Session's connection, or one in autocommit mode)."""
    plan = _plan_for(statement, connection.dialect) if connection.dialect.name == "postgresql" else None
    if plan is None:
        result = connection.execute(statement, params)
        return result.all() if result.returns_rows else []
    values = _parameters(plan, params)
    dbapi_connection: Any = connection.connection.dbapi_connection
    cursor: Any = RawCursor(dbapi_connection)
    dispatch = connection.dispatch
    try:
        if dispatch.before_cursor_execute:
            dispatch.before_cursor_execute(connection, cursor, plan.sql, values, None, False)
        cursor.execute(plan.sql, values)
        if dispatch.after_cursor_execute:
            dispatch.after_cursor_execute(connection, cursor, plan.sql, values, None, False)
        fetched = cursor.fetchall() if cursor.pgresult is not None and cursor.pgresult.nfields else []
    except connection.dialect.loaded_dbapi.Error as exc:
        dropped = connection.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if dropped:
            # As SQLAlchemy does on a disconnect: the server went away, so every connection the pool
            # holds is suspect, not only this one; they are replaced as they are next checked out.
            connection.engine.pool._invalidate(connection.connection, exc)
            connection.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            plan.sql,
            values,
            exc,
            connection.dialect.loaded_dbapi.Error,
            connection_invalidated=dropped,
            dialect=connection.dialect,
        ) from exc
    finally:
        cursor.close()
    make = plan.make
    if not plan.results:
        return [make(r) for r in fetched]
    made = []
    for r in fetched:
        row = list(r)
        for i, process in plan.results:
            row[i] = process(row[i])
        made.append(make(row))
    return made


def one_or_none(connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any]) -> Any:
    """The one row `statement` returns, or None; more than one is an error, as in SQLAlchemy."""
    found = rows(connection, statement, params)
    if len(found) > 1:
        raise sa.exc.MultipleResultsFound("Multiple rows were found when one or none was required")
    return found[0] if found else None
