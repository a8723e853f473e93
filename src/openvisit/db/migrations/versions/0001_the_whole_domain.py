"""the whole domain

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


ACTIVE = "'approved', 'held', 'in_progress', 'requested'"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgresql():
        # btree_gist lets one GiST exclusion constraint compare integer ids with = and ranges with &&.
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.create_table(
        "audit_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "actor_kind",
            sa.Enum(
                "user",
                "resident",
                "system",
                name="audit_actor",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_label", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=True),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column(
            "before",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "after",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entry")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_entry_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_audit_entry_seq")),
    )
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_entry_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_entry_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index("ix_audit_entry_object", ["object_type", "object_id"], unique=False)

    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    # The head exists from the start, so that every append locks the same row and never races to create it.
    op.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '" + "0" * 64 + "')")
    op.create_table(
        "facility",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("city", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("default_slot_minutes", sa.Integer(), nullable=False),
        sa.Column("changeover_minutes", sa.Integer(), nullable=False),
        sa.Column("public_min_notice_hours", sa.Integer(), nullable=False),
        sa.Column("public_max_days", sa.Integer(), nullable=False),
        sa.Column("staff_min_notice_hours", sa.Integer(), nullable=False),
        sa.Column("staff_max_days", sa.Integer(), nullable=False),
        sa.Column("legal_min_notice_hours", sa.Integer(), nullable=False),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("allowance_count", sa.Integer(), nullable=False),
        sa.Column(
            "allowance_period",
            sa.Enum(
                "week",
                "month",
                name="allowance_period",
                native_enum=False,
                create_constraint=True,
                length=13,
            ),
            nullable=False,
        ),
        sa.Column("max_visitors", sa.Integer(), nullable=False),
        sa.Column("join_early_minutes", sa.Integer(), nullable=False),
        sa.Column("recording_retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("allowance_count >= 0", name=op.f("ck_facility_allowance")),
        sa.CheckConstraint("default_slot_minutes BETWEEN 15 AND 60", name=op.f("ck_facility_slot_length")),
        sa.CheckConstraint("max_visitors BETWEEN 1 AND 10", name=op.f("ck_facility_max_visitors")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility")),
        sa.UniqueConstraint("code", name=op.f("uq_facility_code")),
    )
    op.create_table(
        "link_center",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("city", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_center")),
        sa.UniqueConstraint("code", name=op.f("uq_link_center_code")),
    )
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject", sa.String(length=254), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempt")),
    )
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_login_attempt_ip_at", ["ip", "at"], unique=False)
        batch_op.create_index("ix_login_attempt_subject_at", ["subject", "at"], unique=False)

    op.create_table(
        "user_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "visitor",
                "staff",
                name="account_kind",
                native_enum=False,
                create_constraint=True,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("email_verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_enrolled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_account")),
        sa.UniqueConstraint("email", name=op.f("uq_user_account_email")),
    )
    op.create_table(
        "housing_unit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
            name=op.f("fk_housing_unit_facility_id_facility"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_housing_unit")),
        sa.UniqueConstraint("facility_id", "code", name=op.f("uq_housing_unit_facility_id_code")),
    )
    with op.batch_alter_table("housing_unit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_housing_unit_facility_id"), ["facility_id"], unique=False)

    op.create_table(
        "staff_grant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "link_operator",
                "vetting_clerk",
                "scheduler",
                "monitoring_officer",
                "investigator",
                "facility_admin",
                "system_admin",
                name="staff_role",
                native_enum=False,
                create_constraint=True,
                length=26,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("link_center_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(role = 'system_admin' AND facility_id IS NULL AND link_center_id IS NULL) OR (role = 'link_operator' AND link_center_id IS NOT NULL AND facility_id IS NULL) OR (role NOT IN ('system_admin', 'link_operator') AND facility_id IS NOT NULL AND link_center_id IS NULL)",
            name=op.f("ck_staff_grant_scope"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_staff_grant_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["link_center_id"],
            ["link_center.id"],
            name=op.f("fk_staff_grant_link_center_id_link_center"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_staff_grant_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_grant")),
        sa.UniqueConstraint(
            "user_id",
            "role",
            "facility_id",
            "link_center_id",
            name=op.f("uq_staff_grant_user_id_role_facility_id_link_center_id"),
        ),
    )
    with op.batch_alter_table("staff_grant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_grant_user_id"), ["user_id"], unique=False)

    op.create_table(
        "station_group",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
            name=op.f("fk_station_group_facility_id_facility"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_group")),
        sa.UniqueConstraint("facility_id", "name", name=op.f("uq_station_group_facility_id_name")),
    )
    with op.batch_alter_table("station_group", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_station_group_facility_id"), ["facility_id"], unique=False)

    op.create_table(
        "visitor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("last_name", sa.String(length=120), nullable=False),
        sa.Column("first_name", sa.String(length=120), nullable=False),
        sa.Column("middle_name", sa.String(length=120), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("home_city", sa.String(length=120), nullable=False),
        sa.Column("latitude", sa.Double(), nullable=True),
        sa.Column("longitude", sa.Double(), nullable=True),
        sa.Column(
            "verification",
            sa.Enum(
                "unverified",
                "pending",
                "verified",
                "rejected",
                name="verification_status",
                native_enum=False,
                create_constraint=True,
                length=18,
            ),
            nullable=False,
        ),
        sa.Column("verified_by_id", sa.Integer(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_visitor_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["verified_by_id"],
            ["user_account.id"],
            name=op.f("fk_visitor_verified_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visitor")),
        sa.UniqueConstraint("user_id", name=op.f("uq_visitor_user_id")),
    )
    op.create_table(
        "attorney_profile",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column("licence_number", sa.String(length=64), nullable=False),
        sa.Column("organisation", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "unverified",
                "pending",
                "verified",
                "rejected",
                name="attorney_status",
                native_enum=False,
                create_constraint=True,
                length=18,
            ),
            nullable=False,
        ),
        sa.Column("verified_by_id", sa.Integer(), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["verified_by_id"],
            ["user_account.id"],
            name=op.f("fk_attorney_profile_verified_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitor.id"],
            name=op.f("fk_attorney_profile_visitor_id_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attorney_profile")),
        sa.UniqueConstraint("visitor_id", name=op.f("uq_attorney_profile_visitor_id")),
    )
    op.create_table(
        "dependent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column("last_name", sa.String(length=120), nullable=False),
        sa.Column("first_name", sa.String(length=120), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitor.id"],
            name=op.f("fk_dependent_visitor_id_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dependent")),
    )
    with op.batch_alter_table("dependent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dependent_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "identity_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "id_front",
                "id_back",
                "selfie",
                "bar_card",
                name="document_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("storage_name", sa.String(length=100), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitor.id"],
            name=op.f("fk_identity_document_visitor_id_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_document")),
        sa.UniqueConstraint("storage_name", name=op.f("uq_identity_document_storage_name")),
    )
    with op.batch_alter_table("identity_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_document_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "resident",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("last_name", sa.String(length=120), nullable=False),
        sa.Column("first_name", sa.String(length=120), nullable=False),
        sa.Column("middle_name", sa.String(length=120), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "transferred",
                "released",
                name="resident_status",
                native_enum=False,
                create_constraint=True,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("pin_hash", sa.String(length=200), nullable=True),
        sa.Column("allowance_override", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "allowance_override IS NULL OR allowance_override >= 0",
            name=op.f("ck_resident_allowance"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_resident_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_unit.id"], name=op.f("fk_resident_unit_id_housing_unit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resident")),
        sa.UniqueConstraint("number", name=op.f("uq_resident_number")),
    )
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resident_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_resident_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "session_template",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_minutes", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("every_n_weeks", sa.Integer(), nullable=False),
        sa.Column("allow_social", sa.Boolean(), nullable=False),
        sa.Column("allow_legal", sa.Boolean(), nullable=False),
        sa.Column("allow_home", sa.Boolean(), nullable=False),
        sa.Column("allow_link_center", sa.Boolean(), nullable=False),
        sa.Column(
            "bookable_by",
            sa.Enum(
                "public",
                "staff",
                name="bookable_by",
                native_enum=False,
                create_constraint=True,
                length=14,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("allow_home OR allow_link_center", name=op.f("ck_session_template_some_mode")),
        sa.CheckConstraint("allow_social OR allow_legal", name=op.f("ck_session_template_some_kind")),
        sa.CheckConstraint("buffer_minutes BETWEEN 0 AND 60", name=op.f("ck_session_template_buffer")),
        sa.CheckConstraint("end_time > start_time", name=op.f("ck_session_template_hours")),
        sa.CheckConstraint("every_n_weeks BETWEEN 1 AND 8", name=op.f("ck_session_template_every_n_weeks")),
        sa.CheckConstraint("slot_minutes BETWEEN 15 AND 60", name=op.f("ck_session_template_slot_length")),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to >= valid_from", name=op.f("ck_session_template_validity")
        ),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name=op.f("ck_session_template_weekday")),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
            name=op.f("fk_session_template_facility_id_facility"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["station_group.id"],
            name=op.f("fk_session_template_group_id_station_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_template")),
    )
    with op.batch_alter_table("session_template", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_template_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_session_template_group_id"), ["group_id"], unique=False)

    op.create_table(
        "station",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "unit_kiosk",
                "visiting_room",
                "link_booth",
                name="station_kind",
                native_enum=False,
                create_constraint=True,
                length=21,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "in_service",
                "out_of_order",
                "retired",
                name="station_status",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("link_center_id", sa.Integer(), nullable=True),
        sa.Column("room", sa.String(length=120), nullable=True),
        sa.Column("device_key_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "(kind = 'link_booth' AND link_center_id IS NOT NULL AND facility_id IS NULL) OR (kind <> 'link_booth' AND facility_id IS NOT NULL AND link_center_id IS NULL)",
            name=op.f("ck_station_place"),
        ),
        sa.CheckConstraint("kind <> 'unit_kiosk' OR unit_id IS NOT NULL", name=op.f("ck_station_kiosk_unit")),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_station_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["station_group.id"], name=op.f("fk_station_group_id_station_group")
        ),
        sa.ForeignKeyConstraint(
            ["link_center_id"],
            ["link_center.id"],
            name=op.f("fk_station_link_center_id_link_center"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_unit.id"], name=op.f("fk_station_unit_id_housing_unit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station")),
        sa.UniqueConstraint("code", name=op.f("uq_station_code")),
    )
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_station_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_station_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_station_link_center_id"), ["link_center_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_station_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (resident_id IS NULL)", name=op.f("ck_api_token_one_subject")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_api_token_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["station_id"], ["station.id"], name=op.f("fk_api_token_station_id_station")),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_api_token_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_token_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_token_user_id"), ["user_id"], unique=False)

    op.create_table(
        "appointment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "court",
                "medical",
                "other",
                name="appointment_kind",
                native_enum=False,
                create_constraint=True,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_appointment_period")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_appointment_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_appointment_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointment")),
    )
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_appointment_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "auth_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("second_factor_done", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (resident_id IS NULL)", name=op.f("ck_auth_session_one_subject")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_auth_session_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["station.id"], name=op.f("fk_auth_session_station_id_station")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_auth_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_session_token_hash")),
    )
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auth_session_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_auth_session_user_id"), ["user_id"], unique=False)

    op.create_table(
        "blocked_period",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "blocked",
                "lockdown",
                name="block_kind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_blocked_period_period")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_blocked_period_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
            name=op.f("fk_blocked_period_facility_id_facility"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["station.id"], name=op.f("fk_blocked_period_station_id_station")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["housing_unit.id"], name=op.f("fk_blocked_period_unit_id_housing_unit")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blocked_period")),
    )
    with op.batch_alter_table("blocked_period", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_blocked_period_facility_id"), ["facility_id"], unique=False)

    op.create_table(
        "connection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column("dependent_id", sa.Integer(), nullable=True),
        sa.Column(
            "relationship",
            sa.Enum(
                "spouse",
                "partner",
                "parent",
                "child",
                "sibling",
                "grandparent",
                "relative",
                "friend",
                "attorney",
                "other",
                name="relationship",
                native_enum=False,
                create_constraint=True,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column(
            "kind",
            sa.Enum(
                "social",
                "legal",
                name="connection_kind",
                native_enum=False,
                create_constraint=True,
                length=14,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "requested",
                "approved",
                "rejected",
                "suspended",
                "revoked",
                name="connection_status",
                native_enum=False,
                create_constraint=True,
                length=17,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status NOT IN ('rejected', 'suspended', 'revoked') OR reason IS NOT NULL",
            name=op.f("ck_connection_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["user_account.id"],
            name=op.f("fk_connection_decided_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["dependent_id"],
            ["dependent.id"],
            name=op.f("fk_connection_dependent_id_dependent"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_connection_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitor.id"],
            name=op.f("fk_connection_visitor_id_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connection")),
        sa.UniqueConstraint(
            "resident_id",
            "visitor_id",
            "dependent_id",
            name=op.f("uq_connection_resident_id_visitor_id_dependent_id"),
        ),
    )
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_connection_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_connection_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "keep_apart",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_a_id", sa.Integer(), nullable=False),
        sa.Column("resident_b_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("resident_a_id < resident_b_id", name=op.f("ck_keep_apart_ordered_pair")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_keep_apart_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_a_id"],
            ["resident.id"],
            name=op.f("fk_keep_apart_resident_a_id_resident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["resident_b_id"],
            ["resident.id"],
            name=op.f("fk_keep_apart_resident_b_id_resident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_keep_apart")),
        sa.UniqueConstraint(
            "resident_a_id", "resident_b_id", name=op.f("uq_keep_apart_resident_a_id_resident_b_id")
        ),
    )
    op.create_table(
        "resident_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_resident_alert_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_resident_alert_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resident_alert")),
    )
    with op.batch_alter_table("resident_alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resident_alert_resident_id"), ["resident_id"], unique=False)

    op.create_table(
        "session_template_unit",
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["session_template.id"],
            name=op.f("fk_session_template_unit_template_id_session_template"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["housing_unit.id"],
            name=op.f("fk_session_template_unit_unit_id_housing_unit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("template_id", "unit_id", name=op.f("pk_session_template_unit")),
    )
    op.create_table(
        "visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "social",
                "legal",
                name="visit_kind",
                native_enum=False,
                create_constraint=True,
                length=14,
            ),
            nullable=False,
        ),
        sa.Column(
            "mode",
            sa.Enum(
                "home",
                "link_center",
                name="visit_mode",
                native_enum=False,
                create_constraint=True,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "held",
                "requested",
                "approved",
                "in_progress",
                "completed",
                "cancelled",
                "rejected",
                "terminated",
                "failed",
                name="visit_status",
                native_enum=False,
                create_constraint=True,
                length=19,
            ),
            nullable=False,
        ),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("resident_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("link_center_id", sa.Integer(), nullable=True),
        sa.Column("booth_station_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counts_toward_allowance", sa.Boolean(), nullable=False),
        sa.Column("priority_rebooking", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("reason_note", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("booked_by_id", sa.Integer(), nullable=True),
        sa.Column("decided_by_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replaces_visit_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "mode <> 'home' OR (link_center_id IS NULL AND booth_station_id IS NULL)",
            name=op.f("ck_visit_home_no_booth"),
        ),
        sa.CheckConstraint(
            "mode <> 'link_center' OR (link_center_id IS NOT NULL AND booth_station_id IS NOT NULL)",
            name=op.f("ck_visit_link_center_booth"),
        ),
        sa.CheckConstraint(
            "status <> 'held' OR hold_expires_at IS NOT NULL", name=op.f("ck_visit_hold_expiry")
        ),
        sa.CheckConstraint(
            "status NOT IN ('cancelled', 'rejected', 'terminated', 'failed') OR reason IS NOT NULL",
            name=op.f("ck_visit_reason"),
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_visit_period")),
        sa.ForeignKeyConstraint(
            ["booked_by_id"], ["user_account.id"], name=op.f("fk_visit_booked_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(
            ["booth_station_id"], ["station.id"], name=op.f("fk_visit_booth_station_id_station")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"], ["user_account.id"], name=op.f("fk_visit_decided_by_id_user_account")
        ),
        sa.ForeignKeyConstraint(["facility_id"], ["facility.id"], name=op.f("fk_visit_facility_id_facility")),
        sa.ForeignKeyConstraint(
            ["link_center_id"], ["link_center.id"], name=op.f("fk_visit_link_center_id_link_center")
        ),
        sa.ForeignKeyConstraint(
            ["replaces_visit_id"], ["visit.id"], name=op.f("fk_visit_replaces_visit_id_visit")
        ),
        sa.ForeignKeyConstraint(["resident_id"], ["resident.id"], name=op.f("fk_visit_resident_id_resident")),
        sa.ForeignKeyConstraint(["station_id"], ["station.id"], name=op.f("fk_visit_station_id_station")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit")),
        sa.UniqueConstraint("id", "kind", name="uq_visit_id_kind"),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index("ix_visit_facility_starts", ["facility_id", "starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_link_center_id"), ["link_center_id"], unique=False)
        batch_op.create_index("ix_visit_resident_starts", ["resident_id", "starts_at"], unique=False)
        batch_op.create_index("ix_visit_station_starts", ["station_id", "starts_at"], unique=False)

    op.create_table(
        "notification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "email",
                "sms",
                "station",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("resident_id", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=254), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sent",
                "failed",
                name="notification_status",
                native_enum=False,
                create_constraint=True,
                length=15,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "(user_id IS NULL) <> (resident_id IS NULL)", name=op.f("ck_notification_one_recipient")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"],
            ["resident.id"],
            name=op.f("fk_notification_resident_id_resident"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_notification_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["visit.id"],
            name=op.f("fk_notification_visit_id_visit"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
    )
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.create_index("ix_notification_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_notification_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notification_user_id"), ["user_id"], unique=False)

    op.create_table(
        "recording",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column(
            "visit_kind",
            sa.Enum(
                "social",
                "legal",
                name="recording_visit_kind",
                native_enum=False,
                create_constraint=True,
                length=14,
            ),
            nullable=False,
        ),
        sa.Column(
            "status",
            sa.Enum(
                "recording",
                "finalised",
                "damaged",
                "purged",
                name="recording_status",
                native_enum=False,
                create_constraint=True,
                length=17,
            ),
            nullable=False,
        ),
        sa.Column("path", sa.String(length=400), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flagged_for_investigation", sa.Boolean(), nullable=False),
        sa.CheckConstraint("visit_kind = 'social'", name=op.f("ck_recording_social_only")),
        sa.CheckConstraint("bytes IS NULL OR bytes >= 0", name=op.f("ck_recording_bytes")),
        sa.ForeignKeyConstraint(
            ["visit_id", "visit_kind"],
            ["visit.id", "visit.kind"],
            name="fk_recording_visit_social",
            onupdate="RESTRICT",
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recording")),
    )
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recording_visit_id"), ["visit_id"], unique=False)

    op.create_table(
        "restriction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "ban",
                "suspension",
                name="restriction_kind",
                native_enum=False,
                create_constraint=True,
                length=18,
            ),
            nullable=False,
        ),
        sa.Column("visitor_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_restriction_period")),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_restriction_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facility.id"], name=op.f("fk_restriction_facility_id_facility")
        ),
        sa.ForeignKeyConstraint(["visit_id"], ["visit.id"], name=op.f("fk_restriction_visit_id_visit")),
        sa.ForeignKeyConstraint(
            ["visitor_id"],
            ["visitor.id"],
            name=op.f("fk_restriction_visitor_id_visitor"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restriction")),
    )
    with op.batch_alter_table("restriction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_restriction_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "visit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "actor_kind",
            sa.Enum(
                "user",
                "resident",
                "system",
                name="visit_event_actor",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["visit.id"],
            name=op.f("fk_visit_event_visit_id_visit"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_event")),
    )
    with op.batch_alter_table("visit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_event_visit_id"), ["visit_id"], unique=False)

    op.create_table(
        "visit_participant",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("visit_id", sa.Integer(), nullable=False),
        sa.Column("visitor_id", sa.Integer(), nullable=True),
        sa.Column("dependent_id", sa.Integer(), nullable=True),
        sa.Column(
            "role",
            sa.Enum(
                "lead",
                "visitor",
                "dependent",
                name="participant_role",
                native_enum=False,
                create_constraint=True,
                length=17,
            ),
            nullable=False,
        ),
        sa.Column("rules_accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "role <> 'dependent' OR dependent_id IS NOT NULL",
            name=op.f("ck_visit_participant_dependent_role"),
        ),
        sa.CheckConstraint(
            "(visitor_id IS NULL) <> (dependent_id IS NULL)",
            name=op.f("ck_visit_participant_one_person"),
        ),
        sa.ForeignKeyConstraint(
            ["checked_in_by_id"],
            ["user_account.id"],
            name=op.f("fk_visit_participant_checked_in_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["dependent_id"],
            ["dependent.id"],
            name=op.f("fk_visit_participant_dependent_id_dependent"),
        ),
        sa.ForeignKeyConstraint(
            ["visit_id"],
            ["visit.id"],
            name=op.f("fk_visit_participant_visit_id_visit"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["visitor_id"], ["visitor.id"], name=op.f("fk_visit_participant_visitor_id_visitor")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_participant")),
        sa.UniqueConstraint(
            "visit_id",
            "visitor_id",
            "dependent_id",
            name=op.f("uq_visit_participant_visit_id_visitor_id_dependent_id"),
        ),
    )
    with op.batch_alter_table("visit_participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_visit_participant_visit_id"), ["visit_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_participant_visitor_id"), ["visitor_id"], unique=False)

    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recording.id"], name=op.f("fk_access_log_recording_id_recording")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_access_log_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_log")),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_log_recording_id"), ["recording_id"], unique=False)

    if _postgresql():
        # The database itself refuses overlapping active visits on one station, booth or resident.
        for name, column, extra in (
            ("ex_visit_station_overlap", "station_id", ""),
            ("ex_visit_resident_overlap", "resident_id", ""),
            ("ex_visit_booth_overlap", "booth_station_id", " AND booth_station_id IS NOT NULL"),
        ):
            op.execute(
                f"ALTER TABLE visit ADD CONSTRAINT {name} EXCLUDE USING gist "
                f"({column} WITH =, tstzrange(starts_at, ends_at) WITH &&) "
                f"WHERE (status IN ({ACTIVE}){extra})"
            )
        # The audit log is append-only: no role of the application may change or remove an entry.
        op.execute(
            "CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_entry is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry "
            "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()"
        )


def downgrade() -> None:
    if _postgresql():
        op.execute("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_log_recording_id"))

    op.drop_table("access_log")
    with op.batch_alter_table("visit_participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_participant_visitor_id"))
        batch_op.drop_index(batch_op.f("ix_visit_participant_visit_id"))

    op.drop_table("visit_participant")
    with op.batch_alter_table("visit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_event_visit_id"))

    op.drop_table("visit_event")
    with op.batch_alter_table("restriction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_restriction_visitor_id"))

    op.drop_table("restriction")
    with op.batch_alter_table("recording", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recording_visit_id"))

    op.drop_table("recording")
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_user_id"))
        batch_op.drop_index(batch_op.f("ix_notification_resident_id"))
        batch_op.drop_index("ix_notification_due")

    op.drop_table("notification")
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.drop_index("ix_visit_station_starts")
        batch_op.drop_index("ix_visit_resident_starts")
        batch_op.drop_index(batch_op.f("ix_visit_link_center_id"))
        batch_op.drop_index("ix_visit_facility_starts")

    op.drop_table("visit")
    op.drop_table("session_template_unit")
    with op.batch_alter_table("resident_alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resident_alert_resident_id"))

    op.drop_table("resident_alert")
    op.drop_table("keep_apart")
    with op.batch_alter_table("connection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connection_visitor_id"))
        batch_op.drop_index(batch_op.f("ix_connection_resident_id"))

    op.drop_table("connection")
    with op.batch_alter_table("blocked_period", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blocked_period_facility_id"))

    op.drop_table("blocked_period")
    with op.batch_alter_table("auth_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auth_session_user_id"))
        batch_op.drop_index(batch_op.f("ix_auth_session_resident_id"))

    op.drop_table("auth_session")
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appointment_resident_id"))

    op.drop_table("appointment")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_token_user_id"))
        batch_op.drop_index(batch_op.f("ix_api_token_resident_id"))

    op.drop_table("api_token")
    with op.batch_alter_table("station", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_station_unit_id"))
        batch_op.drop_index(batch_op.f("ix_station_link_center_id"))
        batch_op.drop_index(batch_op.f("ix_station_group_id"))
        batch_op.drop_index(batch_op.f("ix_station_facility_id"))

    op.drop_table("station")
    with op.batch_alter_table("session_template", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_template_group_id"))
        batch_op.drop_index(batch_op.f("ix_session_template_facility_id"))

    op.drop_table("session_template")
    with op.batch_alter_table("resident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resident_unit_id"))
        batch_op.drop_index(batch_op.f("ix_resident_facility_id"))

    op.drop_table("resident")
    with op.batch_alter_table("identity_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_document_visitor_id"))

    op.drop_table("identity_document")
    with op.batch_alter_table("dependent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dependent_visitor_id"))

    op.drop_table("dependent")
    op.drop_table("attorney_profile")
    op.drop_table("visitor")
    with op.batch_alter_table("station_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_station_group_facility_id"))

    op.drop_table("station_group")
    with op.batch_alter_table("staff_grant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_grant_user_id"))

    op.drop_table("staff_grant")
    with op.batch_alter_table("housing_unit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_housing_unit_facility_id"))

    op.drop_table("housing_unit")
    op.drop_table("user_account")
    with op.batch_alter_table("login_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_login_attempt_subject_at")
        batch_op.drop_index("ix_login_attempt_ip_at")

    op.drop_table("login_attempt")
    op.drop_table("link_center")
    op.drop_table("facility")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entry_object")
        batch_op.drop_index(batch_op.f("ix_audit_entry_facility_id"))
        batch_op.drop_index(batch_op.f("ix_audit_entry_action"))

    op.drop_table("audit_entry")
