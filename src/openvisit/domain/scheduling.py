"""The rules of scheduling, as pure functions over plain values: slots from session templates in the
facility's local time (DST-safe), booking windows, holds, allowance, party, conflicts, station choice,
approval and cancellation. Times in and out are aware UTC datetimes; dates are facility-local."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache
from itertools import accumulate
from typing import Self, SupportsIndex, overload
from zoneinfo import ZoneInfo

from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    AllowancePeriod,
    BookableBy,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput

ADULT_AGE = 18

ALLOWANCE_STATUSES: frozenset[VisitStatus] = ACTIVE_VISIT_STATUSES | {
    VisitStatus.COMPLETED,
    VisitStatus.TERMINATED,
}
"""Statuses that use up allowance. Cancelled, rejected and system-failed visits give it back."""

REJECTION_REASONS: dict[str, str] = {
    "lockdown": N_("Lockdown"),
    "station_out_of_order": N_("Station out of order"),
    "unclear_id": N_("Identity document unclear"),
    "not_approved_visitor": N_("Not an approved visitor"),
    "allowance_used": N_("Visit allowance used up"),
    "other": N_("Other reason"),
}
"""The preset reasons a clerk picks from when rejecting a request."""

AUTO_REJECT_REASON = "not_decided_in_time"

CANCELLATION_REASONS: dict[str, str] = {
    "visitor_cancelled": N_("Cancelled by the visitor"),
    "rescheduled": N_("Moved to another time"),
    "lockdown": N_("Lockdown"),
    "blocked": N_("Visits are suspended at this time"),
    "station_out_of_order": N_("Station out of order"),
    "resident_transferred": N_("The resident was transferred"),
    "resident_released": N_("The resident was released"),
    "resident_moved": N_("The resident moved to another housing unit"),
    "appointment": N_("The resident has a court or medical appointment"),
    "hold_expired": N_("The held time expired"),
    "security": N_("Security"),
    "other": N_("Other reason"),
    AUTO_REJECT_REASON: N_("Not decided before the minimum notice"),
}
"""Every reason a visit may end before it happens (cancellation or rejection)."""

STAFF_CANCELLATION_REASONS = ("lockdown", "station_out_of_order", "appointment", "security", "other")


# --- the facility's rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """A facility's scheduling rules (defaults of DOMAIN.md, each configurable per facility)."""

    timezone: str
    changeover_minutes: int = 5
    public_min_notice_hours: int = 24
    public_max_days: int = 14
    staff_min_notice_hours: int = 1
    staff_max_days: int = 28
    legal_min_notice_hours: int = 2
    hold_minutes: int = 10
    allowance_count: int = 4
    allowance_period: AllowancePeriod = AllowancePeriod.WEEK
    max_visitors: int = 3

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, at: datetime) -> date:
        """The facility-local date of a moment."""
        return at.astimezone(self.zone).date()

    def min_notice(self, kind: VisitKind, *, by_staff: bool) -> timedelta:
        """How far ahead a visit must be booked: legal visits 2 h, staff 1 h, the public 24 h."""
        if kind is VisitKind.LEGAL:
            hours = min(self.legal_min_notice_hours, self.staff_min_notice_hours if by_staff else 10**6)
        else:
            hours = self.staff_min_notice_hours if by_staff else self.public_min_notice_hours
        return timedelta(hours=hours)

    def max_days(self, *, by_staff: bool) -> int:
        return self.staff_max_days if by_staff else self.public_max_days


