"""Scheduling use cases: availability, booking (with holds), cancelling, rescheduling, approving,
blocked periods and lockdowns, transfers and releases, and the sweep that expires holds and rejects
requests nobody decided in time.

Booking is safe under a race: each booking locks the resident's row (and the visitors' rows) before it
checks and inserts, PostgreSQL's exclusion constraints refuse any overlap on a station, booth or resident
that slips past, and on SQLite the write transaction holds the database's single write lock from its
first statement (BEGIN IMMEDIATE)."""

from __future__ import annotations

import dataclasses
import functools
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from openvisit.db import fast
from openvisit.db.models import (
    Appointment,
    BlockedPeriod,
    Connection,
    Dependent,
    Facility,
    HousingUnit,
    KeepApart,
    LinkCenter,
    Notification,
    Resident,
    ResidentAlert,
    Restriction,
    SessionTemplate,
    Station,
    StationGroup,
    UserAccount,
    Visit,
    VisitEvent,
    Visitor,
    VisitParticipant,
    session_template_unit,
)
from openvisit.domain import scheduling as rules_
from openvisit.domain.audit import ChainLink
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    BlockKind,
    BookableBy,
    ConnectionKind,
    ConnectionStatus,
    NotificationChannel,
    NotificationStatus,
    ParticipantRole,
    ResidentStatus,
    Role,
    StationKind,
    StationStatus,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import SYSTEM, Principal
from openvisit.domain.scheduling import Busy, BusyTimes, Member, Rules, Slot, StationInfo, Template
from openvisit.services import audit, outbox
from openvisit.services.access import (
    access_resident_by_id,
    access_staff_facility_by_id,
    access_visit_by_id,
    require_role,
)
from openvisit.services.context import AppContext, Caller, RequestMeta

SCHEDULING_ROLES = (Role.SCHEDULER, Role.FACILITY_ADMIN)
BOOKING_STAFF_ROLES = (Role.SCHEDULER, Role.FACILITY_ADMIN, Role.VETTING_CLERK)
DECIDING_ROLES = (Role.VETTING_CLERK, Role.FACILITY_ADMIN)
ACTIVE = tuple(ACTIVE_VISIT_STATUSES)


# --- loading the rules and the facility's shape ---------------------------------------------------
#
# Availability and booking run statements built once, here: SQLAlchemy then compiles each once and
# computes its cache key once, which is most of what a statement built anew on every call costs.
# They run on the session's connection, after flushing whatever the session still holds.


def _conn(session: Session) -> sa.Connection:
    """The session's connection, with the session's pending changes flushed (Core statements on the
    connection do not autoflush)."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection()


def rules_of(facility: Facility) -> Rules:
    """The facility's scheduling rules as the domain sees them."""
    return Rules(
        timezone=facility.timezone,
        changeover_minutes=facility.changeover_minutes,
        public_min_notice_hours=facility.public_min_notice_hours,
        public_max_days=facility.public_max_days,
        staff_min_notice_hours=facility.staff_min_notice_hours,
        staff_max_days=facility.staff_max_days,
        legal_min_notice_hours=facility.legal_min_notice_hours,
        hold_minutes=facility.hold_minutes,
        allowance_count=facility.allowance_count,
        allowance_period=facility.allowance_period,
        max_visitors=facility.max_visitors,
    )


_RULE_COLUMNS = (
    Facility.timezone,
    Facility.changeover_minutes,
    Facility.public_min_notice_hours,
    Facility.public_max_days,
    Facility.staff_min_notice_hours,
    Facility.staff_max_days,
    Facility.legal_min_notice_hours,
    Facility.hold_minutes,
    Facility.allowance_count,
    Facility.allowance_period,
    Facility.max_visitors,
)


@functools.lru_cache(maxsize=256)
def _rules(values: tuple[Any, ...]) -> Rules:
    """Rules from the values of _RULE_COLUMNS, in that order (one object per distinct set of values)."""
    return Rules(*values)


@dataclass(frozen=True)
class _Person:
    """The resident as scheduling needs them, with their facility's rules and, for a visitor asking,
    the status of that visitor's own link to them."""

    id: int
    facility_id: int
    unit_id: int | None
    status: ResidentStatus
    allowance_override: int | None
    language: str
    rules: Rules
    link: ConnectionStatus | None
    has_alert: bool
    expired_holds: bool
    """Some of their holds have run out but are not yet cancelled."""
    schedule_stamp: str
    """Their facility's stamp, replaced whenever its templates or stations change (see `_shape`)."""
    next_visit_id: int | None = None
    """On PostgreSQL, when booking: an id taken from the visits' sequence for the new visit, so that the
    visit, its party and its messages are written in one statement."""


def _person_query(*, next_visit_id: bool = False) -> sa.Select[*tuple[Any, ...]]:
    link = (
        sa.select(Connection.status)
        .where(
            Connection.resident_id == Resident.id,
            Connection.visitor_id == sa.bindparam("visitor_id"),
            Connection.dependent_id.is_(None),
        )
        .limit(1)
        .scalar_subquery()
    )
    alert = sa.exists().where(ResidentAlert.resident_id == Resident.id, ResidentAlert.active.is_(True))
    expired = sa.exists().where(
        Visit.resident_id == Resident.id,
        Visit.status == VisitStatus.HELD,
        Visit.hold_expires_at <= sa.bindparam("now"),
    )
    query = (
        sa.select(
            Resident.id,
            Resident.facility_id,
            Resident.unit_id,
            Resident.status,
            Resident.allowance_override,
            Resident.language,
            link.label("link"),
            alert.label("has_alert"),
            expired.label("expired_holds"),
            *_RULE_COLUMNS,
            Facility.schedule_stamp,
        )
        .join(Facility, Facility.id == Resident.facility_id)
        .where(Resident.id == sa.bindparam("resident_id"))
    )
    if next_visit_id:
        query = query.add_columns(
            sa.func.nextval(sa.func.pg_get_serial_sequence("visit", "id")).label("next_visit_id")
        )
    return query


_PERSON = _person_query()
_PERSON_LOCKED = _PERSON.with_for_update(of=Resident)
"""The same, locking the resident's row: bookings that touch one resident run one after the other."""
_PERSON_LOCKED_NEXT_ID = _person_query(next_visit_id=True).with_for_update(of=Resident)


def _person(
    session: Session,
    p: Principal,
    resident_id: int,
    now: datetime,
    *,
    lock: bool,
    next_visit_id: bool = False,
) -> _Person:
    """The resident, if `p` may book for them: facility staff, or a visitor with any link to them
    (a pending link is told so; no link at all looks like no such resident)."""
    visitor = p.visitor_id is not None and not p.is_staff
    if not visitor:
        access_resident_by_id(session, p, resident_id)
    connection = _conn(session)
    if lock and next_visit_id and connection.dialect.name == "postgresql":
        query = _PERSON_LOCKED_NEXT_ID
    else:
        query = _PERSON_LOCKED if lock else _PERSON
    row = fast.one_or_none(
        connection,
        query,
        {"resident_id": resident_id, "visitor_id": p.visitor_id if visitor else None, "now": now},
    )
    if row is None or (visitor and row.link is None):
        raise NotFound("resident.not_found", N_("No such resident."))
    if visitor and row.link is not ConnectionStatus.APPROVED:
        raise Forbidden(
            "visit.visitor_not_approved",
            N_("Everyone in the visit must be approved to visit this person."),
        )
    return _Person(
        id=row.id,
        facility_id=row.facility_id,
        unit_id=row.unit_id,
        status=row.status,
        allowance_override=row.allowance_override,
        language=row.language,
        rules=_rules(tuple(row[9 : 9 + len(_RULE_COLUMNS)])),
        link=row.link,
        has_alert=bool(row.has_alert),
        expired_holds=bool(row.expired_holds),
        schedule_stamp=row.schedule_stamp,
        next_visit_id=row.next_visit_id if query is _PERSON_LOCKED_NEXT_ID else None,
    )


def _template_query() -> sa.Select[*tuple[Any, ...]]:
    link = session_template_unit
    t = SessionTemplate
    return (
        sa.select(
            t.id,
            t.group_id,
            t.weekday,
            t.start_time,
            t.end_time,
            t.slot_minutes,
            t.buffer_minutes,
            t.valid_from,
            t.valid_to,
            t.every_n_weeks,
            t.allow_social,
            t.allow_legal,
            t.allow_home,
            t.allow_link_center,
            t.bookable_by,
            link.c.unit_id,
        )
        .outerjoin(link, link.c.template_id == t.id)
        .where(t.facility_id == sa.bindparam("facility_id"))
        .order_by(t.id)
    )


_TEMPLATES = _template_query()
_TEMPLATES_ON = _TEMPLATES.where(SessionTemplate.weekday == sa.bindparam("weekday"))


@functools.lru_cache(maxsize=256)
def _parse_templates(rows: tuple[tuple[Any, ...], ...]) -> tuple[Template, ...]:
    """Templates from their rows (one per template and unit): parsed once per distinct set of rows."""
    units: dict[int, set[int]] = defaultdict(set)
    first: dict[int, tuple[Any, ...]] = {}
    for r in rows:
        first.setdefault(r[0], r)
        if r[15] is not None:
            units[r[0]].add(r[15])
    return tuple(
        Template(
            id=r[0],
            group_id=r[1],
            weekday=r[2],
            start_time=r[3],
            end_time=r[4],
            slot_minutes=r[5],
            buffer_minutes=r[6],
            valid_from=r[7],
            valid_to=r[8],
            every_n_weeks=r[9],
            allow_social=r[10],
            allow_legal=r[11],
            allow_home=r[12],
            allow_link_center=r[13],
            bookable_by=r[14],
            unit_ids=frozenset(units.get(r[0], ())),
        )
        for r in first.values()
    )


def _templates(session: Session, facility_id: int, *, weekday: int | None = None) -> list[Template]:
    """The facility's templates (of one weekday only, when given), units included, in one statement."""
    if weekday is None:
        rows = _conn(session).execute(_TEMPLATES, {"facility_id": facility_id})
    else:
        rows = _conn(session).execute(_TEMPLATES_ON, {"facility_id": facility_id, "weekday": weekday})
    return list(_parse_templates(tuple(tuple(r) for r in rows)))


def _station_query() -> sa.Select[*tuple[Any, ...]]:
    return sa.select(
        Station.id,
        Station.code,
        Station.kind,
        Station.group_id,
        Station.unit_id,
        Station.room,
        Station.status,
    ).order_by(Station.code)


_FACILITY_STATIONS = _station_query().where(Station.facility_id == sa.bindparam("facility_id"))
_LINK_CENTER_STATIONS = _station_query().where(Station.link_center_id == sa.bindparam("link_center_id"))


@functools.lru_cache(maxsize=256)
def _parse_stations(rows: tuple[tuple[Any, ...], ...]) -> tuple[StationInfo, ...]:
    return tuple(
        StationInfo(
            id=s[0],
            code=s[1],
            kind=s[2],
            group_id=s[3],
            unit_id=s[4],
            room=s[5],
            in_service=s[6] is StationStatus.IN_SERVICE,
        )
        for s in rows
    )


