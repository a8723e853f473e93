"""a stamp on each facility that changes with its session templates and stations

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATION_COLUMNS = "code, kind, status, facility_id, unit_id, group_id, room"
"""What booking reads of a station: a change to anything else (its device key, say) keeps the stamp."""

PG_STAMP = "substr(md5(random()::text || clock_timestamp()::text), 1, 16)"
SQLITE_STAMP = "lower(hex(randomblob(8)))"

# (trigger, table, event, the facilities it touches) on SQLite, which has no trigger functions.
SQLITE_TRIGGERS = (
    ("facility_stamp_insert", "facility", "INSERT", "NEW.id"),
    ("template_stamp_insert", "session_template", "INSERT", "NEW.facility_id"),
    ("template_stamp_update", "session_template", "UPDATE", "OLD.facility_id, NEW.facility_id"),
    ("template_stamp_delete", "session_template", "DELETE", "OLD.facility_id"),
    ("station_stamp_insert", "station", "INSERT", "NEW.facility_id"),
    ("station_stamp_update", "station", f"UPDATE OF {STATION_COLUMNS}", "OLD.facility_id, NEW.facility_id"),
    ("station_stamp_delete", "station", "DELETE", "OLD.facility_id"),
    (
        "template_unit_stamp_insert",
        "session_template_unit",
        "INSERT",
        "SELECT facility_id FROM session_template WHERE id = NEW.template_id",
    ),
    (
        "template_unit_stamp_update",
        "session_template_unit",
        "UPDATE",
        "SELECT facility_id FROM session_template WHERE id IN (OLD.template_id, NEW.template_id)",
    ),
    (
        "template_unit_stamp_delete",
        "session_template_unit",
        "DELETE",
        "SELECT facility_id FROM session_template WHERE id = OLD.template_id",
    ),
)

# On PostgreSQL: a function per way of finding the facility, and a trigger per table.
PG_FUNCTIONS = {
    "facility_schedule_stamp_by_facility": (
        "OLD.facility_id",
        "NEW.facility_id",
        "UPDATE facility SET schedule_stamp = {stamp} WHERE id = ANY(ids)",
    ),
    "facility_schedule_stamp_by_template": (
        "OLD.template_id",
        "NEW.template_id",
        "UPDATE facility SET schedule_stamp = {stamp} "
        "WHERE id IN (SELECT facility_id FROM session_template WHERE id = ANY(ids))",
    ),
}
PG_TRIGGERS = (
    ("session_template_schedule_stamp", "session_template", "INSERT OR UPDATE OR DELETE", "by_facility"),
    ("station_schedule_stamp", "station", f"INSERT OR UPDATE OF {STATION_COLUMNS} OR DELETE", "by_facility"),
    (
        "session_template_unit_schedule_stamp",
        "session_template_unit",
        "INSERT OR UPDATE OR DELETE",
        "by_template",
    ),
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        # A volatile default: each facility there now gets a stamp of its own.
        op.add_column(
            "facility",
            sa.Column(
                "schedule_stamp", sa.String(length=16), nullable=False, server_default=sa.text(PG_STAMP)
            ),
        )
        for name, (old, new, update) in PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "DECLARE ids integer[] := '{}'; BEGIN "
                f"IF TG_OP IN ('UPDATE', 'DELETE') THEN ids := ids || {old}; END IF; "
                f"IF TG_OP IN ('INSERT', 'UPDATE') THEN ids := ids || {new}; END IF; "
                f"{update.format(stamp=PG_STAMP)}; RETURN NULL; END $$"
            )
        for name, table, events, function in PG_TRIGGERS:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {events} ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION facility_schedule_stamp_{function}()"
            )
        return
    # SQLite adds a column with a constant default only: the rows there now are stamped here, new ones
    # by a trigger.
    op.add_column(
        "facility", sa.Column("schedule_stamp", sa.String(length=16), nullable=False, server_default="")
    )
    op.execute(f"UPDATE facility SET schedule_stamp = {SQLITE_STAMP}")  # noqa: S608 - this module's constants
    for name, table, event, facilities in SQLITE_TRIGGERS:
        update = f"UPDATE facility SET schedule_stamp = {SQLITE_STAMP} WHERE id IN ({facilities})"  # noqa: S608
        op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {update}; END")


def downgrade() -> None:
    if _postgresql():
        for name, table, _events, _function in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
        op.drop_column("facility", "schedule_stamp")
        return
    for name, *_rest in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # In place: copying the table anew (Alembic's batch mode) would drop the old one, and SQLite applies
    # the foreign keys' ON DELETE CASCADE when a table is dropped.
    op.execute("ALTER TABLE facility DROP COLUMN schedule_stamp")