# --- session templates and slots ------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A session template: a weekday's hours for a station group, cut into slots."""

    id: int
    group_id: int
    weekday: int  # Monday is 0
    start_time: time
    end_time: time
    slot_minutes: int
    buffer_minutes: int
    valid_from: date
    valid_to: date | None = None
    every_n_weeks: int = 1
    allow_social: bool = True
    allow_legal: bool = True
    allow_home: bool = True
    allow_link_center: bool = True
    bookable_by: BookableBy = BookableBy.PUBLIC
    unit_ids: frozenset[int] = field(default_factory=frozenset)

    @cached_property
    def _hash(self) -> int:
        return hash(tuple(getattr(self, f.name) for f in fields(self)))

    def __hash__(self) -> int:
        # By value, as the dataclass would, but once: a template's slots are cached by it on every booking.
        return self._hash

    def runs_on(self, day: date) -> bool:
        """True when the template has sessions on `day` (weekday, validity, every N weeks)."""
        if day.weekday() != self.weekday or day < self.valid_from:
            return False
        if self.valid_to is not None and day > self.valid_to:
            return False
        first_monday = self.valid_from - timedelta(days=self.valid_from.weekday())
        weeks = (day - timedelta(days=day.weekday()) - first_monday).days // 7
        return weeks % self.every_n_weeks == 0

    def allows(self, kind: VisitKind, mode: VisitMode, *, by_staff: bool, unit_id: int | None) -> bool:
        """Whether this template takes a visit of this kind and mode, booked by this person, for this unit."""
        if kind is VisitKind.SOCIAL and not self.allow_social:
            return False
        if kind is VisitKind.LEGAL and not self.allow_legal:
            return False
        if mode is VisitMode.HOME and not self.allow_home:
            return False
        if mode is VisitMode.LINK_CENTER and not self.allow_link_center:
            return False
        if self.bookable_by is BookableBy.STAFF and not by_staff:
            return False
        return not self.unit_ids or unit_id in self.unit_ids


@dataclass(frozen=True)
class Slot:
    """One bookable time of a template on one local day."""

    template_id: int
    group_id: int
    starts_at: datetime
    ends_at: datetime
    local_date: date


