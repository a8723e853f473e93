"""The data model of the whole domain. Constraints here refuse what must never be, whatever the code does."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from openvisit.db.types import JSONType, UTCDateTime, enum_type
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    AccountKind,
    ActorKind,
    AllowancePeriod,
    AppointmentKind,
    BlockKind,
    BookableBy,
    ConnectionKind,
    ConnectionStatus,
    DocumentKind,
    NotificationChannel,
    NotificationStatus,
    ParticipantRole,
    RecordingStatus,
    Relationship,
    ResidentStatus,
    RestrictionKind,
    Role,
    StationKind,
    StationStatus,
    VerificationStatus,
    VisitKind,
    VisitMode,
    VisitStatus,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ACTIVE_STATUS_SQL = ", ".join(f"'{s.value}'" for s in sorted(ACTIVE_VISIT_STATUSES))


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 - SQLAlchemy reads it as declared


def _now() -> Any:
    return sa.func.now()


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(server_default=_now())
    updated_at: Mapped[datetime] = mapped_column(server_default=_now(), onupdate=_now())


# --- places -------------------------------------------------------------------------------------


class Facility(Timestamped, Base):
    """A prison (penal colony, remand centre): its rules are the defaults of DOMAIN.md, set per facility."""

    __tablename__ = "facility"
    __table_args__ = (
        sa.CheckConstraint("default_slot_minutes BETWEEN 15 AND 60", name="slot_length"),
        sa.CheckConstraint("allowance_count >= 0", name="allowance"),
        sa.CheckConstraint("max_visitors BETWEEN 1 AND 10", name="max_visitors"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    timezone: Mapped[str] = mapped_column(sa.String(64))
    city: Mapped[str] = mapped_column(sa.String(120))
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    default_slot_minutes: Mapped[int] = mapped_column(default=30)
    changeover_minutes: Mapped[int] = mapped_column(default=5)
    public_min_notice_hours: Mapped[int] = mapped_column(default=24)
    public_max_days: Mapped[int] = mapped_column(default=14)
    staff_min_notice_hours: Mapped[int] = mapped_column(default=1)
    staff_max_days: Mapped[int] = mapped_column(default=28)
    legal_min_notice_hours: Mapped[int] = mapped_column(default=2)
    hold_minutes: Mapped[int] = mapped_column(default=10)
    allowance_count: Mapped[int] = mapped_column(default=4)
    allowance_period: Mapped[AllowancePeriod] = mapped_column(
        enum_type(AllowancePeriod, "allowance_period"), default=AllowancePeriod.WEEK
    )
    max_visitors: Mapped[int] = mapped_column(default=3)
    schedule_stamp: Mapped[str] = mapped_column(sa.String(16), default=lambda: secrets.token_hex(8))
    """Random, and replaced by database triggers whenever the facility's session templates or stations
    change (migration 0004): booking keeps what it read of them by this stamp."""
    join_early_minutes: Mapped[int] = mapped_column(default=10)
    recording_retention_days: Mapped[int] = mapped_column(default=90)


class HousingUnit(Base):
    __tablename__ = "housing_unit"
    __table_args__ = (sa.UniqueConstraint("facility_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200))


class LinkCenter(Timestamped, Base):
    """A public room with booths in a city, run by an operator who checks visitors' ID in person."""

    __tablename__ = "link_center"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    city: Mapped[str] = mapped_column(sa.String(120))
    address: Mapped[str] = mapped_column(sa.String(300), default="")
    timezone: Mapped[str] = mapped_column(sa.String(64))
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]


