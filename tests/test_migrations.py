"""The migrations build exactly the models' schema, and take it all down again, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from openvisit.db import migrate
from openvisit.db.database import create_db_engine
from openvisit.db.models import Base

MODEL_TABLES = frozenset(Base.metadata.tables)
EXCLUSION_CONSTRAINTS = frozenset(
    {"ex_visit_station_overlap", "ex_visit_resident_overlap", "ex_visit_booth_overlap"}
)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    # NullPool: no connection outlives its use, so Alembic's own connections see every change at once.
    engine = create_db_engine(db_url, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


def tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def postgresql_objects(engine: sa.Engine) -> tuple[set[str], set[str]]:
    """Exclusion constraints and triggers in the database: neither shows in autogenerate's comparison."""
    with engine.connect() as conn:
        exclusions = conn.execute(sa.text("SELECT conname FROM pg_constraint WHERE contype = 'x'")).scalars()
        triggers = conn.execute(
            sa.text(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'audit_entry'::regclass"
            )
            if "audit_entry" in tables(engine)
            else sa.text("SELECT NULL WHERE false")
        ).scalars()
        return set(exclusions), set(triggers)


def schedule_stamp_triggers(engine: sa.Engine) -> set[str]:
    """The triggers that give a facility a new schedule stamp (migration 0004)."""
    query = (
        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '%stamp%'"
        if engine.dialect.name == "postgresql"
        else "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%stamp%'"
    )
    with engine.connect() as conn:
        return set(conn.execute(sa.text(query)).scalars())


def assert_at_head(engine: sa.Engine) -> None:
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert len(schedule_stamp_triggers(engine)) == (3 if engine.dialect.name == "postgresql" else 10)
    assert tables(engine) == MODEL_TABLES | {"alembic_version"}
    assert migrate.schema_diff(engine) == []
    if engine.dialect.name == "postgresql":
        exclusions, triggers = postgresql_objects(engine)
        assert exclusions == EXCLUSION_CONSTRAINTS
        assert triggers == {"audit_entry_append_only"}


def assert_at_base(engine: sa.Engine) -> None:
    assert migrate.current_revision(engine) is None
    assert tables(engine) == {"alembic_version"}
    assert schedule_stamp_triggers(engine) == set()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            leftover = conn.execute(
                sa.text(
                    "SELECT proname FROM pg_proc WHERE proname = 'audit_entry_append_only'"
                    " OR proname LIKE 'facility_schedule_stamp%'"
                )
            ).all()
        assert leftover == []


def test_the_models_have_tables() -> None:
    # Guards the test below against passing on an empty metadata.
    assert {"facility", "resident", "visit", "recording", "audit_entry", "audit_head"} <= MODEL_TABLES


def test_upgrade_downgrade_upgrade(db_url: str, engine: sa.Engine) -> None:
    # db_url comes migrated from empty to head by migrate.upgrade (tests/conftest.py).
    assert_at_head(engine)
    migrate.downgrade(db_url, "base")
    assert_at_base(engine)
    migrate.upgrade(db_url)
    assert_at_head(engine)


def test_upgrade_is_idempotent_at_head(db_url: str, engine: sa.Engine) -> None:
    migrate.upgrade(db_url)
    assert_at_head(engine)


def test_the_schema_diff_sees_a_missing_column(db_url: str, engine: sa.Engine) -> None:
    # Guards `schema_diff == []` above against a comparison that never finds anything.
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE login_attempt DROP COLUMN success"))
    diff = migrate.schema_diff(engine)
    assert any(op[0] == "add_column" and op[3].name == "success" for op in diff), diff
