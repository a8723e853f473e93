"""Request and response bodies of the JSON API. Inputs refuse unknown fields."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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