def _stations(
    session: Session, *, facility_id: int | None = None, link_center_id: int | None = None
) -> list[StationInfo]:
    if facility_id is not None and link_center_id is None:
        rows = _conn(session).execute(_FACILITY_STATIONS, {"facility_id": facility_id})
    elif link_center_id is not None and facility_id is None:
        rows = _conn(session).execute(_LINK_CENTER_STATIONS, {"link_center_id": link_center_id})
    else:
        query = _station_query()
        if facility_id is not None:
            query = query.where(Station.facility_id == facility_id)
        if link_center_id is not None:
            query = query.where(Station.link_center_id == link_center_id)
        rows = _conn(session).execute(query)
    return list(_parse_stations(tuple(tuple(r) for r in rows)))


def _shape_query(*, weekday: bool) -> sa.CompoundSelect[*tuple[Any, ...]]:
    """The facility's templates (of one weekday, with `weekday`) and its stations in one statement: a
    UNION ALL of template rows (their columns, then NULLs) and station rows (id, group and unit in the
    template's id, group and unit columns, the rest in four text columns at the end)."""
    t = SessionTemplate
    link = session_template_unit
    text = sa.cast(sa.null(), sa.String)
    facility_id = sa.bindparam("facility_id", type_=sa.Integer)
    templates = (
        sa.select(
            sa.literal("template").label("tag"),
            t.id,
            t.group_id,
            t.weekday,
            t.start_time,
            t.end_time,
            t.slot_minutes,
            t.buffer_minutes,
            t.valid_from,
            t.valid_to,
            t.every_n_weeks,
            t.allow_social,
            t.allow_legal,
            t.allow_home,
            t.allow_link_center,
            t.bookable_by,
            link.c.unit_id,
            text.label("code"),
            text.label("station_kind"),
            text.label("room"),
            text.label("station_status"),
        )
        .outerjoin(link, link.c.template_id == t.id)
        .where(t.facility_id == facility_id)
    )
    if weekday:
        templates = templates.where(t.weekday == sa.bindparam("weekday", type_=sa.Integer))
    nothing = [sa.cast(sa.null(), c.type) for c in templates.selected_columns][3:16]
    stations = sa.select(
        sa.literal("station"),
        Station.id,
        Station.group_id,
        *nothing,
        Station.unit_id,
        Station.code,
        sa.cast(Station.kind, sa.String),
        Station.room,
        sa.cast(Station.status, sa.String),
    ).where(Station.facility_id == facility_id)
    return sa.union_all(templates, stations).order_by(sa.column("tag"), sa.column("id"))


_SHAPE = _shape_query(weekday=False)
_SHAPE_ON = _shape_query(weekday=True)


_Shape = tuple[tuple[Template, ...], tuple[StationInfo, ...]]
_shapes: dict[tuple[int, int | None, str], _Shape] = {}
"""What `_shape` read, by facility, weekday and the facility's schedule stamp."""
MAX_SHAPES = 1024


def _shape(
    session: Session, facility_id: int, *, weekday: int | None = None, stamp: str | None = None
) -> tuple[list[Template], list[StationInfo]]:
    """The facility's templates (of one weekday only, when given) and stations, in one statement.

    With the facility's `stamp`, read in this transaction, what was read before under the same stamp is
    used again: database triggers give the facility a new random stamp whenever any of its templates or
    stations changes (migration 0004), so an unchanged stamp means unchanged rows."""
    key = (facility_id, weekday, stamp or "")
    found = _shapes.get(key) if stamp else None
    if found is None:
        found = _read_shape(session, facility_id, weekday)
        if stamp:
            if len(_shapes) >= MAX_SHAPES:
                _shapes.clear()
            _shapes[key] = found
    return list(found[0]), list(found[1])


def _read_shape(session: Session, facility_id: int, weekday: int | None) -> _Shape:
    if weekday is None:
        rows = fast.rows(_conn(session), _SHAPE, {"facility_id": facility_id})
    else:
        rows = fast.rows(_conn(session), _SHAPE_ON, {"facility_id": facility_id, "weekday": weekday})
    templates = tuple(tuple(r[1:17]) for r in rows if r[0] == "template")
    stations = tuple(
        (r[1], r[17], StationKind(r[18]), r[2], r[16], r[19], StationStatus(r[20]))
        for r in rows
        if r[0] == "station"
    )
    return _parse_templates(templates), _parse_stations(stations)


@functools.lru_cache(maxsize=512)
def _slots_of(templates: tuple[Template, ...], timezone: str, first: date, last: date) -> tuple[Slot, ...]:
    """generate_slots, once per set of templates, zone and days (the result is shared: never changed)."""
    return tuple(rules_.generate_slots(templates, ZoneInfo(timezone), first, last))


def _live(now: datetime | sa.BindParameter[datetime]) -> sa.ColumnElement[bool]:
    """Active visits, not counting holds that have run out (the sweep will cancel them)."""
    return sa.and_(
        Visit.status.in_(ACTIVE),
        sa.or_(Visit.status != VisitStatus.HELD, Visit.hold_expires_at > now),
    )


@dataclass
class _Occupied:
    by_station: dict[int, list[Busy]]
    resident: list[Busy]
    visitors: list[Busy]
    appointments: list[Busy]
    blocks: list[tuple[Busy, int | None]]
    kept_apart: list[Busy]
    allowance: list[datetime]
    """Starts of the resident's visits that use allowance in the period asked for."""


@functools.cache
def _occupied_query(
    stations: bool, booths: bool, visitors: bool, allowance: bool
) -> sa.CompoundSelect[*tuple[Any, ...]]:
    """The UNION ALL of _occupied, for the parts asked for; its parameters: resident_id, facility_id,
    unit_id, start, end, now, and station_ids, booth_ids, visitor_ids, allowance_start, allowance_end
    for the parts that use them."""
    no_id = sa.cast(sa.null(), sa.Integer)
    resident_id = sa.bindparam("resident_id", type_=sa.Integer)
    start: sa.BindParameter[datetime] = sa.bindparam("start")
    end: sa.BindParameter[datetime] = sa.bindparam("end")
    now: sa.BindParameter[datetime] = sa.bindparam("now")

    def visits(tag: str, condition: sa.ColumnElement[bool]) -> sa.Select[*tuple[Any, ...]]:
        return sa.select(
            sa.literal(tag).label("tag"),
            Visit.id,
            Visit.station_id,
            Visit.booth_station_id,
            Visit.starts_at,
            Visit.ends_at,
        ).where(condition, Visit.starts_at < end, Visit.ends_at > start, _live(now))

    partners = sa.select(
        sa.case(
            (KeepApart.resident_a_id == resident_id, KeepApart.resident_b_id), else_=KeepApart.resident_a_id
        )
    ).where(sa.or_(KeepApart.resident_a_id == resident_id, KeepApart.resident_b_id == resident_id))
    parts: list[sa.Select[*tuple[Any, ...]]] = [
        visits("resident", Visit.resident_id == resident_id),
        visits("kept_apart", Visit.resident_id.in_(partners)),
        sa.select(
            sa.literal("appointment"),
            Appointment.id,
            no_id,
            no_id,
            Appointment.starts_at,
            Appointment.ends_at,
        ).where(
            Appointment.resident_id == resident_id, Appointment.starts_at < end, Appointment.ends_at > start
        ),
        sa.select(
            sa.literal("block"),
            BlockedPeriod.id,
            BlockedPeriod.station_id,
            no_id,
            BlockedPeriod.starts_at,
            BlockedPeriod.ends_at,
        ).where(
            BlockedPeriod.facility_id == sa.bindparam("facility_id"),
            BlockedPeriod.starts_at < end,
            BlockedPeriod.ends_at > start,
            sa.or_(BlockedPeriod.unit_id.is_(None), BlockedPeriod.unit_id == sa.bindparam("unit_id")),
        ),
    ]
    if stations:
        parts.append(visits("station", Visit.station_id.in_(sa.bindparam("station_ids", expanding=True))))
    if booths:
        parts.append(visits("booth", Visit.booth_station_id.in_(sa.bindparam("booth_ids", expanding=True))))
    if visitors:
        party = sa.select(VisitParticipant.visit_id).where(
            VisitParticipant.visitor_id.in_(sa.bindparam("visitor_ids", expanding=True))
        )
        parts.append(visits("visitor", Visit.id.in_(party)))
    if allowance:
        parts.append(
            sa.select(sa.literal("allowance"), Visit.id, no_id, no_id, Visit.starts_at, Visit.ends_at).where(
                Visit.resident_id == resident_id,
                Visit.kind == VisitKind.SOCIAL,
                Visit.counts_toward_allowance.is_(True),
                Visit.starts_at >= sa.bindparam("allowance_start"),
                Visit.starts_at < sa.bindparam("allowance_end"),
                Visit.status.in_(tuple(rules_.ALLOWANCE_STATUSES)),
                sa.or_(Visit.status != VisitStatus.HELD, Visit.hold_expires_at > now),
            )
        )
    return sa.union_all(*parts)


def _occupied(
    session: Session,
    resident: _Person,
    *,
    station_ids: Sequence[int],
    booth_ids: Sequence[int],
    visitor_ids: Sequence[int],
    start: datetime,
    end: datetime,
    now: datetime,
    allowance: tuple[datetime, datetime] | None = None,
) -> _Occupied:
    """Everything over [start, end) that can stand in a visit's way, in one round trip (a UNION ALL whose
    every part uses its own index): the live visits of the stations and booths, of the resident, of the
    visitors and of residents kept apart from this one; the resident's appointments; and the blocked
    periods of the facility or the resident's unit (a station block names its station, and only takes
    that station out). With `allowance`, also the starts of the resident's visits that use allowance
    in that period."""
    query = _occupied_query(bool(station_ids), bool(booth_ids), bool(visitor_ids), allowance is not None)
    params: dict[str, Any] = {
        "resident_id": resident.id,
        "facility_id": resident.facility_id,
        "unit_id": resident.unit_id,
        "start": start,
        "end": end,
        "now": now,
    }
    if station_ids:
        params["station_ids"] = list(station_ids)
    if booth_ids:
        params["booth_ids"] = list(booth_ids)
    if visitor_ids:
        params["visitor_ids"] = list(visitor_ids)
    if allowance is not None:
        params["allowance_start"], params["allowance_end"] = allowance
    by_station: dict[int, list[Busy]] = defaultdict(list)
    found = _Occupied(defaultdict(BusyTimes), [], [], [], [], [], [])
    for tag, ref, station_id, booth_id, starts_at, ends_at in fast.rows(_conn(session), query, params):
        if tag == "allowance":
            found.allowance.append(starts_at)
            continue
        busy = Busy(starts_at, ends_at, ref)
        if tag in ("station", "booth"):
            where = station_id if tag == "station" else booth_id
            assert where is not None
            by_station[where].append(busy)
        elif tag == "resident":
            found.resident.append(busy)
        elif tag == "visitor":
            found.visitors.append(busy)
        elif tag == "appointment":
            found.appointments.append(busy)
        elif tag == "block":
            found.blocks.append((busy, station_id))
        else:  # kept apart: which station (so which room) they use
            found.kept_apart.append(Busy(starts_at, ends_at, station_id))
    # Availability asks each station about every slot of two weeks: sorted, that is a binary search.
    found.by_station.update((station_id, BusyTimes(items)) for station_id, items in by_station.items())
    return found


