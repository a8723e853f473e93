"""Shared fixtures: every integration test runs on a fresh, migrated SQLite file *and* PostgreSQL database.

Each backend is migrated once per test run into a template (a file for SQLite, a template database for
PostgreSQL); each test gets its own copy, so services commit for real and tests never share state.
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from openvisit.db import migrate
from openvisit.db.database import Database, create_db_engine, normalise_url
from openvisit.services import passwords
from openvisit.services.context import AppContext
from openvisit.settings import Settings
from openvisit.web.app import create_app

PG_URL = os.environ.get("OPENVISIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Real argon2id, at its cheapest cost: production's tenth of a second per hash only slows tests.
    test_passwords.py checks the production parameters themselves."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "_hasher", lambda: PasswordHasher.from_parameters(CHEAPEST))
        yield


@dataclass
class FrozenClock:
    """A clock the test moves by hand."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now = self.now + timedelta(**kwargs)


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_admin_engine() -> sa.Engine:
    engine = create_db_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:  # pragma: no cover - the Makefile starts PostgreSQL first
        raise RuntimeError(
            f"PostgreSQL is not reachable at {PG_URL}; `make test` starts one. ({exc.orig})"
        ) from exc
    return engine


def _pg_url_for(name: str) -> str:
    return make_url(normalise_url(PG_URL)).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    admin = _pg_admin_engine()
    name = f"ovtpl_{_worker()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    migrate.upgrade(_pg_url_for(name))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the newest migration, on the backend of this test's parameter."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "openvisit.sqlite3"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("pg_template")
    name = f"ovt_{_worker()}_{uuid.uuid4().hex[:10]}"
    admin = _pg_admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield _pg_url_for(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        mode="test",
        database_url=db_url,
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        var_dir=tmp_path / "var",
        require_staff_totp=True,
        # Tests move the clock by hand and run the sweep and the delivery themselves.
        sweep_seconds=0,
        delivery_seconds=0,
    )


@pytest.fixture
def ctx(settings: Settings, clock: FrozenClock) -> Iterator[AppContext]:
    context = AppContext(settings=settings, db=Database.from_url(settings.database_url), clock=clock)
    yield context
    context.db.dispose()


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    """The whole web app over the test's database, as a browser or API client sees it."""
    app = create_app(ctx.settings, ctx=ctx)
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test() -> Iterator[None]:
    """A database connection dropped without being closed warns when it is garbage-collected; collecting
    after every test makes that warning (an error here) fail the test that leaked it, not a later one."""
    yield
    gc.collect()