class StationGroup(Base):
    """Stations that share session templates (the kiosks of a unit, a visiting room)."""

    __tablename__ = "station_group"
    __table_args__ = (sa.UniqueConstraint("facility_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(120))


class Station(Timestamped, Base):
    """A kiosk in a housing unit, a visiting-room station, or a booth in a link center."""

    __tablename__ = "station"
    __table_args__ = (
        sa.CheckConstraint(
            "(kind = 'link_booth' AND link_center_id IS NOT NULL AND facility_id IS NULL)"
            " OR (kind <> 'link_booth' AND facility_id IS NOT NULL AND link_center_id IS NULL)",
            name="place",
        ),
        sa.CheckConstraint("kind <> 'unit_kiosk' OR unit_id IS NOT NULL", name="kiosk_unit"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[StationKind] = mapped_column(enum_type(StationKind, "station_kind"))
    status: Mapped[StationStatus] = mapped_column(
        enum_type(StationStatus, "station_status"), default=StationStatus.IN_SERVICE
    )
    facility_id: Mapped[int | None] = mapped_column(sa.ForeignKey("facility.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("housing_unit.id"), index=True)
    group_id: Mapped[int | None] = mapped_column(sa.ForeignKey("station_group.id"), index=True)
    link_center_id: Mapped[int | None] = mapped_column(sa.ForeignKey("link_center.id"), index=True)
    room: Mapped[str | None] = mapped_column(sa.String(120))
    device_key_hash: Mapped[str | None] = mapped_column(sa.String(200))


# --- people -------------------------------------------------------------------------------------


class Resident(Timestamped, Base):
    """A person in prison, imported from the prison's records and identified by their number."""

    __tablename__ = "resident"
    __table_args__ = (
        sa.CheckConstraint("allowance_override IS NULL OR allowance_override >= 0", name="allowance"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(32), unique=True)
    last_name: Mapped[str] = mapped_column(sa.String(120))
    first_name: Mapped[str] = mapped_column(sa.String(120))
    middle_name: Mapped[str] = mapped_column(sa.String(120), default="")
    birth_date: Mapped[date]
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("housing_unit.id"), index=True)
    status: Mapped[ResidentStatus] = mapped_column(
        enum_type(ResidentStatus, "resident_status"), default=ResidentStatus.ACTIVE
    )
    language: Mapped[str] = mapped_column(sa.String(8), default="ru")
    pin_hash: Mapped[str | None] = mapped_column(sa.String(200))
    allowance_override: Mapped[int | None]


class ResidentAlert(Timestamped, Base):
    """A flag on a resident that sends their bookings to a clerk's review."""

    __tablename__ = "resident_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    note: Mapped[str] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))


class UserAccount(Timestamped, Base):
    """A login: a visitor (family, friend, attorney) or a member of staff."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[AccountKind] = mapped_column(enum_type(AccountKind, "account_kind"))
    display_name: Mapped[str] = mapped_column(sa.String(200))
    language: Mapped[str] = mapped_column(sa.String(8), default="en")
    timezone: Mapped[str] = mapped_column(sa.String(64), default="Europe/Moscow")
    is_active: Mapped[bool] = mapped_column(default=True)
    email_verified_at: Mapped[datetime | None]
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enrolled_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]

    grants: Mapped[list[StaffGrant]] = relationship(lazy="raise", back_populates="user")


class StaffGrant(Base):
    """One role of a staff member, held for a facility or a link center; system admin holds it everywhere."""

    __tablename__ = "staff_grant"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "role", "facility_id", "link_center_id"),
        sa.CheckConstraint(
            "(role = 'system_admin' AND facility_id IS NULL AND link_center_id IS NULL)"
            " OR (role = 'link_operator' AND link_center_id IS NOT NULL AND facility_id IS NULL)"
            " OR (role NOT IN ('system_admin', 'link_operator')"
            " AND facility_id IS NOT NULL AND link_center_id IS NULL)",
            name="scope",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(enum_type(Role, "staff_role"))
    facility_id: Mapped[int | None] = mapped_column(sa.ForeignKey("facility.id"))
    link_center_id: Mapped[int | None] = mapped_column(sa.ForeignKey("link_center.id"))

    user: Mapped[UserAccount] = relationship(lazy="raise", back_populates="grants")


class AuthSession(Base):
    """A cookie login (user or resident at a station); the cookie holds a random id, we keep its hash."""

    __tablename__ = "auth_session"
    __table_args__ = (sa.CheckConstraint("(user_id IS NULL) <> (resident_id IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    resident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True
    )
    station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("station.id"))
    second_factor_done: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=_now())
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))


class ApiToken(Base):
    """A bearer token for API clients; only its hash is kept."""

    __tablename__ = "api_token"
    __table_args__ = (sa.CheckConstraint("(user_id IS NULL) <> (resident_id IS NULL)", name="one_subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    resident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True
    )
    station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("station.id"))
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    created_at: Mapped[datetime] = mapped_column(server_default=_now())
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginAttempt(Base):
    """Every failed or successful login, for throttling by account and by address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        sa.Index("ix_login_attempt_subject_at", "subject", "at"),
        sa.Index("ix_login_attempt_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    subject: Mapped[str] = mapped_column(sa.String(254))
    ip: Mapped[str] = mapped_column(sa.String(64))
    success: Mapped[bool]


class Visitor(Timestamped, Base):
    """The person behind a visitor account: names, age, where they live, whether their ID is verified."""

    __tablename__ = "visitor"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id", ondelete="CASCADE"), unique=True)
    last_name: Mapped[str] = mapped_column(sa.String(120))
    first_name: Mapped[str] = mapped_column(sa.String(120))
    middle_name: Mapped[str] = mapped_column(sa.String(120), default="")
    birth_date: Mapped[date]
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    home_city: Mapped[str] = mapped_column(sa.String(120), default="")
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    verification: Mapped[VerificationStatus] = mapped_column(
        enum_type(VerificationStatus, "verification_status"), default=VerificationStatus.UNVERIFIED
    )
    verified_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    verified_at: Mapped[datetime | None]


class AttorneyProfile(Timestamped, Base):
    """A visitor's claim to be a legal professional; verified by staff, it makes links to clients legal."""

    __tablename__ = "attorney_profile"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[int] = mapped_column(sa.ForeignKey("visitor.id", ondelete="CASCADE"), unique=True)
    licence_number: Mapped[str] = mapped_column(sa.String(64))
    organisation: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[VerificationStatus] = mapped_column(
        enum_type(VerificationStatus, "attorney_status"), default=VerificationStatus.PENDING
    )
    verified_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    verified_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(sa.Text, default="")


class IdentityDocument(Base):
    """An uploaded ID image or selfie, re-encoded and stored outside the web root under a random name."""

    __tablename__ = "identity_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[int] = mapped_column(sa.ForeignKey("visitor.id", ondelete="CASCADE"), index=True)
    kind: Mapped[DocumentKind] = mapped_column(enum_type(DocumentKind, "document_kind"))
    storage_name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    bytes: Mapped[int]
    content_type: Mapped[str] = mapped_column(sa.String(64))
    width: Mapped[int]
    height: Mapped[int]
    uploaded_at: Mapped[datetime] = mapped_column(server_default=_now())


class Dependent(Timestamped, Base):
    """A child under a visitor: no login, visits only beside an approved adult."""

    __tablename__ = "dependent"

    id: Mapped[int] = mapped_column(primary_key=True)
    visitor_id: Mapped[int] = mapped_column(sa.ForeignKey("visitor.id", ondelete="CASCADE"), index=True)
    last_name: Mapped[str] = mapped_column(sa.String(120))
    first_name: Mapped[str] = mapped_column(sa.String(120))
    birth_date: Mapped[date]


class Connection(Timestamped, Base):
    """A link between a resident and a visitor (or a visitor's child), approved by a clerk."""

    __tablename__ = "connection"
    __table_args__ = (
        sa.UniqueConstraint("resident_id", "visitor_id", "dependent_id"),
        sa.CheckConstraint(
            "status NOT IN ('rejected', 'suspended', 'revoked') OR reason IS NOT NULL",
            name="reason",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    visitor_id: Mapped[int] = mapped_column(sa.ForeignKey("visitor.id", ondelete="CASCADE"), index=True)
    dependent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dependent.id", ondelete="CASCADE"))
    relationship: Mapped[Relationship] = mapped_column(enum_type(Relationship, "relationship"))
    kind: Mapped[ConnectionKind] = mapped_column(enum_type(ConnectionKind, "connection_kind"))
    status: Mapped[ConnectionStatus] = mapped_column(
        enum_type(ConnectionStatus, "connection_status"), default=ConnectionStatus.REQUESTED
    )
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_at: Mapped[datetime | None]


class Restriction(Timestamped, Base):
    """A ban or a suspension of a visitor, at one facility or everywhere, until a date or for good."""

    __tablename__ = "restriction"
    __table_args__ = (sa.CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[RestrictionKind] = mapped_column(enum_type(RestrictionKind, "restriction_kind"))
    visitor_id: Mapped[int] = mapped_column(sa.ForeignKey("visitor.id", ondelete="CASCADE"), index=True)
    facility_id: Mapped[int | None] = mapped_column(sa.ForeignKey("facility.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(sa.Text)
    visit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("visit.id"))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    lifted_at: Mapped[datetime | None]


class KeepApart(Timestamped, Base):
    """Two residents who must never share a visiting room at the same time."""

    __tablename__ = "keep_apart"
    __table_args__ = (
        sa.UniqueConstraint("resident_a_id", "resident_b_id"),
        sa.CheckConstraint("resident_a_id < resident_b_id", name="ordered_pair"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_a_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id", ondelete="CASCADE"))
    resident_b_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(sa.Text)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))


# --- scheduling ---------------------------------------------------------------------------------

session_template_unit = sa.Table(
    "session_template_unit",
    Base.metadata,
    sa.Column("template_id", sa.ForeignKey("session_template.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("unit_id", sa.ForeignKey("housing_unit.id", ondelete="CASCADE"), primary_key=True),
)
"""Units allowed to use a template; none listed means every unit."""


class SessionTemplate(Timestamped, Base):
    """When a station group takes visits: a weekday's hours cut into slots, in the facility's local time."""

    __tablename__ = "session_template"
    __table_args__ = (
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday"),
        sa.CheckConstraint("end_time > start_time", name="hours"),
        sa.CheckConstraint("slot_minutes BETWEEN 15 AND 60", name="slot_length"),
        sa.CheckConstraint("buffer_minutes BETWEEN 0 AND 60", name="buffer"),
        sa.CheckConstraint("every_n_weeks BETWEEN 1 AND 8", name="every_n_weeks"),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="validity"),
        sa.CheckConstraint("allow_social OR allow_legal", name="some_kind"),
        sa.CheckConstraint("allow_home OR allow_link_center", name="some_mode"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(sa.ForeignKey("station_group.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int]
    start_time: Mapped[time]
    end_time: Mapped[time]
    slot_minutes: Mapped[int] = mapped_column(default=30)
    buffer_minutes: Mapped[int] = mapped_column(default=5)
    valid_from: Mapped[date]
    valid_to: Mapped[date | None]
    every_n_weeks: Mapped[int] = mapped_column(default=1)
    allow_social: Mapped[bool] = mapped_column(default=True)
    allow_legal: Mapped[bool] = mapped_column(default=True)
    allow_home: Mapped[bool] = mapped_column(default=True)
    allow_link_center: Mapped[bool] = mapped_column(default=True)
    bookable_by: Mapped[BookableBy] = mapped_column(
        enum_type(BookableBy, "bookable_by"), default=BookableBy.PUBLIC
    )

    units: Mapped[list[HousingUnit]] = relationship(secondary=session_template_unit, lazy="raise")


class BlockedPeriod(Timestamped, Base):
    """A period without visits for a facility, a unit or a station; a lockdown also cancels booked visits."""

    __tablename__ = "blocked_period"
    __table_args__ = (sa.CheckConstraint("ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[BlockKind] = mapped_column(enum_type(BlockKind, "block_kind"))
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("housing_unit.id"))
    station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("station.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(sa.Text)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))


class Appointment(Timestamped, Base):
    """A resident's court hearing or medical appointment: it outranks visits."""

    __tablename__ = "appointment"
    __table_args__ = (sa.CheckConstraint("ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True)
    kind: Mapped[AppointmentKind] = mapped_column(enum_type(AppointmentKind, "appointment_kind"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    note: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))


class Visit(Timestamped, Base):
    """A video visit between a resident at a station and visitors at home or in a link-center booth."""

    __tablename__ = "visit"
    __table_args__ = (
        sa.UniqueConstraint("id", "kind", name="uq_visit_id_kind"),
        sa.CheckConstraint("ends_at > starts_at", name="period"),
        sa.CheckConstraint(
            "mode <> 'link_center' OR (link_center_id IS NOT NULL AND booth_station_id IS NOT NULL)",
            name="link_center_booth",
        ),
        sa.CheckConstraint(
            "mode <> 'home' OR (link_center_id IS NULL AND booth_station_id IS NULL)",
            name="home_no_booth",
        ),
        sa.CheckConstraint(
            "status NOT IN ('cancelled', 'rejected', 'terminated', 'failed') OR reason IS NOT NULL",
            name="reason",
        ),
        sa.CheckConstraint("status <> 'held' OR hold_expires_at IS NOT NULL", name="hold_expiry"),
        sa.Index("ix_visit_station_starts", "station_id", "starts_at"),
        sa.Index("ix_visit_resident_starts", "resident_id", "starts_at"),
        sa.Index("ix_visit_facility_starts", "facility_id", "starts_at"),
        # "What is still to come on this station / for this resident": the scan starts at the window's
        # beginning instead of walking the whole history before it.
        sa.Index("ix_visit_station_ends", "station_id", "ends_at"),
        sa.Index("ix_visit_resident_ends", "resident_id", "ends_at"),
        sa.Index("ix_visit_booth_ends", "booth_station_id", "ends_at"),
        postgresql.ExcludeConstraint(
            ("station_id", "="),
            (sa.text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_visit_station_overlap",
            using="gist",
            where=sa.text(f"status IN ({ACTIVE_STATUS_SQL})"),
        ).ddl_if(dialect="postgresql"),
        postgresql.ExcludeConstraint(
            ("resident_id", "="),
            (sa.text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_visit_resident_overlap",
            using="gist",
            where=sa.text(f"status IN ({ACTIVE_STATUS_SQL})"),
        ).ddl_if(dialect="postgresql"),
        postgresql.ExcludeConstraint(
            ("booth_station_id", "="),
            (sa.text("tstzrange(starts_at, ends_at)"), "&&"),
            name="ex_visit_booth_overlap",
            using="gist",
            where=sa.text(f"status IN ({ACTIVE_STATUS_SQL}) AND booth_station_id IS NOT NULL"),
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[VisitKind] = mapped_column(enum_type(VisitKind, "visit_kind"))
    mode: Mapped[VisitMode] = mapped_column(enum_type(VisitMode, "visit_mode"))
    status: Mapped[VisitStatus] = mapped_column(enum_type(VisitStatus, "visit_status"))
    facility_id: Mapped[int] = mapped_column(sa.ForeignKey("facility.id"))
    resident_id: Mapped[int] = mapped_column(sa.ForeignKey("resident.id"))
    station_id: Mapped[int] = mapped_column(sa.ForeignKey("station.id"))
    link_center_id: Mapped[int | None] = mapped_column(sa.ForeignKey("link_center.id"), index=True)
    booth_station_id: Mapped[int | None] = mapped_column(sa.ForeignKey("station.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    hold_expires_at: Mapped[datetime | None]
    counts_toward_allowance: Mapped[bool] = mapped_column(default=True)
    priority_rebooking: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str | None] = mapped_column(sa.String(64))
    reason_note: Mapped[str] = mapped_column(sa.Text, default="")
    outcome: Mapped[str | None] = mapped_column(sa.String(64))
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    booked_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    replaces_visit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("visit.id"))

    participants: Mapped[list[VisitParticipant]] = relationship(lazy="raise", back_populates="visit")


class VisitParticipant(Base):
    """A visitor or a visitor's child taking part in a visit."""

    __tablename__ = "visit_participant"
    __table_args__ = (
        sa.CheckConstraint("(visitor_id IS NULL) <> (dependent_id IS NULL)", name="one_person"),
        sa.CheckConstraint("role <> 'dependent' OR dependent_id IS NOT NULL", name="dependent_role"),
        sa.UniqueConstraint("visit_id", "visitor_id", "dependent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(sa.ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    visitor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("visitor.id"), index=True)
    dependent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("dependent.id"))
    role: Mapped[ParticipantRole] = mapped_column(enum_type(ParticipantRole, "participant_role"))
    rules_accepted_at: Mapped[datetime | None]
    checked_in_at: Mapped[datetime | None]
    checked_in_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user_account.id"))

    visit: Mapped[Visit] = relationship(lazy="raise", back_populates="participants")


class VisitEvent(Base):
    """Something that happened in a visit's life: joined, left, warned, paused, terminated, ended."""

    __tablename__ = "visit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(sa.ForeignKey("visit.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(sa.String(64))
    actor_kind: Mapped[ActorKind] = mapped_column(enum_type(ActorKind, "visit_event_actor"))
    actor_id: Mapped[int | None]
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class Recording(Base):
    """A recorded social visit. The composite key to (visit.id, visit.kind) with kind fixed to 'social'
    makes a recording of a legal visit impossible to store."""

    __tablename__ = "recording"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["visit_id", "visit_kind"],
            ["visit.id", "visit.kind"],
            name="fk_recording_visit_social",
            onupdate="RESTRICT",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint("visit_kind = 'social'", name="social_only"),
        sa.CheckConstraint("bytes IS NULL OR bytes >= 0", name="bytes"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(index=True)
    visit_kind: Mapped[VisitKind] = mapped_column(enum_type(VisitKind, "recording_visit_kind"))
    status: Mapped[RecordingStatus] = mapped_column(
        enum_type(RecordingStatus, "recording_status"), default=RecordingStatus.RECORDING
    )
    path: Mapped[str] = mapped_column(sa.String(400))
    sha256: Mapped[str | None] = mapped_column(sa.String(64))
    bytes: Mapped[int | None] = mapped_column(sa.BigInteger)
    duration_seconds: Mapped[float | None]
    started_at: Mapped[datetime]
    finalised_at: Mapped[datetime | None]
    retain_until: Mapped[datetime]
    flagged_for_investigation: Mapped[bool] = mapped_column(default=False)


class AccessLog(Base):
    """Every playback or download of a recording: by whom, when, from which address and browser."""

    __tablename__ = "access_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(sa.ForeignKey("recording.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user_account.id"))
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(sa.String(32))
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(300))


class Notification(Base):
    """The outbox: written in the same transaction as the event, delivered later with retries."""

    __tablename__ = "notification"
    __table_args__ = (
        sa.CheckConstraint("(user_id IS NULL) <> (resident_id IS NULL)", name="one_recipient"),
        sa.Index("ix_notification_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[NotificationChannel] = mapped_column(enum_type(NotificationChannel, "channel"))
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    resident_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("resident.id", ondelete="CASCADE"), index=True
    )
    address: Mapped[str | None] = mapped_column(sa.String(254))
    template: Mapped[str] = mapped_column(sa.String(64))
    language: Mapped[str] = mapped_column(sa.String(8))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    visit_id: Mapped[int | None] = mapped_column(sa.ForeignKey("visit.id", ondelete="SET NULL"))
    status: Mapped[NotificationStatus] = mapped_column(
        enum_type(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(server_default=_now())
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]


# --- audit --------------------------------------------------------------------------------------


class AuditEntry(Base):
    """One link of the tamper-evident audit chain; never updated or deleted."""

    __tablename__ = "audit_entry"
    __table_args__ = (sa.Index("ix_audit_entry_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    at: Mapped[datetime]
    actor_kind: Mapped[ActorKind] = mapped_column(enum_type(ActorKind, "audit_actor"))
    actor_id: Mapped[int | None]
    actor_label: Mapped[str] = mapped_column(sa.String(254), default="")
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    object_type: Mapped[str] = mapped_column(sa.String(64))
    object_id: Mapped[str | None] = mapped_column(sa.String(64))
    facility_id: Mapped[int | None] = mapped_column(index=True)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64), unique=True)


class AuditHead(Base):
    """A single row holding the last seq and hash; locking it serialises appends to the chain."""

    __tablename__ = "audit_head"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    hash: Mapped[str] = mapped_column(sa.String(64))