def _rooms_busy_at(
    kept_apart: list[Busy], rooms: dict[int, str | None], start: datetime, end: datetime
) -> set[str]:
    return {
        room
        for b in kept_apart
        if rules_.overlaps(start, end, b.starts_at, b.ends_at)
        and b.ref is not None
        and (room := rooms.get(b.ref))
    }


def _allowance_of(resident: Resident | _Person, rules: Rules) -> int:
    return resident.allowance_override if resident.allowance_override is not None else rules.allowance_count


def _allowance_used_in(
    starts: Iterable[datetime], periods: Sequence[tuple[datetime, datetime]]
) -> dict[tuple[datetime, datetime], int]:
    """How many of `starts` fall in each of `periods` (in time order, not overlapping)."""
    used = dict.fromkeys(periods, 0)
    if not periods:
        return used
    firsts = [first for first, _ in periods]
    for at in starts:
        index = bisect_right(firsts, at) - 1
        if index >= 0 and at < periods[index][1]:
            used[periods[index]] += 1
    return used


def _has_alert(session: Session, resident_id: int) -> bool:
    return (
        session.execute(
            sa.select(ResidentAlert.id)
            .where(ResidentAlert.resident_id == resident_id, ResidentAlert.active.is_(True))
            .limit(1)
        ).scalar_one_or_none()
        is not None
    )


def _facility(session: Session, facility_id: int) -> Facility:
    facility = session.get(Facility, facility_id)
    if facility is None:
        raise NotFound("facility.not_found", N_("No such facility."))
    return facility


# --- who is booking -------------------------------------------------------------------------------


def _is_booking_staff(p: Principal, facility_id: int) -> bool:
    return any(p.holds(role, facility_id=facility_id) for role in BOOKING_STAFF_ROLES)


# --- availability ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeTime:
    """A time a visit can be booked."""

    starts_at: datetime
    ends_at: datetime
    local_date: date


@dataclass(frozen=True)
class Availability:
    """Free times per facility-local day, with what a page needs to show them."""

    resident_id: int
    facility_id: int
    facility_timezone: str
    kind: VisitKind
    mode: VisitMode
    link_center_id: int | None
    first_day: date
    last_day: date
    times: list[FreeTime]
    allowance: int
    allowance_full_days: list[date] = field(default_factory=list)

    def by_day(self) -> dict[date, list[FreeTime]]:
        days: dict[date, list[FreeTime]] = {}
        day = self.first_day
        while day <= self.last_day:
            days[day] = []
            day += timedelta(days=1)
        for t in self.times:
            days.setdefault(t.local_date, []).append(t)
        return days


@dataclass
class _World:
    """Everything a set of candidate slots is checked against, loaded in a few queries."""

    stations: list[StationInfo]
    rooms: dict[int, str | None]
    busy_by_station: dict[int, list[Busy]]
    resident_busy: list[Busy]
    appointments: list[Busy]
    visitor_busy: list[Busy]
    blocks: list[tuple[Busy, int | None]]
    kept_apart: list[Busy]
    booths: list[StationInfo]
    by_group: dict[int, list[StationInfo]]
    """The stations of each group that the resident may use, by code: the candidates of its slots."""
    allowance: list[datetime]


def _load_world(
    session: Session,
    resident: _Person,
    visitor_ids: Sequence[int],
    start: datetime,
    end: datetime,
    now: datetime,
    link_center_id: int | None,
    *,
    group_ids: Iterable[int],
    stations: list[StationInfo] | None = None,
    allowance: tuple[datetime, datetime] | None = None,
) -> _World:
    """The world of the slots of `group_ids`: only stations of those groups that the resident may use
    are loaded with their visits (every station still names its room, for keep-apart)."""
    every = stations if stations is not None else _stations(session, facility_id=resident.facility_id)
    by_group = {
        g: sorted(
            rules_.eligible_stations(every, group_id=g, resident_unit_id=resident.unit_id),
            key=lambda s: s.code,
        )
        for g in sorted(set(group_ids))
    }
    usable = [
        s
        for g in by_group
        for s in rules_.eligible_stations(every, group_id=g, resident_unit_id=resident.unit_id)
    ]
    booths = _stations(session, link_center_id=link_center_id) if link_center_id is not None else []
    occupied = _occupied(
        session,
        resident,
        station_ids=[s.id for s in usable],
        booth_ids=[b.id for b in booths],
        visitor_ids=visitor_ids,
        start=start,
        end=end,
        now=now,
        allowance=allowance,
    )
    return _World(
        stations=usable,
        rooms={s.id: s.room for s in every},
        busy_by_station=occupied.by_station,
        resident_busy=BusyTimes(occupied.resident),
        appointments=occupied.appointments,
        visitor_busy=BusyTimes(occupied.visitors),
        blocks=occupied.blocks,
        kept_apart=occupied.kept_apart,
        booths=[b for b in booths if b.kind is StationKind.LINK_BOOTH],
        by_group=by_group,
        allowance=occupied.allowance,
    )


def _forget(world: _World, visit_id: int) -> None:
    """Take one visit out of everything it occupies (the visit being moved)."""
    for busy in world.busy_by_station.values():
        busy[:] = [b for b in busy if b.ref != visit_id]
    world.resident_busy = [b for b in world.resident_busy if b.ref != visit_id]
    world.visitor_busy = [b for b in world.visitor_busy if b.ref != visit_id]


@dataclass(frozen=True)
class _Placement:
    station: StationInfo
    booth: StationInfo | None


def _place(world: _World, slot: Slot, mode: VisitMode) -> tuple[_Placement | None, str | None]:
    """Where the visit would take place, or the code of the first reason it cannot. Availability asks
    this for every slot of two weeks, so the station is picked here (as rules_.pick_station would:
    the first free candidate by code, no room where a keep-apart resident is) from candidates sorted
    once per world."""
    start, end = slot.starts_at, slot.ends_at
    blocked_stations: set[int] = set()
    for busy, station_id in world.blocks:
        if rules_.overlaps(start, end, busy.starts_at, busy.ends_at):
            if station_id is None:
                return None, "visit.blocked"
            blocked_stations.add(station_id)
    if world.appointments and rules_.any_overlap(start, end, world.appointments):
        return None, "visit.resident_has_appointment"
    if world.resident_busy and rules_.any_overlap(start, end, world.resident_busy):
        return None, "visit.resident_busy"
    if world.visitor_busy and rules_.any_overlap(start, end, world.visitor_busy):
        return None, "visit.visitor_busy"
    rooms = _rooms_busy_at(world.kept_apart, world.rooms, start, end) if world.kept_apart else None
    busy_by_station = world.busy_by_station
    chosen: StationInfo | None = None
    for station in world.by_group.get(slot.group_id, ()):
        if blocked_stations and station.id in blocked_stations:
            continue
        if rooms and station.room and station.room in rooms:
            continue
        taken = busy_by_station.get(station.id)
        if taken and rules_.any_overlap(start, end, taken):
            continue
        chosen = station
        break
    if chosen is None:
        return None, "visit.slot_taken"
    booth = None
    if mode is VisitMode.LINK_CENTER:
        booth = rules_.pick_booth(world.booths, start, end, world.busy_by_station)
        if booth is None:
            return None, "visit.no_booth"
    return _Placement(chosen, booth), None


def _fits_quickly(world: _World, mode: VisitMode) -> Callable[[Slot], bool] | None:
    """For the usual world (no blocked period, no keep-apart order, a visit from home, busy times still
    indexed): whether `_place` would find a station for a slot, asked without its general machinery,
    since availability asks it for every slot of two weeks. None for any other world."""
    resident_busy, visitor_busy = world.resident_busy, world.visitor_busy
    if (
        world.blocks
        or world.kept_apart
        or mode is not VisitMode.HOME
        or not isinstance(resident_busy, BusyTimes)
        or not isinstance(visitor_busy, BusyTimes)
        or not all(isinstance(b, BusyTimes) for b in world.busy_by_station.values())
    ):
        return None
    appointments = world.appointments
    by_group = world.by_group
    busy_by_station = world.busy_by_station

    def fits(slot: Slot) -> bool:
        start, end = slot.starts_at, slot.ends_at
        if appointments and rules_.any_overlap(start, end, appointments):
            return False
        if resident_busy.overlaps(start, end) or visitor_busy.overlaps(start, end):
            return False
        for station in by_group.get(slot.group_id, ()):
            taken = busy_by_station.get(station.id)
            if taken is None or not taken.overlaps(start, end):  # type: ignore[attr-defined]
                return True
        return False

    return fits


def _check_link_center(session: Session, mode: VisitMode, link_center_id: int | None) -> None:
    if mode is VisitMode.LINK_CENTER:
        if link_center_id is None or session.get(LinkCenter, link_center_id) is None:
            raise InvalidInput(
                "visit.link_center_required", N_("Please choose a link center."), field="link_center_id"
            )
    elif link_center_id is not None:
        raise InvalidInput(
            "visit.link_center_not_for_home",
            N_("A visit from home has no link center."),
            field="link_center_id",
        )


