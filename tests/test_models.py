"""The data model itself refuses what must never be, on SQLite and PostgreSQL alike, whatever the code does.

Overlapping visits are refused by PostgreSQL's exclusion constraints; SQLite has none, and there the
booking services (one writer at a time, BEGIN IMMEDIATE) are the only guard. The tests named
`..._refused_on_postgresql_only` assert both halves, so neither can change unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from openvisit.db.models import (
    Facility,
    HousingUnit,
    LinkCenter,
    Recording,
    Resident,
    StaffGrant,
    Station,
    UserAccount,
    Visit,
)
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    AccountKind,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.services.context import AppContext

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SLOT = timedelta(minutes=30)


@dataclass(frozen=True)
class Place:
    """The smallest world a visit needs: a facility with two kiosks, two residents, a link center booth."""

    facility_id: int
    station_ids: tuple[int, int]
    resident_ids: tuple[int, int]
    link_center_id: int
    booth_id: int
    user_id: int


def build_place(ctx: AppContext) -> Place:
    with ctx.db.write() as s:
        facility = Facility(code="IK-1", name="IK-1", timezone="Asia/Krasnoyarsk", city="Krasnoyarsk")
        center = LinkCenter(code="MSK-1", name="Moscow link center", city="Moscow", timezone="Europe/Moscow")
        s.add_all([facility, center])
        s.flush()
        unit = HousingUnit(facility_id=facility.id, code="U1", name="Unit 1")
        s.add(unit)
        s.flush()
        stations = [
            Station(
                code=f"K{i}",
                name=f"Kiosk {i}",
                kind=StationKind.UNIT_KIOSK,
                facility_id=facility.id,
                unit_id=unit.id,
            )
            for i in (1, 2)
        ]
        booth = Station(code="B1", name="Booth 1", kind=StationKind.LINK_BOOTH, link_center_id=center.id)
        residents = [
            Resident(
                number=f"A-{i}",
                last_name="Ivanov",
                first_name=f"Ivan {i}",
                birth_date=date(1990, 1, i),
                facility_id=facility.id,
                unit_id=unit.id,
            )
            for i in (1, 2)
        ]
        user = UserAccount(
            email="clerk@example.org", password_hash="x", kind=AccountKind.STAFF, display_name="Clerk"
        )
        s.add_all([*stations, booth, *residents, user])
        s.flush()
        return Place(
            facility_id=facility.id,
            station_ids=(stations[0].id, stations[1].id),
            resident_ids=(residents[0].id, residents[1].id),
            link_center_id=center.id,
            booth_id=booth.id,
            user_id=user.id,
        )


def new_visit(place: Place, **fields: Any) -> Visit:
    """An approved social home visit of resident 0 on station 0 at T0, unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "kind": VisitKind.SOCIAL,
        "mode": VisitMode.HOME,
        "status": VisitStatus.APPROVED,
        "facility_id": place.facility_id,
        "resident_id": place.resident_ids[0],
        "station_id": place.station_ids[0],
        "starts_at": T0,
        "ends_at": T0 + SLOT,
    }
    values.update(fields)
    return Visit(**values)


def add(ctx: AppContext, *rows: Any) -> list[int]:
    """Insert rows in one committed transaction and return their ids."""
    with ctx.db.write() as s:
        s.add_all(rows)
        s.flush()
        return [row.id for row in rows]


def add_visit(ctx: AppContext, place: Place, **fields: Any) -> int:
    return add(ctx, new_visit(place, **fields))[0]


def new_recording(visit_id: int, kind: VisitKind) -> Recording:
    return Recording(
        visit_id=visit_id,
        visit_kind=kind,
        path=f"recordings/{visit_id}.mkv",
        started_at=T0,
        retain_until=T0 + timedelta(days=90),
    )


@pytest.fixture
def place(ctx: AppContext) -> Place:
    return build_place(ctx)


def count(ctx: AppContext, model: type[Any]) -> int:
    with ctx.db.read() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


# --- privilege: no recording of a legal visit ---------------------------------------------------


