"""The vocabulary of the domain: roles, kinds and statuses, stored by their string values."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A staff role; each is held for one facility or link center, except system_admin."""

    LINK_OPERATOR = "link_operator"
    VETTING_CLERK = "vetting_clerk"
    SCHEDULER = "scheduler"
    MONITORING_OFFICER = "monitoring_officer"
    INVESTIGATOR = "investigator"
    FACILITY_ADMIN = "facility_admin"
    SYSTEM_ADMIN = "system_admin"


class AccountKind(StrEnum):
    VISITOR = "visitor"
    STAFF = "staff"


class ResidentStatus(StrEnum):
    ACTIVE = "active"
    TRANSFERRED = "transferred"
    RELEASED = "released"


class StationKind(StrEnum):
    UNIT_KIOSK = "unit_kiosk"
    VISITING_ROOM = "visiting_room"
    LINK_BOOTH = "link_booth"


class StationStatus(StrEnum):
    IN_SERVICE = "in_service"
    OUT_OF_ORDER = "out_of_order"
    RETIRED = "retired"


class VerificationStatus(StrEnum):
    UNVERIFIED = "unverified"
    PENDING = "pending"
    VERIFIED = "verified"
    REJECTED = "rejected"


class DocumentKind(StrEnum):
    ID_FRONT = "id_front"
    ID_BACK = "id_back"
    SELFIE = "selfie"
    BAR_CARD = "bar_card"


class Relationship(StrEnum):
    SPOUSE = "spouse"
    PARTNER = "partner"
    PARENT = "parent"
    CHILD = "child"
    SIBLING = "sibling"
    GRANDPARENT = "grandparent"
    RELATIVE = "relative"
    FRIEND = "friend"
    ATTORNEY = "attorney"
    OTHER = "other"


class ConnectionKind(StrEnum):
    SOCIAL = "social"
    LEGAL = "legal"


class ConnectionStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class RestrictionKind(StrEnum):
    BAN = "ban"
    SUSPENSION = "suspension"


class BlockKind(StrEnum):
    BLOCKED = "blocked"
    LOCKDOWN = "lockdown"


class AppointmentKind(StrEnum):
    COURT = "court"
    MEDICAL = "medical"
    OTHER = "other"


class VisitKind(StrEnum):
    SOCIAL = "social"
    LEGAL = "legal"


class VisitMode(StrEnum):
    HOME = "home"
    LINK_CENTER = "link_center"


class VisitStatus(StrEnum):
    HELD = "held"
    REQUESTED = "requested"
    APPROVED = "approved"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    TERMINATED = "terminated"
    FAILED = "failed"


ACTIVE_VISIT_STATUSES: frozenset[VisitStatus] = frozenset(
    {VisitStatus.HELD, VisitStatus.REQUESTED, VisitStatus.APPROVED, VisitStatus.IN_PROGRESS}
)
"""Statuses that occupy a resident, a station and a visitor for the visit's time."""


class ParticipantRole(StrEnum):
    LEAD = "lead"
    VISITOR = "visitor"
    DEPENDENT = "dependent"


class BookableBy(StrEnum):
    PUBLIC = "public"
    STAFF = "staff"


class AllowancePeriod(StrEnum):
    WEEK = "week"
    MONTH = "month"


class RecordingStatus(StrEnum):
    RECORDING = "recording"
    FINALISED = "finalised"
    DAMAGED = "damaged"
    PURGED = "purged"


class NotificationChannel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    STATION = "station"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class ActorKind(StrEnum):
    USER = "user"
    RESIDENT = "resident"
    SYSTEM = "system"