def local_to_utc(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC moment of a facility-local wall time, or None when that time does not exist (DST gap).
    An ambiguous time (the hour repeated in autumn) is taken at its first occurrence."""
    local = datetime.combine(day, at, tzinfo=zone)
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None
    return utc


def template_slots(template: Template, day: date, zone: ZoneInfo) -> list[Slot]:
    """The slots of `template` on the local `day`: wall-clock starts every slot + buffer minutes,
    each lasting slot minutes of real time; starts that fall in a DST gap are skipped."""
    return list(_day_slots(template, day, zone))


@lru_cache(maxsize=16_384)
def _day_slots(template: Template, day: date, zone: ZoneInfo) -> tuple[Slot, ...]:
    """template_slots, computed once per template (by value), day and zone: the result is shared."""
    if not template.runs_on(day):
        return ()
    slots: list[Slot] = []
    step = timedelta(minutes=template.slot_minutes + template.buffer_minutes)
    length = timedelta(minutes=template.slot_minutes)
    wall = datetime.combine(day, template.start_time)
    end_wall = datetime.combine(day, template.end_time)
    next_free: datetime | None = None
    while wall + length <= end_wall:
        starts_at = local_to_utc(day, wall.time(), zone)
        # When the clocks jump forward, wall-clock steps come closer in real time: a start less than a
        # slot and its changeover after the previous one, or a slot that would end after the session's
        # end on the wall clock, is skipped.
        if (
            starts_at is not None
            and (next_free is None or starts_at >= next_free)
            and (starts_at + length).astimezone(zone).replace(tzinfo=None) <= end_wall
        ):
            slots.append(Slot(template.id, template.group_id, starts_at, starts_at + length, day))
            next_free = starts_at + step
        wall += step
    return tuple(slots)


@lru_cache(maxsize=16_384)
def _slots_by_start(template: Template, day: date, zone: ZoneInfo) -> dict[datetime, Slot]:
    """_day_slots by their start (shared: not to be changed)."""
    return {slot.starts_at: slot for slot in _day_slots(template, day, zone)}


def generate_slots(templates: Iterable[Template], zone: ZoneInfo, first: date, last: date) -> list[Slot]:
    """Every slot of the templates on the local days first..last, in time order."""
    templates = list(templates)
    slots: list[Slot] = []
    day = first
    while day <= last:
        for template in templates:
            slots.extend(_day_slots(template, day, zone))
        day += timedelta(days=1)
    slots.sort(key=lambda s: (s.starts_at, s.group_id, s.template_id))
    return slots


def find_slot(templates: Iterable[Template], zone: ZoneInfo, starts_at: datetime) -> Slot:
    """The template slot that begins exactly at `starts_at`, or an error saying why there is none."""
    return find_slots(templates, zone, starts_at)[0]


def find_slots(templates: Iterable[Template], zone: ZoneInfo, starts_at: datetime) -> list[Slot]:
    """Every template slot that begins exactly at `starts_at` (templates of several station groups may
    offer one start), in the order generate_slots lists them; an error when there is none."""
    day = starts_at.astimezone(zone).date()
    found = [slot for template in templates if (slot := _slots_by_start(template, day, zone).get(starts_at))]
    if not found:
        raise InvalidInput(
            "visit.outside_template",
            N_("There is no visiting session at this time. Please pick one of the offered times."),
            field="starts_at",
        )
    return sorted(found, key=lambda s: (s.group_id, s.template_id))


def check_local_time_exists(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC moment of a local wall time a person typed, refusing one that the clocks skip."""
    moment = local_to_utc(day, at, zone)
    if moment is None:
        raise InvalidInput(
            "visit.nonexistent_local_time",
            N_("This time does not exist on that day because the clocks change. Please pick another time."),
            field="starts_at",
        )
    return moment


# --- the booking window ---------------------------------------------------------------------------


def check_booking_window(
    rules: Rules, kind: VisitKind, starts_at: datetime, now: datetime, *, by_staff: bool
) -> None:
    """Refuse a start in the past, closer than the minimum notice, or beyond the last bookable day
    (counted in the facility's local dates)."""
    if starts_at <= now:
        raise InvalidInput("visit.in_past", N_("This time has already passed."), field="starts_at")
    notice = rules.min_notice(kind, by_staff=by_staff)
    if starts_at < now + notice:
        raise InvalidInput(
            "visit.too_soon",
            N_("Visits must be booked at least %(hours)s hours ahead."),
            params={"hours": int(notice.total_seconds() // 3600)},
            field="starts_at",
        )
    last_day = rules.local_date(now) + timedelta(days=rules.max_days(by_staff=by_staff))
    if rules.local_date(starts_at) > last_day:
        raise InvalidInput(
            "visit.too_far",
            N_("Visits can be booked at most %(days)s days ahead."),
            params={"days": rules.max_days(by_staff=by_staff)},
            field="starts_at",
        )


def booking_range(rules: Rules, kind: VisitKind, now: datetime, *, by_staff: bool) -> tuple[datetime, date]:
    """The earliest start and the last local day a new booking may have."""
    return now + rules.min_notice(kind, by_staff=by_staff), rules.local_date(now) + timedelta(
        days=rules.max_days(by_staff=by_staff)
    )


# --- allowance ------------------------------------------------------------------------------------


def allowance_period(rules: Rules, at: datetime) -> tuple[datetime, datetime]:
    """The UTC bounds of the allowance period (local week from Monday, or local month) holding `at`."""
    local = at.astimezone(rules.zone).date()
    if rules.allowance_period is AllowancePeriod.WEEK:
        first = local - timedelta(days=local.weekday())
        after = first + timedelta(days=7)
    else:
        first = local.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    start = datetime.combine(first, time(0), tzinfo=rules.zone).astimezone(UTC)
    end = datetime.combine(after, time(0), tzinfo=rules.zone).astimezone(UTC)
    return start, end


def counts_toward_allowance(kind: VisitKind, status: VisitStatus, counted: bool) -> bool:
    """Social visits that happened or may still happen; legal ones never."""
    return kind is VisitKind.SOCIAL and counted and status in ALLOWANCE_STATUSES


def check_allowance(allowance: int, used: int) -> None:
    """Refuse a social visit when the resident's allowance for the period is used up."""
    if used >= allowance:
        raise Conflict(
            "visit.allowance_used",
            N_("The visits allowed for this period are used up. Please choose a time in another week."),
            params={"allowance": allowance},
        )


# --- the party ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """Someone in the party: a visitor (adult or not) or a visitor's child."""

    birth_date: date
    approved: bool
    visitor_id: int | None = None
    dependent_id: int | None = None


def age_on(birth: date, day: date) -> int:
    years = day.year - birth.year
    if (day.month, day.day) < (birth.month, birth.day):
        years -= 1
    return years


def check_party(rules: Rules, lead: Member, others: Sequence[Member], visit_day: date) -> None:
    """At most max_visitors; the lead an approved adult; every member approved; minors only beside
    an approved adult."""
    members = [lead, *others]
    if len(members) > rules.max_visitors:
        raise InvalidInput(
            "visit.too_many_visitors",
            N_("At most %(max)s people can take part in one visit."),
            params={"max": rules.max_visitors},
            field="participants",
        )
    keys = [(m.visitor_id, m.dependent_id) for m in members]
    if len(set(keys)) != len(keys):
        raise InvalidInput(
            "visit.duplicate_participant", N_("Each person can be added only once."), field="participants"
        )
    for member in members:
        if not member.approved:
            raise Forbidden(
                "visit.visitor_not_approved",
                N_("Everyone in the visit must be approved to visit this person."),
            )
    if age_on(lead.birth_date, visit_day) < ADULT_AGE:
        if any(age_on(m.birth_date, visit_day) >= ADULT_AGE for m in others):
            raise InvalidInput(
                "visit.lead_not_adult", N_("The person booking the visit must be an adult."), field="lead"
            )
        raise InvalidInput(
            "visit.minor_alone",
            N_("A child can only visit together with an approved adult."),
            field="participants",
        )


# --- conflicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Busy:
    """Something occupying a resource over [starts_at, ends_at)."""

    starts_at: datetime
    ends_at: datetime
    ref: int | None = None


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    """Half-open intervals: back-to-back is not an overlap."""
    return a_start < b_end and b_start < a_end


def any_overlap(starts_at: datetime, ends_at: datetime, busy: Iterable[Busy]) -> bool:
    """Whether anything in `busy` overlaps [starts_at, ends_at); a BusyTimes answers by binary search."""
    if isinstance(busy, BusyTimes):
        return busy.overlaps(starts_at, ends_at)
    return any(overlaps(starts_at, ends_at, b.starts_at, b.ends_at) for b in busy)


class BusyTimes(list[Busy]):
    """A resource's busy times that answer "is [s, e) free?" in O(log n), for availability, which asks
    it for every slot of two weeks. It is a list, so it is changed like one; after any change it is
    re-sorted and re-indexed the next time it is asked."""

    def __init__(self, busy: Iterable[Busy] = ()) -> None:
        super().__init__(busy)
        self._starts: list[datetime] | None = None
        self._max_ends: list[datetime] = []

    def overlaps(self, starts_at: datetime, ends_at: datetime) -> bool:
        """Some busy time b has b.start < ends_at and b.end > starts_at: among those starting before
        ends_at (a prefix, sorted by start), the latest end decides."""
        if self._starts is None:
            self.sort(key=lambda b: b.starts_at)
            self._starts = [b.starts_at for b in self]
            self._max_ends = list(accumulate((b.ends_at for b in self), max))
        before = bisect_left(self._starts, ends_at)
        return before > 0 and self._max_ends[before - 1] > starts_at

    def _changed(self) -> None:
        self._starts = None

    def append(self, item: Busy) -> None:
        super().append(item)
        self._changed()

    def extend(self, items: Iterable[Busy]) -> None:
        super().extend(items)
        self._changed()

    def insert(self, index: SupportsIndex, item: Busy) -> None:
        super().insert(index, item)
        self._changed()

    def remove(self, item: Busy) -> None:
        super().remove(item)
        self._changed()

    def pop(self, index: SupportsIndex = -1) -> Busy:
        self._changed()
        return super().pop(index)

    def clear(self) -> None:
        super().clear()
        self._changed()

    @overload
    def __setitem__(self, index: SupportsIndex, value: Busy) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[Busy]) -> None: ...
    def __setitem__(self, index: SupportsIndex | slice, value: Busy | Iterable[Busy]) -> None:
        super().__setitem__(index, value)  # type: ignore[index, assignment]
        self._changed()

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        super().__delitem__(index)
        self._changed()

    def __iadd__(self, items: Iterable[Busy]) -> Self:  # type: ignore[override, misc]
        self.extend(items)
        return self


@dataclass(frozen=True)
class StationInfo:
    """A station as the scheduler sees it."""

    id: int
    code: str
    kind: StationKind
    group_id: int | None
    unit_id: int | None
    room: str | None
    in_service: bool


def eligible_stations(
    stations: Iterable[StationInfo], *, group_id: int, resident_unit_id: int | None
) -> list[StationInfo]:
    """Stations of the slot's group that the resident may use: in service, and a unit kiosk only
    in the resident's own unit."""
    return [
        s
        for s in stations
        if s.group_id == group_id
        and s.in_service
        and (s.kind is not StationKind.UNIT_KIOSK or s.unit_id == resident_unit_id)
    ]


def pick_station(
    candidates: Sequence[StationInfo],
    starts_at: datetime,
    ends_at: datetime,
    busy_by_station: dict[int, list[Busy]],
    keep_apart_busy_rooms: Iterable[str],
) -> StationInfo | None:
    """The first free candidate (by code), never a visiting room where a keep-apart resident has a
    visit at an overlapping time."""
    blocked_rooms = set(keep_apart_busy_rooms)
    for station in sorted(candidates, key=lambda s: s.code):
        if station.room and station.room in blocked_rooms:
            continue
        if not any_overlap(starts_at, ends_at, busy_by_station.get(station.id, ())):
            return station
    return None


def pick_booth(
    booths: Sequence[StationInfo],
    starts_at: datetime,
    ends_at: datetime,
    busy_by_station: dict[int, list[Busy]],
) -> StationInfo | None:
    """The first free booth of the link center."""
    for booth in sorted(booths, key=lambda s: s.code):
        if booth.in_service and not any_overlap(starts_at, ends_at, busy_by_station.get(booth.id, ())):
            return booth
    return None


# --- approval and cancellation --------------------------------------------------------------------


def initial_status(*, needs_review: bool) -> VisitStatus:
    """Auto-approve unless something (a resident alert) asks a clerk to look first."""
    return VisitStatus.REQUESTED if needs_review else VisitStatus.APPROVED


def review_deadline(rules: Rules, kind: VisitKind, starts_at: datetime) -> datetime:
    """A request still undecided at this moment is rejected automatically."""
    return starts_at - rules.min_notice(kind, by_staff=True)


def check_rejection_reason(reason: str) -> None:
    if reason not in REJECTION_REASONS:
        raise InvalidInput(
            "visit.invalid_reason", N_("Please choose one of the listed reasons."), field="reason"
        )


def check_cancellation(
    status: VisitStatus, starts_at: datetime, now: datetime, *, by_staff: bool, reason: str | None
) -> str:
    """Visitors may cancel until the start; staff at any time before the end, with a reason.
    Returns the reason to store."""
    if status not in ACTIVE_VISIT_STATUSES or (status is VisitStatus.IN_PROGRESS and not by_staff):
        raise Conflict("visit.not_cancellable", N_("This visit can no longer be cancelled."))
    if by_staff:
        if reason not in STAFF_CANCELLATION_REASONS:
            raise InvalidInput(
                "visit.invalid_reason", N_("Please choose one of the listed reasons."), field="reason"
            )
        return reason
    if starts_at <= now:
        raise Conflict("visit.not_cancellable", N_("This visit can no longer be cancelled."))
    return "visitor_cancelled"
