"""Fresh, migrated databases for a benchmark: a SQLite file and a PostgreSQL database of its own."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from openvisit.db import migrate
from openvisit.db.database import Database, create_db_engine, normalise_url


@contextmanager
def sqlite_database() -> Iterator[tuple[Database, str]]:
    """A migrated SQLite file in a temporary directory, with a description of the engine."""
    with tempfile.TemporaryDirectory(prefix="openvisit-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        migrate.upgrade(url)
        db = Database.from_url(url)
        try:
            yield db, f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"
        finally:
            db.dispose()


@contextmanager
def postgresql_database(admin_url: str) -> Iterator[tuple[Database, str]]:
    """A migrated database created on the server at `admin_url` and dropped afterwards."""
    admin = create_db_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    name = f"ovbench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(normalise_url(admin_url)).set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        db = Database.from_url(url)
        try:
            with db.engine.connect() as conn:
                version = conn.execute(sa.text("SHOW server_version")).scalar_one()
                fsync = conn.execute(sa.text("SHOW fsync")).scalar_one()
                sync_commit = conn.execute(sa.text("SHOW synchronous_commit")).scalar_one()
            yield db, f"PostgreSQL {version.split()[0]} (fsync={fsync}, synchronous_commit={sync_commit})"
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