@pytest.mark.parametrize("claimed_kind", [VisitKind.LEGAL, VisitKind.SOCIAL])
def test_a_legal_visit_cannot_have_a_recording(
    ctx: AppContext, place: Place, claimed_kind: VisitKind
) -> None:
    legal = add_visit(ctx, place, kind=VisitKind.LEGAL)
    # 'legal' breaks the CHECK; 'social' breaks the composite key to (visit.id, visit.kind).
    with pytest.raises(IntegrityError):
        add(ctx, new_recording(legal, claimed_kind))
    assert count(ctx, Recording) == 0


def test_a_social_visit_can_have_a_recording(ctx: AppContext, place: Place) -> None:
    social = add_visit(ctx, place)
    add(ctx, new_recording(social, VisitKind.SOCIAL))
    assert count(ctx, Recording) == 1


def test_a_recorded_visit_cannot_become_legal(ctx: AppContext, place: Place) -> None:
    social = add_visit(ctx, place)
    add(ctx, new_recording(social, VisitKind.SOCIAL))
    with pytest.raises(IntegrityError), ctx.db.write() as s:
        s.execute(sa.update(Visit).where(Visit.id == social).values(kind=VisitKind.LEGAL))
    with ctx.db.read() as s:
        assert s.get_one(Visit, social).kind is VisitKind.SOCIAL


def test_a_recording_cannot_point_to_no_visit(ctx: AppContext, place: Place) -> None:
    with pytest.raises(IntegrityError):
        add(ctx, new_recording(12345, VisitKind.SOCIAL))


# --- visits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [timedelta(0), -SLOT])
def test_a_visit_must_end_after_it_starts(ctx: AppContext, place: Place, length: timedelta) -> None:
    with pytest.raises(IntegrityError):
        add_visit(ctx, place, ends_at=T0 + length)
    assert count(ctx, Visit) == 0


@pytest.mark.parametrize(
    "status", [VisitStatus.CANCELLED, VisitStatus.REJECTED, VisitStatus.TERMINATED, VisitStatus.FAILED]
)
def test_a_visit_ended_by_someone_needs_a_reason(ctx: AppContext, place: Place, status: VisitStatus) -> None:
    with pytest.raises(IntegrityError):
        add_visit(ctx, place, status=status)
    add_visit(ctx, place, status=status, reason="lockdown")
    assert count(ctx, Visit) == 1


def test_a_held_slot_needs_an_expiry(ctx: AppContext, place: Place) -> None:
    with pytest.raises(IntegrityError):
        add_visit(ctx, place, status=VisitStatus.HELD)
    add_visit(ctx, place, status=VisitStatus.HELD, hold_expires_at=T0 - timedelta(hours=1))


def test_a_link_center_visit_needs_its_booth(ctx: AppContext, place: Place) -> None:
    with pytest.raises(IntegrityError):
        add_visit(ctx, place, mode=VisitMode.LINK_CENTER, link_center_id=place.link_center_id)
    with pytest.raises(IntegrityError):
        add_visit(ctx, place, mode=VisitMode.HOME, booth_station_id=place.booth_id)
    add_visit(
        ctx,
        place,
        mode=VisitMode.LINK_CENTER,
        link_center_id=place.link_center_id,
        booth_station_id=place.booth_id,
    )


def test_a_naive_datetime_is_refused_before_it_reaches_the_database(ctx: AppContext, place: Place) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        add_visit(ctx, place, starts_at=datetime(2026, 3, 10, 9, 0))  # noqa: DTZ001 - the point of the test


# --- staff grants ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "at_facility", "at_center"),
    [
        (Role.SYSTEM_ADMIN, True, False),
        (Role.SYSTEM_ADMIN, False, True),
        (Role.LINK_OPERATOR, True, False),
        (Role.LINK_OPERATOR, False, False),
        (Role.LINK_OPERATOR, True, True),
        (Role.VETTING_CLERK, False, True),
        (Role.VETTING_CLERK, False, False),
        (Role.FACILITY_ADMIN, True, True),
        (Role.INVESTIGATOR, False, True),
    ],
)
def test_a_grant_with_the_wrong_scope_is_refused(
    ctx: AppContext, place: Place, role: Role, at_facility: bool, at_center: bool
) -> None:
    grant = StaffGrant(
        user_id=place.user_id,
        role=role,
        facility_id=place.facility_id if at_facility else None,
        link_center_id=place.link_center_id if at_center else None,
    )
    with pytest.raises(IntegrityError):
        add(ctx, grant)
    assert count(ctx, StaffGrant) == 0


