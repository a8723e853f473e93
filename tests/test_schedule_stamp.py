"""Booking keeps what it read of a facility's templates and stations under the facility's schedule stamp,
which database triggers replace on every change to them: whoever changes them (another server process,
a script with plain SQL), the next booking sees the change. Both databases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from openvisit.db.models import Facility, HousingUnit, SessionTemplate, Station, session_template_unit
from openvisit.domain.enums import ConnectionStatus, StationKind
from openvisit.domain.errors import Conflict, InvalidInput
from openvisit.domain.principal import Principal
from openvisit.services import scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_visitor,
    principal_of,
)

META = RequestMeta(ip="203.0.113.9")
WED = date(2026, 3, 4)


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    """A Krasnoyarsk wall time (UTC+7) as UTC."""
    return datetime.combine(day, time(hh, mm), tzinfo=UTC) - timedelta(hours=7)


def _stamp(ctx: AppContext, facility_id: int) -> str:
    with ctx.db.read() as s:
        return str(
            s.execute(sa.select(Facility.schedule_stamp).where(Facility.id == facility_id)).scalar_one()
        )


def _sql(ctx: AppContext, statement: str, **params: object) -> None:
    """Plain SQL, as another program would write it: nothing of OpenVisit's code runs."""
    with ctx.db.engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def test_every_change_to_templates_and_stations_gives_a_new_stamp(ctx: AppContext) -> None:
    place = make_facility(ctx)
    other = make_facility(ctx)
    group_id, _ = make_schedule(ctx, place, weekdays=(2,))
    with ctx.db.read() as s:
        template_id = s.execute(
            sa.select(SessionTemplate.id).where(SessionTemplate.facility_id == place.facility_id)
        ).scalar_one()
    stamps = [_stamp(ctx, place.facility_id)]
    untouched = _stamp(ctx, other.facility_id)

    def changed(statement: str, **params: object) -> None:
        _sql(ctx, statement, **params)
        stamps.append(_stamp(ctx, place.facility_id))
        assert stamps[-1] != stamps[-2], statement

    changed("UPDATE session_template SET end_time = '12:00:00' WHERE id = :t", t=template_id)
    changed(
        "INSERT INTO session_template_unit (template_id, unit_id) VALUES (:t, :u)",
        t=template_id,
        u=place.unit_id,
    )
    changed("DELETE FROM session_template_unit WHERE template_id = :t", t=template_id)
    changed("UPDATE station SET status = 'out_of_order' WHERE id = :s", s=place.station_id)
    changed("UPDATE station SET room = 'B-2' WHERE id = :s", s=place.station_id)
    changed("DELETE FROM session_template WHERE id = :t", t=template_id)
    with ctx.db.write() as s:
        s.add(
            Station(
                code=f"{place.station_code}-new",
                name="New kiosk",
                kind=StationKind.UNIT_KIOSK,
                facility_id=place.facility_id,
                unit_id=place.unit_id,
                group_id=group_id,
            )
        )
    stamps.append(_stamp(ctx, place.facility_id))
    assert stamps[-1] != stamps[-2]
    assert len(set(stamps)) == len(stamps)
    # What booking does not read of a station (its device key) leaves the stamp, and other facilities
    # keep theirs throughout.
    _sql(ctx, "UPDATE station SET device_key_hash = 'rotated' WHERE id = :s", s=place.station_id)
    assert _stamp(ctx, place.facility_id) == stamps[-1]
    assert _stamp(ctx, other.facility_id) == untouched


def test_a_new_facility_has_a_stamp_of_its_own(ctx: AppContext) -> None:
    place = make_facility(ctx)
    # A copy made with plain SQL, the stamp left to the database.
    columns = ", ".join(
        c.name for c in Facility.__table__.columns if c.name not in ("id", "code", "schedule_stamp")
    )
    _sql(
        ctx,
        f"INSERT INTO facility (code, {columns}) SELECT 'RAW', {columns} FROM facility WHERE id = :f",
        f=place.facility_id,
    )
    with ctx.db.read() as s:
        stamps = s.execute(sa.select(Facility.schedule_stamp)).scalars().all()
    assert len(stamps) == len(set(stamps)) == 2
    assert all(len(stamp) == 16 for stamp in stamps)


@dataclass
class Booked:
    place: Place
    resident_id: int
    visitor: Principal

    def book_again(self, ctx: AppContext) -> scheduling.BookedVisit:
        """Another visit the same day, at a time the schedule offered when the first was booked."""
        request = BookingRequest(resident_id=self.resident_id, starts_at=_at(WED, 10, 10))
        return scheduling.book_visit(ctx, self.visitor, request, META)


@pytest.fixture
def booked(ctx: AppContext) -> Booked:
    """A facility with one kiosk, and a visit booked there (what booking read of it is now kept)."""
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    visitor = principal_of(ctx, email)
    scheduling.book_visit(ctx, visitor, BookingRequest(resident_id=resident_id, starts_at=_at(WED, 9)), META)
    return Booked(place, resident_id, visitor)


def test_a_station_taken_out_elsewhere_is_out_for_the_next_booking(ctx: AppContext, booked: Booked) -> None:
    before = scheduling.availability(ctx, booked.visitor, booked.resident_id, first_day=WED, days=1)
    assert before.times
    _sql(ctx, "UPDATE station SET status = 'out_of_order' WHERE id = :s", s=booked.place.station_id)
    after = scheduling.availability(ctx, booked.visitor, booked.resident_id, first_day=WED, days=1)
    assert after.times == []
    with pytest.raises(Conflict):
        booked.book_again(ctx)


def test_a_template_shortened_elsewhere_is_short_for_the_next_booking(
    ctx: AppContext, booked: Booked
) -> None:
    _sql(
        ctx,
        "UPDATE session_template SET end_time = '10:00:00' WHERE facility_id = :f",
        f=booked.place.facility_id,
    )
    with pytest.raises(InvalidInput) as refused:
        booked.book_again(ctx)
    assert refused.value.code == "visit.outside_template"


def test_a_template_for_another_unit_elsewhere_is_closed_to_this_one(ctx: AppContext, booked: Booked) -> None:
    with ctx.db.write() as s:
        unit = HousingUnit(facility_id=booked.place.facility_id, code="U2", name="Unit 2")
        s.add(unit)
        s.flush()
        templates = s.execute(
            sa.select(SessionTemplate.id).where(SessionTemplate.facility_id == booked.place.facility_id)
        ).scalars()
        s.execute(session_template_unit.insert(), [{"template_id": t, "unit_id": unit.id} for t in templates])
    with pytest.raises(InvalidInput) as refused:
        booked.book_again(ctx)
    assert refused.value.code == "visit.outside_template"


def test_with_nothing_changed_the_next_booking_is_made(ctx: AppContext, booked: Booked) -> None:
    """The guard of the tests above: their refusals come from the change, not from the time chosen."""
    assert booked.book_again(ctx).visit.starts_at == _at(WED, 10, 10)
