"""indexes on visits by station, resident and booth with their end

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_visit_station_ends", ["station_id", "ends_at"]),
    ("ix_visit_resident_ends", ["resident_id", "ends_at"]),
    ("ix_visit_booth_ends", ["booth_station_id", "ends_at"]),
)


def upgrade() -> None:
    for name, columns in INDEXES:
        op.create_index(name, "visit", columns, unique=False)


def downgrade() -> None:
    for name, _columns in INDEXES:
        op.drop_index(name, table_name="visit")