def test_grants_with_the_right_scope_are_stored(ctx: AppContext, place: Place) -> None:
    add(
        ctx,
        StaffGrant(user_id=place.user_id, role=Role.SYSTEM_ADMIN),
        StaffGrant(user_id=place.user_id, role=Role.LINK_OPERATOR, link_center_id=place.link_center_id),
        *(
            StaffGrant(user_id=place.user_id, role=role, facility_id=place.facility_id)
            for role in Role
            if role not in (Role.SYSTEM_ADMIN, Role.LINK_OPERATOR)
        ),
    )
    assert count(ctx, StaffGrant) == len(Role)


# --- overlapping visits -----------------------------------------------------------------------------


def assert_refused_on_postgresql_only(ctx: AppContext, place: Place, **fields: Any) -> None:
    """PostgreSQL's exclusion constraint refuses the visit; SQLite stores it (the services must refuse)."""
    before = count(ctx, Visit)
    if ctx.db.is_postgresql:
        with pytest.raises(IntegrityError, match="ex_visit_"):
            add_visit(ctx, place, **fields)
        assert count(ctx, Visit) == before
    else:
        add_visit(ctx, place, **fields)
        assert count(ctx, Visit) == before + 1


def test_overlapping_visits_on_one_station_are_refused_on_postgresql_only(
    ctx: AppContext, place: Place
) -> None:
    add_visit(ctx, place)
    half = SLOT / 2
    assert_refused_on_postgresql_only(
        ctx, place, resident_id=place.resident_ids[1], starts_at=T0 + half, ends_at=T0 + SLOT + half
    )


def test_overlapping_visits_of_one_resident_are_refused_on_postgresql_only(
    ctx: AppContext, place: Place
) -> None:
    add_visit(ctx, place)
    assert_refused_on_postgresql_only(
        ctx,
        place,
        station_id=place.station_ids[1],
        status=VisitStatus.REQUESTED,
        starts_at=T0 - timedelta(minutes=10),
        ends_at=T0 + timedelta(minutes=5),
    )


def test_overlapping_visits_in_one_booth_are_refused_on_postgresql_only(
    ctx: AppContext, place: Place
) -> None:
    booth = {
        "mode": VisitMode.LINK_CENTER,
        "link_center_id": place.link_center_id,
        "booth_station_id": place.booth_id,
    }
    add_visit(ctx, place, **booth)
    assert_refused_on_postgresql_only(
        ctx, place, resident_id=place.resident_ids[1], station_id=place.station_ids[1], **booth
    )


INACTIVE = sorted(set(VisitStatus) - ACTIVE_VISIT_STATUSES)


@pytest.mark.parametrize("ended", INACTIVE)
def test_a_visit_no_longer_active_may_overlap(ctx: AppContext, place: Place, ended: VisitStatus) -> None:
    add_visit(ctx, place, status=ended, reason="station out of order")
    add_visit(ctx, place)
    add_visit(ctx, place, status=ended, reason="lockdown")
    assert count(ctx, Visit) == 3


def test_back_to_back_visits_are_allowed(ctx: AppContext, place: Place) -> None:
    add_visit(ctx, place)
    add_visit(ctx, place, starts_at=T0 + SLOT, ends_at=T0 + 2 * SLOT)
    add_visit(ctx, place, starts_at=T0 - SLOT, ends_at=T0)
    assert count(ctx, Visit) == 3


def test_other_stations_and_residents_may_run_at_the_same_time(ctx: AppContext, place: Place) -> None:
    add_visit(ctx, place)
    add_visit(ctx, place, resident_id=place.resident_ids[1], station_id=place.station_ids[1])
    assert count(ctx, Visit) == 2


def test_reactivating_a_cancelled_overlap_is_refused_on_postgresql_only(
    ctx: AppContext, place: Place
) -> None:
    add_visit(ctx, place)
    cancelled = add_visit(ctx, place, status=VisitStatus.CANCELLED, reason="visitor cancelled")
    update = sa.update(Visit).where(Visit.id == cancelled).values(status=VisitStatus.APPROVED, reason=None)
    if ctx.db.is_postgresql:
        with pytest.raises(IntegrityError, match="ex_visit_"), ctx.db.write() as s:
            s.execute(update)
    else:
        with ctx.db.write() as s:
            s.execute(update)
