"""Booking through the service layer on both databases: every rule, every refusal with its own code,
and nothing written when a booking is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from openvisit.db.models import (
    Appointment,
    AuditEntry,
    Connection,
    KeepApart,
    Notification,
    Resident,
    ResidentAlert,
    Restriction,
    Station,
    Visit,
    VisitParticipant,
)
from openvisit.domain.enums import (
    AppointmentKind,
    BlockKind,
    ConnectionKind,
    ConnectionStatus,
    NotificationChannel,
    ResidentStatus,
    RestrictionKind,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.services import scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    connect,
    make_dependent,
    make_facility,
    make_link_center,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    principal_of,
)

META = RequestMeta(ip="203.0.113.5")


@dataclass
class World:
    place: Place
    resident_id: int
    visitor: Principal
    visitor_id: int
    station_ids: list[int]


@pytest.fixture
def world(ctx: AppContext) -> World:
    place = make_facility(ctx)
    _, stations = make_schedule(ctx, place, extra_kiosks=1)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return World(place, resident_id, principal_of(ctx, email), visitor_id, stations)


def _staff(ctx: AppContext, place: Place, role: Role = Role.SCHEDULER) -> Principal:
    email, _ = make_staff(ctx, role, facility_id=place.facility_id)
    return principal_of(ctx, email)


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    """A Krasnoyarsk wall time (UTC+7, no DST) as UTC."""
    return datetime.combine(day, time(hh, mm), tzinfo=UTC) - timedelta(hours=7)


WED = date(2026, 3, 4)
THU = date(2026, 3, 5)


def _counts(ctx: AppContext) -> tuple[int, int, int, int]:
    with ctx.db.read() as s:
        return tuple(  # type: ignore[return-value]
            int(s.execute(sa.select(sa.func.count()).select_from(m)).scalar_one())
            for m in (Visit, VisitParticipant, AuditEntry, Notification)
        )


def _book(
    ctx: AppContext, p: Principal, resident_id: int, starts_at: datetime, **kw: Any
) -> scheduling.BookedVisit:
    return scheduling.book_visit(
        ctx, p, BookingRequest(resident_id=resident_id, starts_at=starts_at, **kw), META
    )


def _refused(
    ctx: AppContext, error: type[DomainError], code: str, call: object, *args: object, **kw: object
) -> None:
    before = _counts(ctx)
    with pytest.raises(error) as caught:
        call(*args, **kw)  # type: ignore[operator]
    assert caught.value.code == code
    assert _counts(ctx) == before, "a refused booking must write nothing"


# --- availability -------------------------------------------------------------------------------


def test_availability_offers_template_times_inside_the_public_window(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    result = scheduling.availability(ctx, world.visitor, world.resident_id)
    assert result.facility_timezone == "Asia/Krasnoyarsk"
    assert result.times, "the template runs every day"
    first, last = result.times[0], result.times[-1]
    assert first.starts_at >= clock() + timedelta(hours=24)
    assert last.local_date <= date(2026, 3, 2) + timedelta(days=14)
    local = [t.starts_at.astimezone(result_zone()).time() for t in result.times]
    assert min(local) >= time(9, 0)
    assert max(local) <= time(16, 30)
    # Slots every 35 minutes of wall time (30 + 5 changeover).
    assert {t.minute for t in local} <= {0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55}
    assert len({t.starts_at for t in result.times}) == len(result.times)


def result_zone() -> ZoneInfo:
    return ZoneInfo("Asia/Krasnoyarsk")


def test_staff_see_a_longer_window_and_shorter_notice(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    staff = _staff(ctx, world.place)
    public = scheduling.availability(ctx, world.visitor, world.resident_id)
    mine = scheduling.availability(ctx, staff, world.resident_id)
    assert mine.times[0].starts_at < public.times[0].starts_at
    assert mine.times[0].starts_at >= clock() + timedelta(hours=1)
    assert mine.times[-1].local_date > public.times[-1].local_date
    assert mine.times[-1].local_date <= date(2026, 3, 2) + timedelta(days=28)


def test_booked_time_disappears_for_the_resident(ctx: AppContext, world: World) -> None:
    before = scheduling.availability(ctx, world.visitor, world.resident_id)
    chosen = before.times[3]
    _book(ctx, world.visitor, world.resident_id, chosen.starts_at)
    after = scheduling.availability(ctx, world.visitor, world.resident_id)
    assert chosen.starts_at not in {t.starts_at for t in after.times}
    assert len(after.times) == len(before.times) - 1


# --- booking and its refusals -------------------------------------------------------------------


def test_booking_is_approved_assigned_audited_and_announced(ctx: AppContext, world: World) -> None:
    booked = _book(ctx, world.visitor, world.resident_id, _at(WED, 9))
    visit = booked.visit
    assert visit.status is VisitStatus.APPROVED
    assert visit.station_id in world.station_ids
    assert booked.station_code
    with ctx.db.read() as s:
        actions = (
            s.execute(sa.select(AuditEntry.action).where(AuditEntry.object_id == str(visit.id)))
            .scalars()
            .all()
        )
        notes = s.execute(sa.select(Notification).where(Notification.visit_id == visit.id)).scalars().all()
    assert actions == ["visit.booked"]
    assert {(n.channel, n.template) for n in notes} == {
        (NotificationChannel.EMAIL, "visit_booked"),
        (NotificationChannel.STATION, "visit_booked"),
    }


@pytest.mark.parametrize(
    ("when", "error", "code"),
    [
        (_at(WED, 9, 10), InvalidInput, "visit.outside_template"),
        (_at(WED, 20), InvalidInput, "visit.outside_template"),
        (datetime(2026, 3, 1, 3, 0, tzinfo=UTC), InvalidInput, "visit.in_past"),
        (_at(date(2026, 3, 2), 16, 30) + timedelta(hours=0), InvalidInput, "visit.too_soon"),
        (_at(date(2026, 3, 20), 9), InvalidInput, "visit.too_far"),
    ],
)
def test_times_that_cannot_be_booked(
    ctx: AppContext, world: World, when: datetime, error: type[DomainError], code: str
) -> None:
    _refused(ctx, error, code, _book, ctx, world.visitor, world.resident_id, when)


def test_nonexistent_local_time_is_its_own_error(ctx: AppContext) -> None:
    place = make_facility(ctx, tz="Europe/Berlin")
    make_schedule(ctx, place, start=time(1, 0), end=time(4, 0), slot_minutes=30, buffer_minutes=0)
    resident_id, _ = make_resident(ctx, place)
    staff = _staff(ctx, place)
    from zoneinfo import ZoneInfo

    from openvisit.domain.scheduling import check_local_time_exists

    # 29 March 2026: clocks in Berlin jump from 02:00 to 03:00.
    with pytest.raises(InvalidInput) as caught:
        check_local_time_exists(date(2026, 3, 29), time(2, 30), ZoneInfo("Europe/Berlin"))
    assert caught.value.code == "visit.nonexistent_local_time"
    offered = scheduling.availability(ctx, staff, resident_id, first_day=date(2026, 3, 29), days=1)
    local = [t.starts_at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for t in offered.times]
    assert local == ["01:00", "01:30", "03:00", "03:30"]


def test_unknown_resident_and_unapproved_visitor(ctx: AppContext, world: World) -> None:
    _refused(ctx, NotFound, "resident.not_found", _book, ctx, world.visitor, 999_999, _at(WED, 9))
    other, _ = make_resident(ctx, world.place)
    _refused(ctx, NotFound, "resident.not_found", _book, ctx, world.visitor, other, _at(WED, 9))
    connect(ctx, other, world.visitor_id, ConnectionStatus.REQUESTED)
    _refused(ctx, Forbidden, "visit.visitor_not_approved", _book, ctx, world.visitor, other, _at(WED, 9))


def test_party_rules(ctx: AppContext, world: World) -> None:
    staff = _staff(ctx, world.place)
    extra = []
    for _ in range(3):
        _, vid = make_visitor(ctx)
        connect(ctx, world.resident_id, vid, ConnectionStatus.APPROVED)
        extra.append(vid)
    _refused(
        ctx,
        InvalidInput,
        "visit.too_many_visitors",
        _book,
        ctx,
        staff,
        world.resident_id,
        _at(WED, 9),
        lead_visitor_id=world.visitor_id,
        visitor_ids=tuple(extra),
    )
    minor_email, minor_id = make_visitor(ctx, born=date(2012, 1, 1))
    connect(ctx, world.resident_id, minor_id, ConnectionStatus.APPROVED)
    _refused(
        ctx,
        InvalidInput,
        "visit.minor_alone",
        _book,
        ctx,
        principal_of(ctx, minor_email),
        world.resident_id,
        _at(WED, 9),
    )
    pending_child = make_dependent(ctx, world.visitor_id, world.resident_id, approved=False)
    _refused(
        ctx,
        Forbidden,
        "visit.visitor_not_approved",
        _book,
        ctx,
        world.visitor,
        world.resident_id,
        _at(WED, 9),
        dependent_ids=(pending_child,),
    )
    child = make_dependent(ctx, world.visitor_id, world.resident_id)
    booked = _book(ctx, world.visitor, world.resident_id, _at(WED, 9), dependent_ids=(child,))
    with ctx.db.read() as s:
        roles = (
            s.execute(sa.select(VisitParticipant.role).where(VisitParticipant.visit_id == booked.visit.id))
            .scalars()
            .all()
        )
    assert sorted(r.value for r in roles) == ["dependent", "lead"]


def test_someone_elses_child_cannot_be_brought(ctx: AppContext, world: World) -> None:
    _, other_visitor = make_visitor(ctx)
    connect(ctx, world.resident_id, other_visitor, ConnectionStatus.APPROVED)
    their_child = make_dependent(ctx, other_visitor, world.resident_id)
    _refused(
        ctx,
        NotFound,
        "dependent.not_found",
        _book,
        ctx,
        world.visitor,
        world.resident_id,
        _at(WED, 9),
        dependent_ids=(their_child,),
    )


def test_allowance_is_four_a_week_and_comes_back_on_cancel(ctx: AppContext, world: World) -> None:
    times = [_at(WED, 9), _at(WED, 9, 35), _at(WED, 10, 10), _at(THU, 9)]
    visits = [_book(ctx, world.visitor, world.resident_id, t).visit for t in times]
    _refused(
        ctx, Conflict, "visit.allowance_used", _book, ctx, world.visitor, world.resident_id, _at(THU, 10, 10)
    )
    offered = scheduling.availability(ctx, world.visitor, world.resident_id)
    assert all(t.local_date >= date(2026, 3, 9) for t in offered.times), "the rest of that week is full"
    assert date(2026, 3, 6) in offered.allowance_full_days
    scheduling.cancel_visit(ctx, world.visitor, visits[0].id, META)
    _book(ctx, world.visitor, world.resident_id, _at(THU, 10, 10))
    # Next week has its own allowance.
    _book(ctx, world.visitor, world.resident_id, _at(date(2026, 3, 10), 9))


def test_legal_visits_do_not_use_allowance_and_need_an_attorney(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    email, attorney_id = make_visitor(ctx)
    attorney = principal_of(ctx, email)
    with ctx.db.write() as s:
        s.add(
            Connection(
                resident_id=world.resident_id,
                visitor_id=attorney_id,
                relationship="attorney",
                kind=ConnectionKind.LEGAL,
                status=ConnectionStatus.APPROVED,
            )
        )
    _refused(
        ctx,
        Forbidden,
        "visit.legal_requires_attorney",
        _book,
        ctx,
        world.visitor,
        world.resident_id,
        _at(WED, 9),
        kind=VisitKind.LEGAL,
    )
    for t in (_at(WED, 9), _at(WED, 9, 35), _at(WED, 10, 10), _at(WED, 10, 45)):
        _book(ctx, world.visitor if t != _at(WED, 10, 45) else attorney, world.resident_id, t)
    legal = _book(ctx, attorney, world.resident_id, _at(WED, 11, 20), kind=VisitKind.LEGAL)
    assert legal.visit.kind is VisitKind.LEGAL
    # Legal visits may be booked at two hours' notice; social ones need a day.
    clock.now = _at(date(2026, 3, 2), 7)
    soon = _at(date(2026, 3, 2), 9, 35)
    _refused(ctx, InvalidInput, "visit.too_soon", _book, ctx, world.visitor, world.resident_id, soon)
    _book(ctx, attorney, world.resident_id, soon, kind=VisitKind.LEGAL)


def test_conflicts_each_have_their_code(ctx: AppContext, world: World) -> None:
    booked = _book(ctx, world.visitor, world.resident_id, _at(WED, 9))
    staff = _staff(ctx, world.place)
    # The resident is busy.
    _, second = make_visitor(ctx)
    connect(ctx, world.resident_id, second, ConnectionStatus.APPROVED)
    _refused(
        ctx,
        Conflict,
        "visit.resident_busy",
        _book,
        ctx,
        staff,
        world.resident_id,
        _at(WED, 9),
        lead_visitor_id=second,
    )
    # The visitor is busy (with another resident they also visit).
    other_resident, _ = make_resident(ctx, world.place)
    connect(ctx, other_resident, world.visitor_id, ConnectionStatus.APPROVED)
    _refused(ctx, Conflict, "visit.visitor_busy", _book, ctx, world.visitor, other_resident, _at(WED, 9))
    # Both kiosks taken: a third resident finds the slot taken.
    _, third_visitor = make_visitor(ctx)
    connect(ctx, other_resident, third_visitor, ConnectionStatus.APPROVED)
    _book(ctx, staff, other_resident, _at(WED, 9), lead_visitor_id=third_visitor)
    last_resident, _ = make_resident(ctx, world.place)
    _, fourth = make_visitor(ctx)
    connect(ctx, last_resident, fourth, ConnectionStatus.APPROVED)
    _refused(
        ctx,
        Conflict,
        "visit.slot_taken",
        _book,
        ctx,
        staff,
        last_resident,
        _at(WED, 9),
        lead_visitor_id=fourth,
    )
    # An appointment outranks visits.
    with ctx.db.write() as s:
        s.add(
            Appointment(
                resident_id=world.resident_id,
                kind=AppointmentKind.COURT,
                starts_at=_at(THU, 8),
                ends_at=_at(THU, 12),
            )
        )
    _refused(
        ctx,
        Conflict,
        "visit.resident_has_appointment",
        _book,
        ctx,
        world.visitor,
        world.resident_id,
        _at(THU, 9),
    )
    assert booked.visit.status is VisitStatus.APPROVED


def test_keep_apart_residents_never_share_a_visiting_room(ctx: AppContext) -> None:
    place = make_facility(ctx)
    group, _ = make_schedule(ctx, place)
    with ctx.db.write() as s:
        kiosk = s.get(Station, place.station_id)
        assert kiosk is not None
        kiosk.kind, kiosk.unit_id, kiosk.room = StationKind.VISITING_ROOM, None, "Room A"
        s.add(
            Station(
                code=f"{kiosk.code}-B",
                name="Room A, second",
                kind=StationKind.VISITING_ROOM,
                facility_id=place.facility_id,
                group_id=group,
                room="Room A",
            )
        )
    a, _ = make_resident(ctx, place)
    b, _ = make_resident(ctx, place)
    c, _ = make_resident(ctx, place)
    with ctx.db.write() as s:
        s.add(KeepApart(resident_a_id=min(a, b), resident_b_id=max(a, b), reason="conflict"))
    staff = _staff(ctx, place)
    leads = []
    for r in (a, b, c):
        _, v = make_visitor(ctx)
        connect(ctx, r, v, ConnectionStatus.APPROVED)
        leads.append(v)
    _book(ctx, staff, a, _at(WED, 9), lead_visitor_id=leads[0])
    _refused(ctx, Conflict, "visit.slot_taken", _book, ctx, staff, b, _at(WED, 9), lead_visitor_id=leads[1])
    _book(ctx, staff, c, _at(WED, 9), lead_visitor_id=leads[2])  # no keep-apart order: the second station


def test_restricted_visitors_are_refused(ctx: AppContext, world: World, clock: FrozenClock) -> None:
    with ctx.db.write() as s:
        s.add(
            Restriction(
                kind=RestrictionKind.SUSPENSION,
                visitor_id=world.visitor_id,
                starts_at=clock(),
                ends_at=clock() + timedelta(days=7),
                reason="recording device",
            )
        )
    _refused(
        ctx, Forbidden, "visit.visitor_restricted", _book, ctx, world.visitor, world.resident_id, _at(WED, 9)
    )
    _book(ctx, world.visitor, world.resident_id, _at(date(2026, 3, 10), 9))  # after the suspension ends


def test_link_center_visits_take_a_booth_too(ctx: AppContext, world: World) -> None:
    center = make_link_center(ctx)
    with ctx.db.write() as s:
        s.add(Station(code=f"B{center}", name="Booth", kind=StationKind.LINK_BOOTH, link_center_id=center))
    booked = _book(
        ctx, world.visitor, world.resident_id, _at(WED, 9), mode=VisitMode.LINK_CENTER, link_center_id=center
    )
    assert booked.booth_code == f"B{center}"
    assert booked.visit.booth_station_id is not None
    other, _ = make_resident(ctx, world.place)
    _, v = make_visitor(ctx)
    connect(ctx, other, v, ConnectionStatus.APPROVED)
    _refused(
        ctx,
        Conflict,
        "visit.no_booth",
        _book,
        ctx,
        _staff(ctx, world.place),
        other,
        _at(WED, 9),
        lead_visitor_id=v,
        mode=VisitMode.LINK_CENTER,
        link_center_id=center,
    )
    _refused(
        ctx,
        InvalidInput,
        "visit.link_center_required",
        _book,
        ctx,
        world.visitor,
        world.resident_id,
        _at(THU, 9),
        mode=VisitMode.LINK_CENTER,
    )


# --- holds, approval, cancellation, rescheduling ---------------------------------------------------


def test_a_hold_keeps_the_time_for_ten_minutes(ctx: AppContext, world: World, clock: FrozenClock) -> None:
    held = _book(ctx, world.visitor, world.resident_id, _at(WED, 9), hold=True).visit
    assert held.status is VisitStatus.HELD
    staff = _staff(ctx, world.place)
    _, v2 = make_visitor(ctx)
    connect(ctx, world.resident_id, v2, ConnectionStatus.APPROVED)
    with pytest.raises(Conflict):
        _book(ctx, staff, world.resident_id, _at(WED, 9), lead_visitor_id=v2)
    clock.advance(minutes=11)
    with pytest.raises(Conflict) as late:
        scheduling.confirm_hold(ctx, world.visitor, held.id, META)
    assert late.value.code == "visit.hold_expired"
    _book(ctx, staff, world.resident_id, _at(WED, 9), lead_visitor_id=v2)
    with ctx.db.read() as s:
        old = s.get(Visit, held.id)
        assert old is not None
        assert (old.status, old.reason) == (VisitStatus.CANCELLED, "hold_expired")


def test_confirming_a_hold_books_it(ctx: AppContext, world: World) -> None:
    held = _book(ctx, world.visitor, world.resident_id, _at(WED, 9), hold=True).visit
    confirmed = scheduling.confirm_hold(ctx, world.visitor, held.id, META)
    assert confirmed.status is VisitStatus.APPROVED
    assert confirmed.hold_expires_at is None


def test_alerts_send_bookings_to_a_clerk(ctx: AppContext, world: World, clock: FrozenClock) -> None:
    with ctx.db.write() as s:
        s.add(ResidentAlert(resident_id=world.resident_id, note="check the visitor list"))
    first = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    second = _book(ctx, world.visitor, world.resident_id, _at(THU, 9)).visit
    assert first.status is second.status is VisitStatus.REQUESTED
    clerk = _staff(ctx, world.place, Role.VETTING_CLERK)
    queue = scheduling.pending_requests(ctx, clerk, world.place.facility_id)
    assert [e.visit.id for e in queue] == [first.id, second.id]
    assert scheduling.decide_request(ctx, clerk, first.id, META, approve=True).status is VisitStatus.APPROVED
    with pytest.raises(InvalidInput):
        scheduling.decide_request(ctx, clerk, second.id, META, approve=False, reason="because")
    rejected = scheduling.decide_request(
        ctx, clerk, second.id, META, approve=False, reason="unclear_id", note="blurred photo"
    )
    assert (rejected.status, rejected.reason) == (VisitStatus.REJECTED, "unclear_id")
    with pytest.raises(Conflict):
        scheduling.decide_request(ctx, clerk, first.id, META, approve=True)
    with pytest.raises(DomainError):
        scheduling.decide_request(ctx, world.visitor, first.id, META, approve=True)


def test_undecided_requests_are_rejected_at_the_minimum_notice(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    with ctx.db.write() as s:
        s.add(ResidentAlert(resident_id=world.resident_id, note="review"))
    visit = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    assert scheduling.sweep(ctx).requests_rejected == 0
    clock.now = visit.starts_at - timedelta(hours=1)
    result = scheduling.sweep(ctx)
    assert result.requests_rejected == 1
    with ctx.db.read() as s:
        stored = s.get(Visit, visit.id)
        assert stored is not None
        assert (stored.status, stored.reason) == (VisitStatus.REJECTED, "not_decided_in_time")
        templates = (
            s.execute(sa.select(Notification.template).where(Notification.visit_id == visit.id))
            .scalars()
            .all()
        )
    assert "visit_rejected" in templates


def test_cancellation_rules(ctx: AppContext, world: World, clock: FrozenClock) -> None:
    visit = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    staff = _staff(ctx, world.place)
    with pytest.raises(InvalidInput):
        scheduling.cancel_visit(ctx, staff, visit.id, META)
    stranger_email, _ = make_visitor(ctx)
    with pytest.raises(NotFound):
        scheduling.cancel_visit(ctx, principal_of(ctx, stranger_email), visit.id, META)
    clock.now = visit.starts_at + timedelta(minutes=1)
    with pytest.raises(Conflict):
        scheduling.cancel_visit(ctx, world.visitor, visit.id, META)
    cancelled = scheduling.cancel_visit(
        ctx, staff, visit.id, META, reason="security", note="search of the unit"
    )
    assert (cancelled.status, cancelled.reason) == (VisitStatus.CANCELLED, "security")


def test_rescheduling_moves_the_visit_or_changes_nothing(ctx: AppContext, world: World) -> None:
    visit = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    with pytest.raises(InvalidInput):
        scheduling.reschedule_visit(ctx, world.visitor, visit.id, _at(WED, 9, 10), META)
    with ctx.db.read() as s:
        still = s.get(Visit, visit.id)
        assert still is not None
        assert still.status is VisitStatus.APPROVED
    moved = scheduling.reschedule_visit(ctx, world.visitor, visit.id, _at(THU, 9), META)
    assert moved.visit.replaces_visit_id == visit.id
    assert moved.visit.starts_at == _at(THU, 9)
    with ctx.db.read() as s:
        old = s.get(Visit, visit.id)
        assert old is not None
        assert (old.status, old.reason) == (VisitStatus.CANCELLED, "rescheduled")


# --- lockdowns and transfers ----------------------------------------------------------------------


def test_a_lockdown_cancels_visits_returns_allowance_and_tells_everyone(
    ctx: AppContext, world: World
) -> None:
    inside = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    outside = _book(ctx, world.visitor, world.resident_id, _at(THU, 9)).visit
    staff = _staff(ctx, world.place)
    result = scheduling.declare_block(
        ctx,
        staff,
        world.place.facility_id,
        _at(WED, 0),
        _at(WED, 23),
        META,
        kind=BlockKind.LOCKDOWN,
        reason="search",
        unit_id=world.place.unit_id,
    )
    assert (result.cancelled_visits, result.notifications) == (1, 2)
    with ctx.db.read() as s:
        a, b = s.get(Visit, inside.id), s.get(Visit, outside.id)
        assert a is not None and b is not None
        assert (a.status, a.reason, a.reason_note) == (VisitStatus.CANCELLED, "lockdown", "search")
        assert b.status is VisitStatus.APPROVED
        sent = s.execute(
            sa.select(Notification.channel, Notification.template).where(
                Notification.visit_id == inside.id, Notification.template == "visit_cancelled"
            )
        ).all()
    assert {c for c, _ in sent} == {NotificationChannel.EMAIL, NotificationChannel.STATION}
    offered = scheduling.availability(ctx, world.visitor, world.resident_id)
    assert not [t for t in offered.times if t.local_date == WED]
    # The allowance came back: three more this week besides Thursday's.
    for t in (_at(THU, 9, 35), _at(THU, 10, 10), _at(THU, 10, 45)):
        _book(ctx, world.visitor, world.resident_id, t)


def test_transfer_and_release_cancel_future_visits(ctx: AppContext, world: World) -> None:
    visit = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    other_place = make_facility(ctx)
    admin_email, _ = make_staff(ctx, Role.FACILITY_ADMIN, facility_id=world.place.facility_id)
    admin = principal_of(ctx, admin_email)
    cancelled = scheduling.change_resident_status(
        ctx,
        admin,
        world.resident_id,
        ResidentStatus.TRANSFERRED,
        META,
        to_facility_id=other_place.facility_id,
        to_unit_id=other_place.unit_id,
    )
    assert cancelled == 1
    with ctx.db.read() as s:
        v = s.get(Visit, visit.id)
        r = s.get(Resident, world.resident_id)
        assert v is not None and r is not None
        assert (v.status, v.reason) == (VisitStatus.CANCELLED, "resident_transferred")
        assert (r.facility_id, r.status) == (other_place.facility_id, ResidentStatus.ACTIVE)
        payload = s.execute(
            sa.select(Notification.payload).where(
                Notification.visit_id == visit.id,
                Notification.channel == NotificationChannel.EMAIL,
                Notification.template == "visit_cancelled",
            )
        ).scalar_one()
    assert payload["rebook_facility_id"] == other_place.facility_id
    # The old facility's admin no longer sees the resident.
    with pytest.raises(NotFound):
        scheduling.change_resident_status(ctx, admin, world.resident_id, ResidentStatus.RELEASED, META)


def test_templates_are_checked_and_audited(ctx: AppContext, world: World) -> None:
    staff = _staff(ctx, world.place)
    with ctx.db.read() as s:
        group = s.execute(
            sa.select(Station.group_id).where(Station.id == world.place.station_id)
        ).scalar_one()
    assert group is not None
    good = scheduling.TemplateInput(group_id=group, weekday=0, start_time=time(10), end_time=time(12))
    saved = scheduling.save_template(ctx, staff, world.place.facility_id, good, META)
    for bad, code in (
        (
            scheduling.TemplateInput(group_id=group, weekday=0, start_time=time(12), end_time=time(10)),
            "template.hours",
        ),
        (
            scheduling.TemplateInput(
                group_id=group, weekday=0, start_time=time(10), end_time=time(12), slot_minutes=90
            ),
            "template.slot_length",
        ),
        (
            scheduling.TemplateInput(group_id=group, weekday=0, start_time=time(10), end_time=time(10, 20)),
            "template.too_short",
        ),
    ):
        with pytest.raises(InvalidInput) as caught:
            scheduling.save_template(ctx, staff, world.place.facility_id, bad, META)
        assert caught.value.code == code
    changed = scheduling.save_template(
        ctx,
        staff,
        world.place.facility_id,
        scheduling.TemplateInput(
            group_id=group, weekday=1, start_time=time(10), end_time=time(13), unit_ids=(world.place.unit_id,)
        ),
        META,
        template_id=saved.id,
    )
    assert changed.weekday == 1
    listed = {t.id: units for t, units in scheduling.list_templates(ctx, staff, world.place.facility_id)}
    assert listed[saved.id] == [world.place.unit_id]
    scheduling.delete_template(ctx, staff, saved.id, META)
    with ctx.db.read() as s:
        actions = (
            s.execute(sa.select(AuditEntry.action).where(AuditEntry.object_type == "session_template"))
            .scalars()
            .all()
        )
    assert actions == ["template.saved", "template.saved", "template.deleted"]
    other = make_facility(ctx)
    with pytest.raises(NotFound):
        scheduling.save_template(ctx, staff, other.facility_id, good, META)


def test_calendar_shows_each_station_and_its_visits(ctx: AppContext, world: World) -> None:
    visit = _book(ctx, world.visitor, world.resident_id, _at(WED, 9)).visit
    staff = _staff(ctx, world.place)
    day = scheduling.calendar_day(ctx, staff, world.place.facility_id, WED)
    assert [s.id for s in day.stations] == sorted(
        world.station_ids, key=lambda i: [s.id for s in day.stations].index(i)
    )
    assert [e.visit.id for e in day.entries[visit.station_id]] == [visit.id]
    assert day.entries[visit.station_id][0].party_size == 1
    assert scheduling.calendar_day(ctx, staff, world.place.facility_id, THU).entries == {}


def test_a_visit_being_moved_blocks_nothing_and_uses_no_allowance(ctx: AppContext, world: World) -> None:
    times = [_at(WED, 9), _at(WED, 9, 35), _at(WED, 10, 10), _at(THU, 9)]
    visits = [_book(ctx, world.visitor, world.resident_id, t).visit for t in times]
    plain = scheduling.availability(ctx, world.visitor, world.resident_id, first_day=WED, days=2)
    assert plain.times == [], "the week's allowance is used up"
    moving = scheduling.availability(
        ctx, world.visitor, world.resident_id, first_day=WED, days=2, moving_visit_id=visits[3].id
    )
    offered = {t.starts_at for t in moving.times}
    assert _at(THU, 9) in offered, "its own time is free for it"
    assert _at(WED, 9) not in offered, "the other visits still block theirs"
    moved = scheduling.reschedule_visit(ctx, world.visitor, visits[3].id, _at(THU, 10, 10), META)
    assert moved.visit.starts_at == _at(THU, 10, 10)
    other_email, other_visitor = make_visitor(ctx)
    connect(ctx, world.resident_id, other_visitor, ConnectionStatus.APPROVED)
    with pytest.raises(NotFound):
        scheduling.availability(
            ctx, principal_of(ctx, other_email), world.resident_id, moving_visit_id=visits[0].id
        )


def test_companions_are_not_leads_and_clerks_see_why(ctx: AppContext, world: World) -> None:
    staff = _staff(ctx, world.place)
    companion_email, companion = make_visitor(ctx)
    connect(ctx, world.resident_id, companion, ConnectionStatus.APPROVED)
    with ctx.db.write() as s:
        s.add(ResidentAlert(resident_id=world.resident_id, note="check the visitor list"))
    _book(
        ctx, staff, world.resident_id, _at(WED, 9), lead_visitor_id=world.visitor_id, visitor_ids=(companion,)
    )
    assert [v.is_lead for v in scheduling.my_visits(ctx, world.visitor)] == [True]
    assert [v.is_lead for v in scheduling.my_visits(ctx, principal_of(ctx, companion_email))] == [False]
    clerk = _staff(ctx, world.place, Role.VETTING_CLERK)
    assert [e.review_notes for e in scheduling.pending_requests(ctx, clerk, world.place.facility_id)] == [
        ("check the visitor list",)
    ]