def availability(
    ctx: AppContext,
    p: Principal,
    resident_id: int,
    *,
    kind: VisitKind = VisitKind.SOCIAL,
    mode: VisitMode = VisitMode.HOME,
    link_center_id: int | None = None,
    first_day: date | None = None,
    days: int | None = None,
    moving_visit_id: int | None = None,
    rebooks_visit_id: int | None = None,
) -> Availability:
    """The free times for a visit with `resident_id`, as `p` may book them, over the booking window.
    With `moving_visit_id`, the times that visit could move to: it neither blocks them nor uses allowance.
    With `rebooks_visit_id` (a visit the system cut short), the times of its priority re-booking.

    Three statements: the resident with their facility's rules and the caller's link, the facility's
    templates and stations, and everything in the way of the window's slots (allowance included)."""
    now = ctx.clock()
    with ctx.db.query() as session:
        resident = _person(session, p, resident_id, now, lock=False)
        moving = access_visit_by_id(session, p, moving_visit_id) if moving_visit_id is not None else None
        if moving is not None and moving.resident_id != resident.id:
            raise NotFound("visit.not_found", N_("No such visit."))
        priority = (
            _priority_rebooking(session, p, resident.id, kind, rebooks_visit_id)
            if rebooks_visit_id is not None
            else None
        )
        if resident.status is not ResidentStatus.ACTIVE:
            # Booking refuses a released (or transferred-away) person; offering times would be a lie.
            raise Conflict("visit.resident_unavailable", N_("Visits cannot be booked with this person now."))
        _check_link_center(session, mode, link_center_id)
        rules = resident.rules
        facility_id = resident.facility_id
        by_staff = _is_booking_staff(p, facility_id)
        earliest, last_day = rules_.booking_range(rules, kind, now, by_staff=by_staff or priority is not None)
        first = max(first_day or rules.local_date(earliest), rules.local_date(earliest))
        if days is not None:
            last_day = min(last_day, first + timedelta(days=max(days, 1) - 1))
        every_template, stations = _shape(session, facility_id, stamp=resident.schedule_stamp)
        # A template whose stations the resident can never use (another unit's kiosks) offers nothing.
        usable_groups = {
            s.group_id
            for s in stations
            if s.group_id is not None
            and rules_.eligible_stations([s], group_id=s.group_id, resident_unit_id=resident.unit_id)
        }
        templates = tuple(
            t
            for t in every_template
            if t.group_id in usable_groups
            and t.allows(kind, mode, by_staff=by_staff, unit_id=resident.unit_id)
        )
        every_slot = _slots_of(templates, rules.timezone, first, last_day)
        slots = every_slot[bisect_left(every_slot, earliest, key=lambda s: s.starts_at) :]
        allowance = _allowance_of(resident, rules)
        if not slots:
            return Availability(
                resident.id,
                facility_id,
                rules.timezone,
                kind,
                mode,
                link_center_id,
                first,
                last_day,
                [],
                allowance,
            )
        # The allowance period is a matter of the local day: found once per day, not per slot.
        period_of: dict[date, tuple[datetime, datetime]] = {}
        for s in slots:
            if s.local_date not in period_of:
                period_of[s.local_date] = rules_.allowance_period(rules, s.starts_at)
        periods = sorted(set(period_of.values()))
        start, end = slots[0].starts_at, max(s.ends_at for s in slots)
        visitor_ids = [p.visitor_id] if p.visitor_id is not None and not by_staff else []
        world = _load_world(
            session,
            resident,
            visitor_ids,
            start,
            end,
            now,
            link_center_id,
            group_ids={t.group_id for t in templates},
            stations=stations,
            allowance=(periods[0][0], periods[-1][1]) if kind is VisitKind.SOCIAL else None,
        )
        if moving is not None:
            _forget(world, moving.id)
        used: dict[tuple[datetime, datetime], int] = {}
        if kind is VisitKind.SOCIAL:
            used = _allowance_used_in(world.allowance, periods)
            if moving is not None and rules_.counts_toward_allowance(
                moving.kind, moving.status, moving.counts_toward_allowance
            ):
                for period in periods:
                    if period[0] <= moving.starts_at < period[1]:
                        used[period] -= 1
        fits = _fits_quickly(world, mode) or (lambda slot: _place(world, slot, mode)[0] is not None)
        full_days: set[date] = set()
        free: list[FreeTime] = []
        seen: set[datetime] = set()
        for slot in slots:
            if slot.starts_at in seen:
                continue
            if kind is VisitKind.SOCIAL and priority is None:
                period = period_of[slot.local_date]
                if used[period] >= allowance:
                    full_days.add(slot.local_date)
                    continue
            if fits(slot):
                seen.add(slot.starts_at)
                free.append(FreeTime(slot.starts_at, slot.ends_at, slot.local_date))
        return Availability(
            resident.id,
            facility_id,
            rules.timezone,
            kind,
            mode,
            link_center_id,
            first,
            last_day,
            free,
            allowance,
            sorted(full_days),
        )


# --- booking --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingRequest:
    """What a person asks for. Visitors book with themselves as lead; staff name the lead visitor."""

    resident_id: int
    starts_at: datetime
    kind: VisitKind = VisitKind.SOCIAL
    mode: VisitMode = VisitMode.HOME
    link_center_id: int | None = None
    lead_visitor_id: int | None = None
    visitor_ids: tuple[int, ...] = ()
    dependent_ids: tuple[int, ...] = ()
    hold: bool = False
    notes: str = ""
    rebooks_visit_id: int | None = None
    """A visit the system cut short, booked again with priority: times from the staff's minimum notice
    on, and no allowance check (the lost visit's allowance came back)."""


@dataclass(frozen=True)
class BookedVisit:
    """The visit as booked, with where it takes place."""

    visit: Visit
    station_code: str
    booth_code: str | None
    facility_timezone: str


def _lock(session: Session, model: type[Resident] | type[Visitor], ids: Sequence[int]) -> None:
    """Row locks in id order serialise the bookings that touch one resident or visitor (PostgreSQL);
    SQLite already holds its write lock."""
    if ids:
        session.execute(
            sa.select(model.id).where(model.id.in_(sorted(set(ids)))).order_by(model.id).with_for_update()
        )


def _party_query() -> sa.Select[*tuple[Any, ...]]:
    """The visitors of a party, locked in id order, each with their links to the resident (their own
    and their children's, a row each), their account, and the restriction that stops them at a time
    and facility, if any."""
    at: sa.BindParameter[datetime] = sa.bindparam("at")
    restriction = (
        sa.select(Restriction.id)
        .where(
            Restriction.visitor_id == Visitor.id,
            Restriction.lifted_at.is_(None),
            Restriction.starts_at <= at,
            sa.or_(Restriction.ends_at.is_(None), Restriction.ends_at > at),
            sa.or_(Restriction.facility_id.is_(None), Restriction.facility_id == sa.bindparam("facility_id")),
        )
        .order_by(Restriction.ends_at.desc().nulls_first())
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(
            Visitor.id,
            Visitor.birth_date,
            UserAccount.id.label("user_id"),
            UserAccount.email,
            UserAccount.language,
            Connection.dependent_id,
            Connection.status,
            Connection.kind,
            restriction.label("restriction_id"),
        )
        .join(UserAccount, UserAccount.id == Visitor.user_id)
        .outerjoin(
            Connection,
            sa.and_(
                Connection.visitor_id == Visitor.id, Connection.resident_id == sa.bindparam("resident_id")
            ),
        )
        .where(Visitor.id.in_(sa.bindparam("visitor_ids", expanding=True)))
        .order_by(Visitor.id, Connection.id)
        .with_for_update(of=Visitor)
    )


_PARTY = _party_query()


@dataclass(frozen=True)
class _Link:
    status: ConnectionStatus
    kind: ConnectionKind


@dataclass
class _Party:
    lead: Member
    others: list[Member]
    kinds: dict[int, ConnectionKind]
    users: list[tuple[int, str, str]]
    """(id, email, language) of every visitor's account, by id: who is emailed about the visit."""
    restriction_ids: list[int]
    """The restriction that stops each visitor at that time and facility, if any."""


def _party(
    session: Session,
    resident_id: int,
    facility_id: int,
    at: datetime,
    lead_id: int,
    visitor_ids: Sequence[int],
    dependent_ids: Sequence[int],
) -> _Party:
    """The party in one statement (plus one for children, when named), the visitors' rows locked."""
    people = [lead_id, *[v for v in visitor_ids if v != lead_id]]
    rows = fast.rows(
        _conn(session),
        _PARTY,
        {"visitor_ids": people, "resident_id": resident_id, "facility_id": facility_id, "at": at},
    )
    visitors = {r.id: r for r in rows}
    if any(v not in visitors for v in people):
        raise NotFound("visitor.not_found", N_("No such visitor."))
    links = {(r.id, r.dependent_id): _Link(r.status, r.kind) for r in rows if r.status is not None}
    kinds: dict[int, ConnectionKind] = {}

    def member_of(visitor_id: int) -> Member:
        link = links.get((visitor_id, None))
        if link is not None:
            kinds[visitor_id] = link.kind
        approved = link is not None and link.status is ConnectionStatus.APPROVED
        return Member(visitors[visitor_id].birth_date, approved, visitor_id=visitor_id)

    lead = member_of(lead_id)
    others = [member_of(v) for v in people[1:]]
    if dependent_ids:
        children = {
            d.id: d
            for d in session.execute(sa.select(Dependent).where(Dependent.id.in_(dependent_ids))).scalars()
        }
        for dependent_id in dependent_ids:
            child = children.get(dependent_id)
            if child is None or child.visitor_id not in visitors:
                raise NotFound("dependent.not_found", N_("No such child in this party."))
            found = links.get((child.visitor_id, dependent_id))
            approved = found is not None and found.status is ConnectionStatus.APPROVED
            others.append(Member(child.birth_date, approved, dependent_id=dependent_id))
    users = sorted({(r.user_id, r.email, r.language) for r in rows})
    restrictions = sorted({r.restriction_id for r in rows if r.restriction_id is not None})
    return _Party(lead, others, kinds, users, restrictions)


def _restriction(session: Session, ids: Sequence[int]) -> Restriction:
    """Of the restrictions that stop the party (each visitor's first), the one that lasts longest."""
    return session.execute(
        sa.select(Restriction)
        .where(Restriction.id.in_(ids))
        .order_by(Restriction.ends_at.desc().nulls_first())
        .limit(1)
    ).scalar_one()


_INSERT_VISIT = sa.insert(Visit).returning(Visit.id)
_INSERT_VISIT_UNLESS_TAKEN = postgresql.insert(Visit).on_conflict_do_nothing().returning(Visit.id)
"""On PostgreSQL, a visit that an exclusion constraint refuses (another booking took the station or
booth since we looked) is simply not inserted, with no savepoint around it."""


def _insert_visit(connection: sa.Connection, values: dict[str, Any]) -> int | None:
    """The new visit's id, or None when PostgreSQL found its time taken."""
    postgres = connection.dialect.name == "postgresql"
    inserted = connection.execute(_INSERT_VISIT_UNLESS_TAKEN if postgres else _INSERT_VISIT, values)
    visit_id: int | None = inserted.scalar_one_or_none()
    return visit_id


