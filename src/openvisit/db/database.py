"""Engine and sessions. Writes take the database's write lock up front on SQLite (BEGIN IMMEDIATE),
so a check-then-insert cannot interleave with another writer; PostgreSQL relies on row locks and
exclusion constraints instead."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

PING_AFTER_IDLE_SECONDS = 2.0
"""A pooled connection that has sat unused for longer is checked (one round trip) before it is handed
out; one in steady use is not, so a busy server pays nothing for it."""

POSTGRES_OPTIONS = "-c plan_cache_mode=force_generic_plan"
"""psycopg prepares a statement on a connection once it has run five times there, and PostgreSQL then
plans it again for every execution (a custom plan) unless it decides otherwise; for the booking's
statements, all indexed lookups of a few rows, planning cost more than running them. A generic plan is
made once per connection: about 40% less CPU in PostgreSQL per booking, measured."""

RECYCLE_SECONDS = 1800
"""Connections older than this are replaced, before a server or a firewall drops them for idling."""

TRANSACTION_INFO = "openvisit.tx."
"""Keys of Session.info that start with this belong to the current transaction: they are dropped when
it ends, committed or not."""
_BEFORE_COMMIT = TRANSACTION_INFO + "before_commit"


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the pragmas OpenVisit relies on (foreign keys, WAL and a busy timeout on SQLite)."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_recycle", RECYCLE_SECONDS)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("options", POSTGRES_OPTIONS)
    kwargs["connect_args"] = connect_args
    ping_after = kwargs.pop("ping_after_idle", PING_AFTER_IDLE_SECONDS)
    engine = sa.create_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_idle_connections(engine, ping_after)
    return engine


def _ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a connection at checkout only when it has been idle for `idle_seconds`: one that the
    server dropped meanwhile (a restart, an idle timeout) is replaced instead of failing the request.
    A connection dropped while in steady use fails its statement; SQLAlchemy then invalidates the whole
    pool, so the connections checked in before are replaced too (and the principal lookup, the first
    statement of every authenticated request, retries once: auth._resolve)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool replaces the connection and checks out again.
                raise sa.exc.DisconnectionError() from exc
            raise


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so that BEGIN IMMEDIATE is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The engine and two kinds of session: `write()` for a use case that changes state, `read()` to query."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self.is_postgresql = engine.dialect.name == "postgresql"
        write_bind = engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else engine
        self._write = sessionmaker(bind=write_bind, expire_on_commit=False, autoflush=True)
        self._read = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
        # PostgreSQL runs every statement of a READ COMMITTED transaction on a snapshot of its own, so a
        # read-only session loses nothing in autocommit mode, and saves the BEGIN and ROLLBACK round trips.
        self._query_engine = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if self.is_postgresql else engine
        )
        self._query = sessionmaker(bind=self._query_engine, expire_on_commit=False, autoflush=False)
        for maker in (self._write, self._read, self._query):
            event.listen(maker, "before_commit", _run_before_commit)
            event.listen(maker, "after_transaction_end", _forget_before_commit)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_db_engine(url, **kwargs))

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction that commits when the block ends and rolls back on any exception."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; closing it rolls back and leaves the loaded objects readable."""
        with self._read() as session:
            yield session

    @contextmanager
    def query(self) -> Iterator[Session]:
        """A session for reads that write nothing, in as few round trips as the database allows: on
        PostgreSQL in autocommit mode (each statement sees what was committed when it began, as in a
        READ COMMITTED transaction, without BEGIN and ROLLBACK); on SQLite a read transaction."""
        with self._query() as session:
            yield session

    @contextmanager
    def query_connection(self) -> Iterator[sa.Connection]:
        """What query() gives, as a bare Core connection (no Session around it), for a hot read."""
        with self._query_engine.connect() as connection:
            yield connection

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def before_commit(session: Session, hook: Callable[[Session], None]) -> None:
    """Run `hook(session)` once, as the last step of the session's transaction before COMMIT (after its
    pending changes are flushed): what must lock late, such as the audit chain's head, locks there.
    A rolled-back transaction forgets its hooks."""
    hooks: list[Callable[[Session], None]] = session.info.setdefault(_BEFORE_COMMIT, [])
    if hook not in hooks:
        hooks.append(hook)


def _run_before_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint's release; the hooks wait for the real commit
    hooks: list[Callable[[Session], None]] = session.info.pop(_BEFORE_COMMIT, [])
    if hooks:
        session.flush()
    for hook in hooks:
        hook(session)


def _forget_before_commit(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for key in [k for k in session.info if isinstance(k, str) and k.startswith(TRANSACTION_INFO)]:
            del session.info[key]
