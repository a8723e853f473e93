"""Statements of the booking path run straight on psycopg's cursor, compiled once by SQLAlchemy.

For each execution SQLAlchemy spends about twice the CPU that psycopg does: it builds an execution
context, checks the result's metadata, and asks psycopg for the columns' descriptions, which psycopg
builds anew every time. A booking runs several statements, and that work was most of the server's CPU
for it. `rows()` keeps SQLAlchemy as the one place where the SQL is written and compiled (with its bind
and result processing: enums, aware datetimes, JSON) and, on PostgreSQL, runs the compiled text with
psycopg, `IN` lists sent as one array (`= ANY(...)`), so each statement is prepared once whatever the
list's length. Elsewhere (SQLite) it is `connection.execute`.

Failures surface as SQLAlchemy's DBAPIError, as they would from `connection.execute`; a connection
found dropped is invalidated with the rest of its pool, as SQLAlchemy does, so the pool hands out none
of them again. Listeners of the engine's
`before_cursor_execute` and `after_cursor_execute` events see these statements too (what they return is
not used), but SQLAlchemy's own statement logging (`echo`) does not."""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

_IN_LIST = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_(\w+)\]\)")


@dataclass(frozen=True)
class _Plan:
    statement: sa.Executable
    compiled: SQLCompiler
    sql: str
    processors: Mapping[str, Callable[[Any], Any]]
    lists: frozenset[str]
    make: Callable[[Iterable[Any]], tuple[Any, ...]]
    """Builds a named tuple of the result's columns."""
    results: tuple[Callable[[Any], Any] | None, ...]


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
    ):
        return None
    lists = frozenset(compiled.bind_names[p] for p in compiled.post_compile_params)

    def as_array(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in lists:
            raise ValueError(name)
        return f"<> ALL (%({name})s)" if match.group(1) else f"= ANY (%({name})s)"

    try:
        sql = _IN_LIST.sub(as_array, compiled.string)
    except ValueError:
        return None
    if "__[POSTCOMPILE_" in sql:
        return None
    names = [entry.keyname for entry in compiled._result_columns]
    results = tuple(entry.type._cached_result_processor(dialect, None) for entry in compiled._result_columns)
    return _Plan(
        statement=statement,
        compiled=compiled,
        sql=sql,
        processors=dict(compiled._bind_processors),  # type: ignore[arg-type]
        lists=lists,
        make=namedtuple("Row", names, rename=True)._make,  # type: ignore[attr-defined]
        results=results,
    )


def _parameters(plan: _Plan, params: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(plan.compiled.construct_params(params, escape_names=False))
    for name in plan.lists:
        values[name] = list(values[name])
    for name, process in plan.processors.items():
        value = values[name]
        values[name] = [process(v) for v in value] if name in plan.lists else process(value)
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
    cursor = dbapi_connection.cursor()
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
    if not any(plan.results):
        return [make(r) for r in fetched]
    results = plan.results
    return [make([p(v) if p is not None else v for p, v in zip(results, r, strict=True)]) for r in fetched]


def one_or_none(connection: sa.Connection, statement: sa.Executable, params: Mapping[str, Any]) -> Any:
    """The one row `statement` returns, or None; more than one is an error, as in SQLAlchemy."""
    found = rows(connection, statement, params)
    if len(found) > 1:
        raise sa.exc.MultipleResultsFound("Multiple rows were found when one or none was required")
    return found[0] if found else None