def _book_in(
    ctx: AppContext,
    session: Session,
    p: Principal,
    req: BookingRequest,
    now: datetime,
    meta: RequestMeta,
    *,
    replaces: int | None = None,
) -> BookedVisit:
    """Every rule, checked in a handful of statements: the resident locked (with their facility's rules
    and the caller's link), the day's templates with the facility's stations, the party locked (links,
    accounts, restrictions), and everything in the slot's way (allowance included); then the visit, its
    party and its messages."""
    resident = _person(session, p, req.resident_id, now, lock=True, next_visit_id=True)
    if resident.status is not ResidentStatus.ACTIVE:
        raise Conflict("visit.resident_unavailable", N_("Visits cannot be booked with this person now."))
    rules = resident.rules
    facility_id = resident.facility_id
    by_staff = _is_booking_staff(p, facility_id)
    if not by_staff and p.visitor_id is None:
        raise Forbidden()
    lead_id = req.lead_visitor_id if by_staff and req.lead_visitor_id is not None else p.visitor_id
    if lead_id is None:
        raise InvalidInput(
            "visit.lead_required", N_("Please name the visitor who leads the visit."), field="lead_visitor_id"
        )
    if not by_staff and req.lead_visitor_id not in (None, p.visitor_id):
        raise Forbidden()
    _check_link_center(session, req.mode, req.link_center_id)
    priority = (
        _priority_rebooking(session, p, resident.id, req.kind, req.rebooks_visit_id)
        if req.rebooks_visit_id is not None
        else None
    )
    if priority is not None and replaces is None:
        replaces = priority.id
    rules_.check_booking_window(
        rules, req.kind, req.starts_at, now, by_staff=by_staff or priority is not None
    )
    day_templates, stations = _shape(
        session, facility_id, weekday=rules.local_date(req.starts_at).weekday(), stamp=resident.schedule_stamp
    )
    templates = [
        t for t in day_templates if t.allows(req.kind, req.mode, by_staff=by_staff, unit_id=resident.unit_id)
    ]
    slots = rules_.find_slots(templates, rules.zone, req.starts_at)
    slot = slots[0]
    party = _party(
        session, resident.id, facility_id, slot.starts_at, lead_id, req.visitor_ids, req.dependent_ids
    )
    lead, others = party.lead, party.others
    if req.dependent_ids and p.visitor_id is not None and not by_staff:
        own = set(
            session.execute(sa.select(Dependent.id).where(Dependent.visitor_id == p.visitor_id)).scalars()
        )
        if any(d not in own for d in req.dependent_ids):
            raise NotFound("dependent.not_found", N_("No such child in this party."))
    rules_.check_party(rules, lead, others, slot.local_date)
    if req.kind is VisitKind.LEGAL and party.kinds.get(lead_id) is not ConnectionKind.LEGAL:
        raise Forbidden(
            "visit.legal_requires_attorney",
            N_("Only a verified attorney of this person can book a legal visit."),
        )
    visitor_ids = [m.visitor_id for m in (lead, *others) if m.visitor_id is not None]
    if party.restriction_ids:
        restriction = _restriction(session, party.restriction_ids)
        raise Forbidden(
            "visit.visitor_restricted",
            N_("A visitor in this party may not visit at this time: %(reason)s"),
            params={
                "reason": restriction.reason,
                "until": restriction.ends_at.isoformat() if restriction.ends_at else None,
            },
        )
    if resident.expired_holds:
        _expire_holds(session, now, resident_id=resident.id)
    period = (
        rules_.allowance_period(rules, slot.starts_at)
        if req.kind is VisitKind.SOCIAL and priority is None
        else None
    )
    world = _load_world(
        session,
        resident,
        visitor_ids,
        slot.starts_at,
        max(s.ends_at for s in slots),
        now,
        req.link_center_id,
        group_ids={s.group_id for s in slots},
        stations=stations,
        allowance=period,
    )
    if period is not None:
        rules_.check_allowance(_allowance_of(resident, rules), len(world.allowance))
    # Templates of several station groups may offer this start: take the first where the visit fits,
    # as availability does, so that every time it offers can be booked.
    slot = next((s for s in slots if _place(world, s, req.mode)[0] is not None), slot)
    status = VisitStatus.HELD if req.hold else rules_.initial_status(needs_review=resident.has_alert)
    party_rows = [(lead_id, None, ParticipantRole.LEAD)] + [
        (
            m.visitor_id,
            m.dependent_id,
            ParticipantRole.DEPENDENT if m.dependent_id is not None else ParticipantRole.VISITOR,
        )
        for m in others
    ]
    # What outbox.enqueue_for_visit writes for a new visit (an email to every visitor's account, by id,
    # and a message on the resident's station), written here with the party: the accounts are known.
    template = "visit_requested" if status is VisitStatus.REQUESTED else "visit_booked"
    recipients: list[_Recipient] = []
    if not req.hold:
        recipients = [(NotificationChannel.EMAIL, u, None, email, lang) for u, email, lang in party.users]
        recipients.append((NotificationChannel.STATION, None, resident.id, None, resident.language))
    connection = _conn(session)
    values: dict[str, Any] = {}
    visit_id: int | None = None
    placement: _Placement | None = None
    for _attempt in range(3):
        placement, problem = _place(world, slot, req.mode)
        if placement is None:
            raise _conflict(problem or "visit.slot_taken")
        values = {
            "kind": req.kind,
            "mode": req.mode,
            "status": status,
            "facility_id": facility_id,
            "resident_id": resident.id,
            "station_id": placement.station.id,
            "link_center_id": req.link_center_id,
            "booth_station_id": placement.booth.id if placement.booth else None,
            "starts_at": slot.starts_at,
            "ends_at": slot.ends_at,
            "hold_expires_at": now + timedelta(minutes=rules.hold_minutes) if req.hold else None,
            "booked_by_id": p.user_id,
            "notes": req.notes[:2000],
            "replaces_visit_id": replaces,
        }
        if resident.next_visit_id is not None:
            planned = Visit(id=resident.next_visit_id, reason=None, outcome=None, **values)
            params = {f"v_{k}": v for k, v in values.items()}
            params["v_id"] = resident.next_visit_id
            params.update(_party_params(party_rows))
            params.update(
                _message_params(recipients, template, outbox.visit_payload(planned, rules.timezone), now)
            )
            params.update(audit.append_params(_booking_link(p, planned, req.hold, now, meta)))
            # The transaction's last statement before COMMIT: the visit, its party, its messages and
            # its audit entry, chained there.
            statement = _booking_statement(len(party_rows), len(recipients))
            written = fast.one_or_none(connection, statement, params)
            visit_id = written.id if written is not None else None
        else:
            visit_id = _insert_visit(connection, values)
        if visit_id is not None:
            break
        # A hold that has run out but is not yet swept still counts for PostgreSQL's exclusion
        # constraints, though availability offers its time: give the time back and try again.
        if _expire_holds(session, now, during=(slot.starts_at, slot.ends_at)):
            continue
        # Another booking took this station or booth between our check and our insert (PostgreSQL's
        # exclusion constraints caught it). Count them as busy and try the next free one, if any.
        taken = Busy(slot.starts_at, slot.ends_at, None)
        world.busy_by_station[placement.station.id].append(taken)
        if placement.booth is not None:
            world.busy_by_station[placement.booth.id].append(taken)
    if visit_id is None or placement is None:
        raise _conflict("visit.slot_taken")
    if resident.next_visit_id is not None:
        visit = planned
    else:
        visit = Visit(id=visit_id, reason=None, outcome=None, **values)
        connection.execute(
            _INSERT_PARTICIPANT,
            [
                {"visit_id": visit_id, "visitor_id": visitor_id, "dependent_id": dependent_id, "role": role}
                for visitor_id, dependent_id, role in party_rows
            ],
        )
        if recipients:
            payload = outbox.visit_payload(visit, rules.timezone)
            connection.execute(
                _INSERT_MESSAGE,
                [
                    {
                        "channel": channel,
                        "user_id": user_id,
                        "resident_id": resident_id,
                        "address": address,
                        "language": language,
                        "template": template,
                        "payload": payload,
                        "visit_id": visit_id,
                        "status": NotificationStatus.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for channel, user_id, resident_id, address, language in recipients
                ],
            )
        audit.record_link(session, _booking_link(p, visit, req.hold, now, meta))
    booth_code = placement.booth.code if placement.booth else None
    return BookedVisit(visit, placement.station.code, booth_code, rules.timezone)


_Recipient = tuple[NotificationChannel, int | None, int | None, str | None, str]
"""A message's channel, user or resident, address and language."""

_PARTY_COLUMNS = ("visitor_id", "dependent_id", "role")
_MESSAGE_COLUMNS = ("channel", "user_id", "resident_id", "address", "language")
_MESSAGE_SHARED = ("template", "payload", "status", "attempts", "next_attempt_at")
_VISIT_COLUMNS = (
    "id",
    "kind",
    "mode",
    "status",
    "facility_id",
    "resident_id",
    "station_id",
    "link_center_id",
    "booth_station_id",
    "starts_at",
    "ends_at",
    "hold_expires_at",
    "booked_by_id",
    "notes",
    "replaces_visit_id",
)


def _party_params(rows: Sequence[tuple[int | None, int | None, ParticipantRole]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for i, row in enumerate(rows):
        params.update((f"p_{c}_{i}", value) for c, value in zip(_PARTY_COLUMNS, row, strict=True))
    return params


def _message_params(
    recipients: Sequence[_Recipient], template: str, payload: dict[str, Any], now: datetime
) -> dict[str, Any]:
    if not recipients:
        return {}
    params: dict[str, Any] = {
        "m_template": template,
        "m_payload": payload,
        "m_status": NotificationStatus.PENDING,
        "m_attempts": 0,
        "m_next_attempt_at": now,
    }
    for i, row in enumerate(recipients):
        params.update((f"m_{c}_{i}", value) for c, value in zip(_MESSAGE_COLUMNS, row, strict=True))
    return params


@functools.lru_cache(maxsize=32)
def _booking_statement(participants: int, messages: int) -> sa.Select[*tuple[Any, ...]]:
    """PostgreSQL: the visit (with its id given, refused without error when an exclusion constraint
    finds its time taken), its party, its messages and its audit entry (audit.append_when) in one
    statement, which returns the visit's id, or nothing when it was refused (nothing else is written
    then either). Built once per size of party; parameters v_*, p_*_i, m_*_i, m_* and a_*."""
    visits = Visit.metadata.tables["visit"]
    row: dict[str, Any] = {c: sa.bindparam(f"v_{c}", type_=visits.c[c].type) for c in _VISIT_COLUMNS}
    # An INSERT inside a WITH does not get the columns' Python defaults: give them.
    for column in visits.c:
        default = column.default
        if column.name not in row and isinstance(default, ScalarElementColumnDefault):
            row[column.name] = sa.literal(default.arg, column.type)
    booked = (
        postgresql.insert(visits).values(row).on_conflict_do_nothing().returning(visits.c.id).cte("booked")
    )
    statement = sa.select(booked.c.id).add_cte(*audit.append_when(booked))
    party = VisitParticipant.metadata.tables["visit_participant"]
    for i in range(participants):
        chosen = sa.select(
            booked.c.id, *(sa.bindparam(f"p_{c}_{i}", type_=party.c[c].type) for c in _PARTY_COLUMNS)
        )
        statement = statement.add_cte(
            party.insert().from_select(["visit_id", *_PARTY_COLUMNS], chosen).cte(f"party_{i}")
        )
    notes = Notification.metadata.tables["notification"]
    for i in range(messages):
        written = sa.select(
            *(sa.bindparam(f"m_{c}_{i}", type_=notes.c[c].type) for c in _MESSAGE_COLUMNS),
            *(sa.bindparam(f"m_{c}", type_=notes.c[c].type) for c in _MESSAGE_SHARED),
            booked.c.id,
        )
        statement = statement.add_cte(
            notes.insert()
            .from_select([*_MESSAGE_COLUMNS, *_MESSAGE_SHARED, "visit_id"], written)
            .cte(f"message_{i}")
        )
    return statement


_INSERT_PARTICIPANT = VisitParticipant.metadata.tables["visit_participant"].insert()
_INSERT_MESSAGE = Notification.metadata.tables["notification"].insert()
"""Plain INSERTs, run with a list of rows: compiled once (a multi-row VALUES would be compiled on every
call), and sent by psycopg in one round trip however many rows there are."""


_CONFLICT_MESSAGES: dict[str, str] = {
    "visit.slot_taken": N_("This time has just been taken. Please choose another time."),
    "visit.resident_busy": N_("The person you visit already has a visit at this time."),
    "visit.visitor_busy": N_("You already have a visit at this time."),
    "visit.resident_has_appointment": N_(
        "The person you visit has a court or medical appointment at this time."
    ),
    "visit.blocked": N_("Visits are suspended at this time. Please choose another time."),
    "visit.no_booth": N_("No booth is free at this link center at this time."),
}


def _booking_link(p: Principal, visit: Visit, hold: bool, now: datetime, meta: RequestMeta) -> ChainLink:
    """The audit entry of a new booking or hold."""
    return audit.new_link(
        p,
        "visit.held" if hold else "visit.booked",
        "visit",
        visit.id,
        at=now,
        facility_id=visit.facility_id,
        after=_visit_state(visit),
        ip=meta.ip,
    )


def _conflict(code: str) -> Conflict:
    return Conflict(code, _CONFLICT_MESSAGES.get(code, _CONFLICT_MESSAGES["visit.slot_taken"]))


def _visit_state(visit: Visit) -> dict[str, object]:
    return {
        "status": visit.status.value,
        "kind": visit.kind.value,
        "mode": visit.mode.value,
        "resident_id": visit.resident_id,
        "station_id": visit.station_id,
        "booth_station_id": visit.booth_station_id,
        "starts_at": visit.starts_at,
        "ends_at": visit.ends_at,
        "reason": visit.reason,
    }


def _priority_rebooking(
    session: Session, p: Principal, resident_id: int, kind: VisitKind, visit_id: int
) -> Visit:
    """The visit with `resident_id` that the system cut short and that `p` may book again with priority:
    once, as long as no booking made from it stands (a cancelled or expired one gives it back)."""
    failed = access_visit_by_id(session, p, visit_id)
    if failed.resident_id != resident_id or failed.kind is not kind:
        raise NotFound("visit.not_found", N_("No such visit."))
    if failed.status is not VisitStatus.FAILED or not failed.priority_rebooking:
        raise Conflict(
            "visit.no_priority_rebooking",
            N_("Only a visit that the system cut short can be booked again with priority."),
        )
    taken = session.execute(
        sa.select(Visit.id)
        .where(
            Visit.replaces_visit_id == failed.id,
            Visit.status.not_in((VisitStatus.CANCELLED, VisitStatus.REJECTED)),
        )
        .limit(1)
    ).first()
    if taken is not None:
        raise Conflict(
            "visit.priority_rebooking_used",
            N_("This visit has been booked again already."),
            params={"visit_id": taken.id},
        )
    return failed


def book_visit(ctx: AppContext, p: Caller, req: BookingRequest, meta: RequestMeta) -> BookedVisit:
    """Book (or hold) a visit at a template time, choosing the station; every rule, one transaction.

    When the caller is found on the booking's connection and that first statement finds the connection
    dropped (the database restarted), the booking is tried once more on a fresh one: nothing was sent
    before it."""
    now = ctx.clock()
    for attempt in (1, 2):
        found = isinstance(p, Principal)
        try:
            with ctx.db.write() as session:
                caller = p if isinstance(p, Principal) else p(_conn(session))
                found = True
                return _book_in(ctx, session, caller, req, now, meta)
        except sa.exc.DBAPIError as exc:
            if found or attempt == 2 or not exc.connection_invalidated:
                raise
    raise AssertionError("unreachable")


def confirm_hold(ctx: AppContext, p: Principal, visit_id: int, meta: RequestMeta) -> Visit:
    """Turn one's own hold into a booking (approved, or requested when a clerk must look first)."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = access_visit_by_id(session, p, visit_id)
        _lock(session, Resident, [visit.resident_id])
        session.refresh(visit)
        if visit.status is not VisitStatus.HELD or visit.booked_by_id != p.user_id:
            raise Conflict("visit.not_held", N_("This time is not held for you."))
        if visit.hold_expires_at is None or visit.hold_expires_at <= now:
            raise Conflict(
                "visit.hold_expired", N_("The time you held has expired. Please choose a time again.")
            )
        facility = _facility(session, visit.facility_id)
        before = _visit_state(visit)
        visit.status = rules_.initial_status(needs_review=_has_alert(session, visit.resident_id))
        visit.hold_expires_at = None
        session.flush()
        audit.record(
            session,
            p,
            "visit.booked",
            "visit",
            visit.id,
            at=now,
            facility_id=visit.facility_id,
            before=before,
            after=_visit_state(visit),
            ip=meta.ip,
        )
        template = "visit_requested" if visit.status is VisitStatus.REQUESTED else "visit_booked"
        outbox.enqueue_for_visit(session, visit, template, now, facility.timezone)
        return visit


def _end_visit(
    session: Session,
    p: Principal,
    visit: Visit,
    status: VisitStatus,
    reason: str,
    now: datetime,
    meta: RequestMeta,
    *,
    note: str = "",
    notify: bool = True,
    action: str = "visit.cancelled",
    **extra: object,
) -> None:
    before = _visit_state(visit)
    visit.status = status
    visit.reason = reason
    visit.reason_note = note[:2000]
    visit.hold_expires_at = visit.hold_expires_at if status is VisitStatus.HELD else None
    if p.user_id is not None and status in (VisitStatus.REJECTED,):
        visit.decided_by_id = p.user_id
    session.flush()
    session.add(
        VisitEvent(
            visit_id=visit.id,
            at=now,
            kind=action,
            actor_kind=p.kind,
            actor_id=p.user_id,
            data={"reason": reason},
        )
    )
    audit.record(
        session,
        p,
        action,
        "visit",
        visit.id,
        at=now,
        facility_id=visit.facility_id,
        before=before,
        after=_visit_state(visit),
        ip=meta.ip,
    )
    if notify:
        facility = _facility(session, visit.facility_id)
        template = "visit_rejected" if status is VisitStatus.REJECTED else "visit_cancelled"
        outbox.enqueue_for_visit(
            session, visit, template, now, facility.timezone, reason=reason, note=note, **extra
        )


def cancel_visit(
    ctx: AppContext,
    p: Principal,
    visit_id: int,
    meta: RequestMeta,
    *,
    reason: str | None = None,
    note: str = "",
) -> Visit:
    """A visitor cancels their own visit before it starts; staff cancel any time, with a reason.
    The allowance comes back (a cancelled visit does not count)."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = access_visit_by_id(session, p, visit_id)
        _lock(session, Resident, [visit.resident_id])
        session.refresh(visit)
        by_staff = any(p.holds(r, facility_id=visit.facility_id) for r in BOOKING_STAFF_ROLES)
        if not by_staff and p.visitor_id is None:
            raise Forbidden()
        stored = rules_.check_cancellation(
            visit.status, visit.starts_at, now, by_staff=by_staff, reason=reason
        )
        _end_visit(
            session,
            p,
            visit,
            VisitStatus.CANCELLED,
            stored,
            now,
            meta,
            note=note,
            notify=visit.status is not VisitStatus.HELD,
        )
        return visit


def reschedule_visit(
    ctx: AppContext, p: Principal, visit_id: int, starts_at: datetime, meta: RequestMeta
) -> BookedVisit:
    """Move a visit to another time: the old one is cancelled and the new one booked in one transaction,
    with the same people, kind and mode; if the new time cannot be booked, nothing changes."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = access_visit_by_id(session, p, visit_id)
        _lock(session, Resident, [visit.resident_id])
        session.refresh(visit)
        by_staff = any(p.holds(r, facility_id=visit.facility_id) for r in BOOKING_STAFF_ROLES)
        rules_.check_cancellation(visit.status, visit.starts_at, now, by_staff=False, reason=None)
        if not by_staff and p.visitor_id is None:
            raise Forbidden()
        participants = (
            session.execute(
                sa.select(VisitParticipant)
                .where(VisitParticipant.visit_id == visit.id)
                .order_by(VisitParticipant.id)
            )
            .scalars()
            .all()
        )
        lead = next(x.visitor_id for x in participants if x.role is ParticipantRole.LEAD)
        if not by_staff and lead != p.visitor_id:
            raise Forbidden("visit.not_lead", N_("Only the person who booked the visit can move it."))
        _end_visit(session, p, visit, VisitStatus.CANCELLED, "rescheduled", now, meta, notify=False)
        request = BookingRequest(
            resident_id=visit.resident_id,
            starts_at=starts_at,
            kind=visit.kind,
            mode=visit.mode,
            link_center_id=visit.link_center_id,
            lead_visitor_id=lead,
            visitor_ids=tuple(
                x.visitor_id for x in participants if x.role is ParticipantRole.VISITOR and x.visitor_id
            ),
            dependent_ids=tuple(x.dependent_id for x in participants if x.dependent_id is not None),
            notes=visit.notes,
        )
        return _book_in(ctx, session, p, request, now, meta, replaces=visit.id)


def decide_request(
    ctx: AppContext,
    p: Principal,
    visit_id: int,
    meta: RequestMeta,
    *,
    approve: bool,
    reason: str | None = None,
    note: str = "",
) -> Visit:
    """A clerk approves a requested visit, or rejects it with a preset reason that the visitor is told."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = access_visit_by_id(session, p, visit_id)
        if not any(p.holds(r, facility_id=visit.facility_id) for r in DECIDING_ROLES):
            raise Forbidden()
        session.refresh(visit, with_for_update=True)
        if visit.status is not VisitStatus.REQUESTED:
            raise Conflict("visit.not_requested", N_("This visit is not waiting for a decision."))
        if approve:
            before = _visit_state(visit)
            visit.status = VisitStatus.APPROVED
            visit.decided_by_id = p.user_id
            session.flush()
            audit.record(
                session,
                p,
                "visit.approved",
                "visit",
                visit.id,
                at=now,
                facility_id=visit.facility_id,
                before=before,
                after=_visit_state(visit),
                ip=meta.ip,
            )
            outbox.enqueue_for_visit(
                session, visit, "visit_approved", now, _facility(session, visit.facility_id).timezone
            )
        else:
            rules_.check_rejection_reason(reason or "")
            assert reason is not None
            _end_visit(
                session, p, visit, VisitStatus.REJECTED, reason, now, meta, note=note, action="visit.rejected"
            )
        return visit


# --- blocked periods and lockdowns ----------------------------------------------------------------


@dataclass(frozen=True)
class BlockResult:
    block_id: int
    cancelled_visits: int
    notifications: int


def declare_block(
    ctx: AppContext,
    p: Principal,
    facility_id: int,
    starts_at: datetime,
    ends_at: datetime,
    meta: RequestMeta,
    *,
    kind: BlockKind = BlockKind.BLOCKED,
    reason: str,
    unit_id: int | None = None,
    station_id: int | None = None,
) -> BlockResult:
    """Stop visits for a facility, a unit or a station over a period. Every active visit in it is
    cancelled with the reason, its allowance returns, and visitors and the resident are told."""
    now = ctx.clock()
    if ends_at <= starts_at:
        raise InvalidInput("block.period", N_("The end must be after the start."), field="ends_at")
    if not reason.strip():
        raise InvalidInput("block.reason_required", N_("Please give a reason."), field="reason")
    with ctx.db.write() as session:
        access_staff_facility_by_id(session, p, facility_id, SCHEDULING_ROLES)
        if unit_id is not None:
            unit = session.get(HousingUnit, unit_id)
            if unit is None or unit.facility_id != facility_id:
                raise NotFound("unit.not_found", N_("No such housing unit."))
        if station_id is not None:
            station = session.get(Station, station_id)
            if station is None or station.facility_id != facility_id:
                raise NotFound("station.not_found", N_("No such station."))
        block = BlockedPeriod(
            kind=kind,
            facility_id=facility_id,
            unit_id=unit_id,
            station_id=station_id,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason.strip()[:2000],
            created_by_id=p.user_id,
        )
        session.add(block)
        session.flush()
        audit.record(
            session,
            p,
            f"block.{kind.value}",
            "blocked_period",
            block.id,
            at=now,
            facility_id=facility_id,
            after={
                "starts_at": starts_at,
                "ends_at": ends_at,
                "unit_id": unit_id,
                "station_id": station_id,
                "reason": block.reason,
            },
            ip=meta.ip,
        )
        query = sa.select(Visit).where(
            Visit.facility_id == facility_id,
            Visit.status.in_(ACTIVE),
            Visit.starts_at < ends_at,
            Visit.ends_at > starts_at,
        )
        if unit_id is not None:
            query = query.where(
                Visit.resident_id.in_(sa.select(Resident.id).where(Resident.unit_id == unit_id))
            )
        if station_id is not None:
            query = query.where(Visit.station_id == station_id)
        visits = session.execute(query.order_by(Visit.starts_at).with_for_update()).scalars().all()
        sent = 0
        code = "lockdown" if kind is BlockKind.LOCKDOWN else "blocked"
        for visit in visits:
            was_held = visit.status is VisitStatus.HELD
            _end_visit(
                session,
                p,
                visit,
                VisitStatus.CANCELLED,
                code,
                now,
                meta,
                note=block.reason,
                notify=not was_held,
            )
            if not was_held:
                sent += _count_recipients(session, visit.id)
        return BlockResult(block.id, len(visits), sent)


def _count_recipients(session: Session, visit_id: int) -> int:
    return 1 + int(
        session.execute(
            sa.select(sa.func.count()).where(
                VisitParticipant.visit_id == visit_id, VisitParticipant.visitor_id.is_not(None)
            )
        ).scalar_one()
    )


def delete_block(ctx: AppContext, p: Principal, block_id: int, meta: RequestMeta) -> None:
    """Lift a blocked period early (the visits it cancelled stay cancelled)."""
    now = ctx.clock()
    with ctx.db.write() as session:
        block = session.get(BlockedPeriod, block_id)
        if block is None:
            raise NotFound("block.not_found", N_("No such blocked period."))
        access_staff_facility_by_id(session, p, block.facility_id, SCHEDULING_ROLES)
        audit.record(
            session,
            p,
            "block.lifted",
            "blocked_period",
            block.id,
            at=now,
            facility_id=block.facility_id,
            before={"starts_at": block.starts_at, "ends_at": block.ends_at, "reason": block.reason},
            ip=meta.ip,
        )
        session.delete(block)


def list_blocks(
    ctx: AppContext, p: Principal, facility_id: int, *, since: datetime | None = None
) -> Sequence[BlockedPeriod]:
    """Blocked periods of a facility that end after `since` (default: now)."""
    with ctx.db.read() as session:
        access_staff_facility_by_id(session, p, facility_id)
        return (
            session.execute(
                sa.select(BlockedPeriod)
                .where(
                    BlockedPeriod.facility_id == facility_id, BlockedPeriod.ends_at > (since or ctx.clock())
                )
                .order_by(BlockedPeriod.starts_at)
            )
            .scalars()
            .all()
        )


# --- the sweep: holds that ran out, requests nobody decided ----------------------------------------


def _expire_holds(
    session: Session,
    now: datetime,
    *,
    resident_id: int | None = None,
    during: tuple[datetime, datetime] | None = None,
) -> int:
    query = sa.update(Visit).where(Visit.status == VisitStatus.HELD, Visit.hold_expires_at <= now)
    if resident_id is not None:
        query = query.where(Visit.resident_id == resident_id)
    if during is not None:
        query = query.where(Visit.starts_at < during[1], Visit.ends_at > during[0])
    result = session.execute(
        query.values(
            status=VisitStatus.CANCELLED, reason="hold_expired", hold_expires_at=None
        ).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class SweepResult:
    holds_expired: int
    requests_rejected: int


def sweep(ctx: AppContext, meta: RequestMeta | None = None) -> SweepResult:
    """Cancel holds that ran out; reject requests still undecided at the minimum notice, telling everyone."""
    meta = meta or RequestMeta(ip="local")
    now = ctx.clock()
    with ctx.db.write() as session:
        expired = _expire_holds(session, now)
        overdue: list[Visit] = []
        requested = session.execute(
            sa.select(Visit, Facility)
            .join(Facility, Facility.id == Visit.facility_id)
            .where(Visit.status == VisitStatus.REQUESTED, Visit.starts_at <= now + timedelta(days=2))
            .with_for_update(of=Visit)
        ).all()
        for visit, facility in requested:
            if now >= rules_.review_deadline(rules_of(facility), visit.kind, visit.starts_at):
                overdue.append(visit)
        for visit in overdue:
            _end_visit(
                session,
                SYSTEM,
                visit,
                VisitStatus.REJECTED,
                rules_.AUTO_REJECT_REASON,
                now,
                meta,
                action="visit.rejected",
            )
        return SweepResult(expired, len(overdue))


# --- transfers and releases -----------------------------------------------------------------------


def change_resident_status(
    ctx: AppContext,
    p: Principal,
    resident_id: int,
    status: ResidentStatus,
    meta: RequestMeta,
    *,
    to_facility_id: int | None = None,
    to_unit_id: int | None = None,
) -> int:
    """Transfer or release a resident: their future visits are cancelled with the reason (a transfer
    to another facility on OpenVisit offers re-booking there). Returns how many visits were cancelled."""
    now = ctx.clock()
    with ctx.db.write() as session:
        resident = access_resident_by_id(session, p, resident_id)
        require_role(p, Role.FACILITY_ADMIN)
        if not p.holds(Role.FACILITY_ADMIN, facility_id=resident.facility_id):
            raise Forbidden()
        return apply_resident_status(
            session, p, resident, status, now, meta, to_facility_id=to_facility_id, to_unit_id=to_unit_id
        )


def apply_resident_status(
    session: Session,
    p: Principal,
    resident: Resident,
    status: ResidentStatus,
    now: datetime,
    meta: RequestMeta,
    *,
    to_facility_id: int | None = None,
    to_unit_id: int | None = None,
) -> int:
    """The effects of a transfer or release inside the caller's transaction (the import uses it too)."""
    _lock(session, Resident, [resident.id])
    before = {
        "status": resident.status.value,
        "facility_id": resident.facility_id,
        "unit_id": resident.unit_id,
    }
    old_facility = resident.facility_id
    if status is ResidentStatus.TRANSFERRED and to_facility_id is not None:
        # A move to another facility on OpenVisit: the resident stays active there, in the new unit.
        target = session.get(Facility, to_facility_id)
        if target is None:
            raise NotFound("facility.not_found", N_("No such facility."))
        if to_unit_id is not None:
            unit = session.get(HousingUnit, to_unit_id)
            if unit is None or unit.facility_id != to_facility_id:
                raise NotFound("unit.not_found", N_("No such housing unit."))
        resident.facility_id = to_facility_id
        resident.unit_id = to_unit_id
        resident.status = ResidentStatus.ACTIVE
    else:
        resident.status = status
    visits = (
        session.execute(
            sa.select(Visit)
            .where(Visit.resident_id == resident.id, Visit.status.in_(ACTIVE), Visit.starts_at > now)
            .order_by(Visit.starts_at)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    reason = "resident_transferred" if status is ResidentStatus.TRANSFERRED else "resident_released"
    for visit in visits:
        _end_visit(
            session,
            p,
            visit,
            VisitStatus.CANCELLED,
            reason,
            now,
            meta,
            notify=visit.status is not VisitStatus.HELD,
            rebook_facility_id=to_facility_id if status is ResidentStatus.TRANSFERRED else None,
        )
    session.flush()
    audit.record(
        session,
        p,
        f"resident.{status.value}",
        "resident",
        resident.id,
        at=now,
        facility_id=old_facility,
        before=before,
        after={
            "status": resident.status.value,
            "facility_id": resident.facility_id,
            "unit_id": resident.unit_id,
            "cancelled_visits": len(visits),
        },
        ip=meta.ip,
    )
    return len(visits)


# --- session templates ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateInput:
    """A session template as a scheduler enters it (times are facility-local)."""

    group_id: int
    weekday: int
    start_time: time
    end_time: time
    slot_minutes: int = 30
    buffer_minutes: int = 5
    valid_from: date | None = None
    valid_to: date | None = None
    every_n_weeks: int = 1
    allow_social: bool = True
    allow_legal: bool = True
    allow_home: bool = True
    allow_link_center: bool = True
    bookable_by: BookableBy = BookableBy.PUBLIC
    unit_ids: tuple[int, ...] = ()


def check_template(t: TemplateInput) -> None:
    """The shape of a template, with a clear message for each mistake."""
    if not 0 <= t.weekday <= 6:
        raise InvalidInput("template.weekday", N_("Please choose a day of the week."), field="weekday")
    if t.end_time <= t.start_time:
        raise InvalidInput("template.hours", N_("The end must be after the start."), field="end_time")
    if not 15 <= t.slot_minutes <= 60:
        raise InvalidInput(
            "template.slot_length", N_("Visits last from 15 to 60 minutes."), field="slot_minutes"
        )
    if not 0 <= t.buffer_minutes <= 60:
        raise InvalidInput(
            "template.buffer", N_("The changeover is from 0 to 60 minutes."), field="buffer_minutes"
        )
    if not 1 <= t.every_n_weeks <= 8:
        raise InvalidInput("template.every_n_weeks", N_("Repeat every 1 to 8 weeks."), field="every_n_weeks")
    if t.valid_from and t.valid_to and t.valid_to < t.valid_from:
        raise InvalidInput(
            "template.validity", N_("The last day must not be before the first."), field="valid_to"
        )
    if not (t.allow_social or t.allow_legal):
        raise InvalidInput(
            "template.kinds", N_("Allow social visits, legal visits or both."), field="allow_social"
        )
    if not (t.allow_home or t.allow_link_center):
        raise InvalidInput(
            "template.modes", N_("Allow visits from home, from link centers or both."), field="allow_home"
        )
    start = datetime.combine(date(2000, 1, 3), t.start_time)
    if start + timedelta(minutes=t.slot_minutes) > datetime.combine(date(2000, 1, 3), t.end_time):
        raise InvalidInput(
            "template.too_short", N_("The session is shorter than one visit."), field="end_time"
        )


def _template_fields(session: Session, facility_id: int, t: TemplateInput, today: date) -> dict[str, object]:
    check_template(t)
    group = session.get(StationGroup, t.group_id)
    if group is None or group.facility_id != facility_id:
        raise NotFound("station_group.not_found", N_("No such group of stations."))
    units = (
        session.execute(
            sa.select(HousingUnit).where(
                HousingUnit.id.in_(t.unit_ids), HousingUnit.facility_id == facility_id
            )
        )
        .scalars()
        .all()
        if t.unit_ids
        else []
    )
    if len(units) != len(set(t.unit_ids)):
        raise NotFound("unit.not_found", N_("No such housing unit."))
    return {
        "group_id": t.group_id,
        "weekday": t.weekday,
        "start_time": t.start_time,
        "end_time": t.end_time,
        "slot_minutes": t.slot_minutes,
        "buffer_minutes": t.buffer_minutes,
        "valid_from": t.valid_from or today,
        "valid_to": t.valid_to,
        "every_n_weeks": t.every_n_weeks,
        "allow_social": t.allow_social,
        "allow_legal": t.allow_legal,
        "allow_home": t.allow_home,
        "allow_link_center": t.allow_link_center,
        "bookable_by": t.bookable_by,
        "units": list(units),
    }


def _template_state(t: SessionTemplate) -> dict[str, object]:
    return {
        "group_id": t.group_id,
        "weekday": t.weekday,
        "start_time": t.start_time.isoformat(),
        "end_time": t.end_time.isoformat(),
        "slot_minutes": t.slot_minutes,
        "buffer_minutes": t.buffer_minutes,
        "valid_from": t.valid_from.isoformat(),
        "valid_to": t.valid_to.isoformat() if t.valid_to else None,
        "every_n_weeks": t.every_n_weeks,
        "bookable_by": t.bookable_by.value,
    }


def save_template(
    ctx: AppContext,
    p: Principal,
    facility_id: int,
    t: TemplateInput,
    meta: RequestMeta,
    *,
    template_id: int | None = None,
) -> SessionTemplate:
    """Create or change a session template. Booked visits keep their times: a template change only
    shapes the times offered from now on."""
    now = ctx.clock()
    with ctx.db.write() as session:
        facility = access_staff_facility_by_id(session, p, facility_id, SCHEDULING_ROLES)
        fields = _template_fields(session, facility.id, t, rules_of(facility).local_date(now))
        before = None
        if template_id is None:
            row = SessionTemplate(facility_id=facility.id, **fields)
            session.add(row)
        else:
            found = session.execute(
                sa.select(SessionTemplate)
                .options(selectinload(SessionTemplate.units))
                .where(SessionTemplate.id == template_id, SessionTemplate.facility_id == facility.id)
                .with_for_update()
            ).scalar_one_or_none()
            if found is None:
                raise NotFound("template.not_found", N_("No such session template."))
            row = found
            before = _template_state(row)
            for key, value in fields.items():
                setattr(row, key, value)
        session.flush()
        audit.record(
            session,
            p,
            "template.saved",
            "session_template",
            row.id,
            at=now,
            facility_id=facility.id,
            before=before,
            after=_template_state(row),
            ip=meta.ip,
        )
        return row


def delete_template(ctx: AppContext, p: Principal, template_id: int, meta: RequestMeta) -> None:
    """Remove a session template; visits already booked from it stay booked."""
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.get(SessionTemplate, template_id)
        if row is None:
            raise NotFound("template.not_found", N_("No such session template."))
        access_staff_facility_by_id(session, p, row.facility_id, SCHEDULING_ROLES)
        audit.record(
            session,
            p,
            "template.deleted",
            "session_template",
            row.id,
            at=now,
            facility_id=row.facility_id,
            before=_template_state(row),
            ip=meta.ip,
        )
        session.delete(row)


def list_templates(
    ctx: AppContext, p: Principal, facility_id: int
) -> list[tuple[SessionTemplate, list[int]]]:
    """A facility's templates with the units allowed on each."""
    with ctx.db.read() as session:
        access_staff_facility_by_id(session, p, facility_id)
        units = {t.id: sorted(t.unit_ids) for t in _templates(session, facility_id)}
        rows = (
            session.execute(
                sa.select(SessionTemplate)
                .where(SessionTemplate.facility_id == facility_id)
                .order_by(SessionTemplate.group_id, SessionTemplate.weekday, SessionTemplate.start_time)
            )
            .scalars()
            .all()
        )
        return [(r, units.get(r.id, [])) for r in rows]


# --- staff views ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    visit: Visit
    resident_name: str
    resident_number: str
    lead_name: str
    party_size: int
    review_notes: tuple[str, ...] = ()
    """Why a requested visit waits for a clerk: the resident's active alerts."""


@dataclass(frozen=True)
class CalendarDay:
    facility: Facility
    day: date
    stations: list[Station]
    entries: dict[int, list[CalendarEntry]]
    blocks: list[BlockedPeriod]


def _entries(session: Session, visits: Sequence[Visit]) -> list[CalendarEntry]:
    if not visits:
        return []
    ids = [v.id for v in visits]
    residents = {
        r.id: r
        for r in session.execute(
            sa.select(Resident).where(Resident.id.in_({v.resident_id for v in visits}))
        ).scalars()
    }
    leads: dict[int, str] = {}
    sizes: dict[int, int] = defaultdict(int)
    for visit_id, role, last, first in session.execute(
        sa.select(VisitParticipant.visit_id, VisitParticipant.role, Visitor.last_name, Visitor.first_name)
        .outerjoin(Visitor, Visitor.id == VisitParticipant.visitor_id)
        .where(VisitParticipant.visit_id.in_(ids))
    ):
        sizes[visit_id] += 1
        if role is ParticipantRole.LEAD:
            leads[visit_id] = f"{last} {first}"
    out = []
    for v in visits:
        r = residents[v.resident_id]
        out.append(
            CalendarEntry(
                v,
                f"{r.last_name} {r.first_name} {r.middle_name}".strip(),
                r.number,
                leads.get(v.id, ""),
                sizes[v.id],
            )
        )
    return out


def calendar_day(ctx: AppContext, p: Principal, facility_id: int, day: date) -> CalendarDay:
    """One facility-local day: every station and the visits booked on it, and the blocks that day."""
    with ctx.db.read() as session:
        facility = access_staff_facility_by_id(session, p, facility_id)
        zone = rules_of(facility).zone
        start = datetime.combine(day, time(0), tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        stations = (
            session.execute(
                sa.select(Station).where(Station.facility_id == facility.id).order_by(Station.code)
            )
            .scalars()
            .all()
        )
        visits = (
            session.execute(
                sa.select(Visit)
                .where(
                    Visit.facility_id == facility.id,
                    Visit.starts_at < end,
                    Visit.ends_at > start,
                    Visit.status.not_in((VisitStatus.HELD,)),
                )
                .order_by(Visit.starts_at)
            )
            .scalars()
            .all()
        )
        entries: dict[int, list[CalendarEntry]] = defaultdict(list)
        for entry in _entries(session, visits):
            entries[entry.visit.station_id].append(entry)
        blocks = (
            session.execute(
                sa.select(BlockedPeriod).where(
                    BlockedPeriod.facility_id == facility.id,
                    BlockedPeriod.starts_at < end,
                    BlockedPeriod.ends_at > start,
                )
            )
            .scalars()
            .all()
        )
        return CalendarDay(facility, day, list(stations), dict(entries), list(blocks))


def pending_requests(ctx: AppContext, p: Principal, facility_id: int) -> list[CalendarEntry]:
    """Requested visits waiting for a clerk, soonest first."""
    with ctx.db.read() as session:
        access_staff_facility_by_id(session, p, facility_id, DECIDING_ROLES)
        visits = (
            session.execute(
                sa.select(Visit)
                .where(Visit.facility_id == facility_id, Visit.status == VisitStatus.REQUESTED)
                .order_by(Visit.starts_at)
            )
            .scalars()
            .all()
        )
        notes: dict[int, list[str]] = defaultdict(list)
        for resident_id, note in session.execute(
            sa.select(ResidentAlert.resident_id, ResidentAlert.note).where(
                ResidentAlert.resident_id.in_({v.resident_id for v in visits}), ResidentAlert.active.is_(True)
            )
        ):
            notes[resident_id].append(note)
        return [
            dataclasses.replace(e, review_notes=tuple(notes.get(e.visit.resident_id, ())))
            for e in _entries(session, visits)
        ]


def my_visits(
    ctx: AppContext, p: Principal, *, upcoming: bool | None = None, limit: int = 100
) -> list[BookedVisitView]:
    """A visitor's visits (as lead or companion) with the resident's name and the facility's zone."""
    now = ctx.clock()
    if p.visitor_id is None:
        return []
    with ctx.db.read() as session:
        query = (
            sa.select(Visit, Resident, Facility, VisitParticipant.role)
            .join(VisitParticipant, VisitParticipant.visit_id == Visit.id)
            .join(Resident, Resident.id == Visit.resident_id)
            .join(Facility, Facility.id == Visit.facility_id)
            .where(VisitParticipant.visitor_id == p.visitor_id, Visit.status != VisitStatus.HELD)
        )
        if upcoming is True:
            query = query.where(Visit.ends_at > now).order_by(Visit.starts_at)
        elif upcoming is False:
            query = query.where(Visit.ends_at <= now).order_by(Visit.starts_at.desc())
        else:
            query = query.order_by(Visit.starts_at.desc())
        rows = session.execute(query.limit(limit)).all()
        return [
            BookedVisitView(
                v,
                f"{r.last_name} {r.first_name} {r.middle_name}".strip(),
                r.id,
                f.name,
                f.timezone,
                is_lead=role is ParticipantRole.LEAD,
            )
            for v, r, f, role in rows
        ]


@dataclass(frozen=True)
class BookedVisitView:
    visit: Visit
    resident_name: str
    resident_id: int
    facility_name: str
    facility_timezone: str
    is_lead: bool = False
    """Whether the viewer booked it (only the lead may move it)."""


def cancel_future_visits(
    session: Session,
    p: Principal,
    where: sa.ColumnElement[bool],
    reason: str,
    now: datetime,
    meta: RequestMeta,
    *,
    note: str = "",
) -> int:
    """Cancel, inside the caller's transaction, every active visit yet to start that matches `where`
    (e.g. a suspended link's), telling everyone why. Returns how many."""
    visits = (
        session.execute(
            sa.select(Visit)
            .where(where, Visit.status.in_(ACTIVE), Visit.starts_at > now)
            .order_by(Visit.starts_at)
            .with_for_update()
        )
        .scalars()
        .all()
    )
    for visit in visits:
        _end_visit(
            session,
            p,
            visit,
            VisitStatus.CANCELLED,
            reason,
            now,
            meta,
            note=note,
            notify=visit.status is not VisitStatus.HELD,
        )
    return len(visits)


def cancel_visits_left_behind(
    session: Session, p: Principal, resident: Resident, now: datetime, meta: RequestMeta
) -> int:
    """After a resident moves to another unit, their future visits booked on a kiosk of the old unit
    are cancelled (taking them there would mean an escort); visits in visiting rooms stay."""
    old_kiosks = sa.select(Station.id).where(
        Station.kind == StationKind.UNIT_KIOSK,
        Station.facility_id == resident.facility_id,
        sa.or_(Station.unit_id != resident.unit_id, sa.literal(resident.unit_id is None)),
    )
    return cancel_future_visits(
        session,
        p,
        sa.and_(Visit.resident_id == resident.id, Visit.station_id.in_(old_kiosks)),
        "resident_moved",
        now,
        meta,
    )
