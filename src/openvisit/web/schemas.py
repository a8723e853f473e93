"""Request and response bodies of the JSON API. Inputs refuse unknown fields."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

T = TypeVar("T")


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenCreate(Input):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=12)


class StationTokenCreate(Input):
    station_code: str = Field(min_length=1, max_length=32)
    station_key: str = Field(min_length=1, max_length=200)
    number: str = Field(min_length=1, max_length=32)
    pin: str = Field(min_length=1, max_length=32)


class TokenRead(Output):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret
    expires_at: datetime


class GrantRead(Output):
    role: str
    facility_id: int | None
    link_center_id: int | None


class MeRead(Output):
    kind: str
    user_id: int | None
    visitor_id: int | None
    resident_id: int | None
    station_id: int | None
    label: str
    language: str
    timezone: str
    roles: list[GrantRead]
    second_factor_pending: bool


class FacilityRead(Output):
    id: int
    code: str
    name: str
    timezone: str
    city: str
    address: str
    latitude: float | None
    longitude: float | None


class FacilityRules(Output):
    default_slot_minutes: int
    changeover_minutes: int
    public_min_notice_hours: int
    public_max_days: int
    staff_min_notice_hours: int
    staff_max_days: int
    legal_min_notice_hours: int
    hold_minutes: int
    allowance_count: int
    allowance_period: str
    max_visitors: int
    join_early_minutes: int
    recording_retention_days: int


class FacilityDetail(FacilityRead):
    rules: FacilityRules


class LinkCenterRead(Output):
    id: int
    code: str
    name: str
    city: str
    address: str
    timezone: str


class StationRead(Output):
    id: int
    code: str
    name: str
    kind: str
    status: str
    facility_id: int | None
    unit_id: int | None
    link_center_id: int | None
    room: str | None


class ResidentRead(Output):
    id: int
    number: str
    last_name: str
    first_name: str
    middle_name: str
    birth_date: date
    facility_id: int
    unit_id: int | None
    status: str
    language: str


class VisitRead(Output):
    id: int
    kind: str
    mode: str
    status: str
    facility_id: int
    resident_id: int
    station_id: int
    link_center_id: int | None
    booth_station_id: int | None
    starts_at: datetime
    ends_at: datetime
    reason: str | None
    outcome: str | None


class AuditEntryRead(Output):
    seq: int
    at: datetime
    actor_kind: str
    actor_id: int | None
    actor_label: str
    action: str
    object_type: str
    object_id: str | None
    facility_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ip: str | None
    prev_hash: str
    hash: str


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# --- scheduling -----------------------------------------------------------------------------------


class FreeTimeRead(Output):
    starts_at: datetime
    ends_at: datetime
    facility_time: str
    viewer_time: str


class AvailabilityDay(Output):
    day: date
    allowance_used_up: bool
    times: list[FreeTimeRead]


class AvailabilityRead(Output):
    resident_id: int
    facility_id: int
    facility_timezone: str
    viewer_timezone: str
    kind: str
    mode: str
    link_center_id: int | None
    allowance: int
    days: list[AvailabilityDay]


class BookingCreate(Input):
    resident_id: int = Field(ge=1, le=2**31 - 1)
    starts_at: AwareDatetime
    kind: Literal["social", "legal"] = "social"
    mode: Literal["home", "link_center"] = "home"
    link_center_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    lead_visitor_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    visitor_ids: list[int] = Field(default_factory=list, max_length=10)
    dependent_ids: list[int] = Field(default_factory=list, max_length=10)
    hold: bool = False
    notes: str = Field(default="", max_length=2000)
    rebooks_visit_id: int | None = Field(
        default=None,
        ge=1,
        le=2**31 - 1,
        description="A visit the system cut short: this booking is its priority re-booking.",
    )


class VisitBooked(VisitRead):
    station_code: str
    booth_code: str | None
    facility_timezone: str
    hold_expires_at: datetime | None


class CancelCreate(Input):
    reason: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class RescheduleCreate(Input):
    starts_at: AwareDatetime


class DecisionCreate(Input):
    approve: bool
    reason: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class RequestRead(Output):
    visit: VisitRead
    resident_name: str
    resident_number: str
    lead_name: str
    party_size: int


class TemplateWrite(Input):
    group_id: int = Field(ge=1, le=2**31 - 1)
    weekday: int = Field(ge=0, le=6)
    start_time: time
    end_time: time
    slot_minutes: int = Field(default=30, ge=15, le=60)
    buffer_minutes: int = Field(default=5, ge=0, le=60)
    valid_from: date | None = None
    valid_to: date | None = None
    every_n_weeks: int = Field(default=1, ge=1, le=8)
    allow_social: bool = True
    allow_legal: bool = True
    allow_home: bool = True
    allow_link_center: bool = True
    bookable_by: Literal["public", "staff"] = "public"
    unit_ids: list[int] = Field(default_factory=list, max_length=50)


class TemplateRead(Output):
    id: int
    facility_id: int
    group_id: int
    weekday: int
    start_time: time
    end_time: time
    slot_minutes: int
    buffer_minutes: int
    valid_from: date
    valid_to: date | None
    every_n_weeks: int
    allow_social: bool
    allow_legal: bool
    allow_home: bool
    allow_link_center: bool
    bookable_by: str
    unit_ids: list[int] = Field(default_factory=list)


class BlockCreate(Input):
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    kind: Literal["blocked", "lockdown"] = "blocked"
    reason: str = Field(min_length=1, max_length=2000)
    unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    station_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class BlockRead(Output):
    id: int
    kind: str
    facility_id: int
    unit_id: int | None
    station_id: int | None
    starts_at: datetime
    ends_at: datetime
    reason: str


class BlockCreated(Output):
    block_id: int
    cancelled_visits: int
    notifications: int


class ResidentStatusCreate(Input):
    status: Literal["transferred", "released"]
    to_facility_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    to_unit_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CalendarEntryRead(Output):
    visit: VisitRead
    resident_name: str
    resident_number: str
    lead_name: str
    party_size: int


class CalendarStation(Output):
    id: int
    code: str
    name: str
    kind: str
    status: str
    visits: list[CalendarEntryRead]


class CalendarRead(Output):
    facility_id: int
    facility_timezone: str
    day: date
    stations: list[CalendarStation]
    blocks: list[BlockRead]


# --- registry and vetting -------------------------------------------------------------------------


class AttorneyClaimWrite(Input):
    licence_number: str = Field(min_length=1, max_length=64)
    organisation: str = Field(min_length=1, max_length=200)


class RegistrationCreate(Input):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    last_name: str = Field(min_length=1, max_length=120)
    first_name: str = Field(min_length=1, max_length=120)
    middle_name: str = Field(default="", max_length=120)
    birth_date: date
    phone: str | None = Field(default=None, max_length=32)
    home_city: str = Field(default="", max_length=120)
    language: Literal["en", "ru"] = "en"
    timezone: str = Field(default="Europe/Moscow", max_length=64)
    attorney: AttorneyClaimWrite | None = None


class TokenUse(Input):
    token: str = Field(min_length=1, max_length=2000)


class PasswordForgot(Input):
    email: str = Field(min_length=3, max_length=254)


class PasswordReset(Input):
    token: str = Field(min_length=1, max_length=2000)
    password: str = Field(min_length=1, max_length=1024)


class Accepted(BaseModel):
    status: str


class ProfileWrite(Input):
    last_name: str = Field(min_length=1, max_length=120)
    first_name: str = Field(min_length=1, max_length=120)
    middle_name: str = Field(default="", max_length=120)
    birth_date: date
    phone: str | None = Field(default=None, max_length=32)
    home_city: str = Field(default="", max_length=120)
    language: Literal["en", "ru"] = "en"
    timezone: str = Field(max_length=64)


class DependentRead(Output):
    id: int
    last_name: str
    first_name: str
    birth_date: date


class DependentCreate(Input):
    last_name: str = Field(min_length=1, max_length=120)
    first_name: str = Field(min_length=1, max_length=120)
    birth_date: date


class AttorneyRead(Output):
    licence_number: str
    organisation: str
    status: str


class ProfileRead(Output):
    email: str
    email_confirmed: bool
    language: str
    timezone: str
    last_name: str
    first_name: str
    middle_name: str
    birth_date: date
    phone: str | None
    home_city: str
    verification: str
    attorney: AttorneyRead | None
    dependents: list[DependentRead]


class DocumentRead(Output):
    id: int
    kind: str
    sha256: str
    bytes: int
    width: int
    height: int
    uploaded_at: datetime


class LinkCreate(Input):
    facility_id: int = Field(ge=1, le=2**31 - 1)
    number: str = Field(min_length=1, max_length=32)
    last_name: str = Field(min_length=1, max_length=120)
    birth_date: date
    relationship: Literal[
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
    ]
    dependent_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class LinkRead(Output):
    id: int
    resident_id: int
    visitor_id: int
    dependent_id: int | None
    relationship: str
    kind: str
    status: str
    reason: str | None
    note: str


class MyLinkRead(LinkRead):
    resident_name: str
    facility_name: str


class LinkDecision(Input):
    approve: bool
    reason: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class LinkStatusChange(Input):
    status: Literal["suspended", "revoked", "approved"]
    reason: str | None = Field(default=None, max_length=64)
    note: str = Field(default="", max_length=2000)


class RestrictionRead(Output):
    id: int
    kind: str
    visitor_id: int
    facility_id: int | None
    starts_at: datetime
    ends_at: datetime | None
    reason: str


class QueueItemRead(BaseModel):
    link: LinkRead
    resident: ResidentRead
    visitor_name: str
    visitor_birth_date: date
    visitor_verification: str
    email: str
    documents: list[DocumentRead]
    restrictions: list[RestrictionRead]
    attorney: AttorneyRead | None
    other_links: int


class RestrictionCreate(Input):
    visitor_id: int = Field(ge=1, le=2**31 - 1)
    kind: Literal["ban", "suspension"]
    reason: str = Field(min_length=1, max_length=2000)
    ends_at: AwareDatetime | None = None


class KeepApartCreate(Input):
    resident_a_id: int = Field(ge=1, le=2**31 - 1)
    resident_b_id: int = Field(ge=1, le=2**31 - 1)
    reason: str = Field(min_length=1, max_length=2000)


class AlertWrite(Input):
    note: str | None = Field(default=None, max_length=2000)


class AttorneyVerification(Input):
    approve: bool
    note: str = Field(default="", max_length=2000)


class RegistryRowRead(Output):
    visitor_id: int
    name: str
    licence_number: str
    organisation: str
    verified_at: datetime | None
    clients: list[str]
