"""Small builders of real rows for tests, committed through the same database the app uses."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pyotp
import sqlalchemy as sa

from openvisit.db.models import (
    Connection,
    Dependent,
    Facility,
    HousingUnit,
    LinkCenter,
    Resident,
    SessionTemplate,
    StaffGrant,
    Station,
    StationGroup,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import (
    AccountKind,
    BookableBy,
    ConnectionKind,
    ConnectionStatus,
    ParticipantRole,
    Relationship,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.principal import Principal
from openvisit.services.auth import principal_for_user
from openvisit.services.context import AppContext
from openvisit.services.passwords import hash_secret

PASSWORD = "correct horse battery"
_counter = itertools.count(1)
_hashes: dict[str, str] = {}


def _hash(secret: str) -> str:
    # argon2 is slow on purpose; tests reuse one hash per secret.
    if secret not in _hashes:
        _hashes[secret] = hash_secret(secret)
    return _hashes[secret]


@dataclass(frozen=True)
class Place:
    facility_id: int
    unit_id: int
    station_id: int
    station_code: str
    station_key: str


def make_facility(ctx: AppContext, *, tz: str = "Asia/Krasnoyarsk") -> Place:
    n = next(_counter)
    key = f"station-key-{n}"
    with ctx.db.write() as s:
        f = Facility(code=f"F{n}", name=f"Facility {n}", timezone=tz, city="Krasnoyarsk")
        s.add(f)
        s.flush()
        u = HousingUnit(facility_id=f.id, code="U1", name="Unit 1")
        s.add(u)
        s.flush()
        st = Station(
            code=f"K{n}",
            name=f"Kiosk {n}",
            kind=StationKind.UNIT_KIOSK,
            facility_id=f.id,
            unit_id=u.id,
            device_key_hash=_hash(key),
        )
        s.add(st)
        s.flush()
        return Place(f.id, u.id, st.id, st.code, key)


def make_link_center(ctx: AppContext) -> int:
    n = next(_counter)
    with ctx.db.write() as s:
        c = LinkCenter(code=f"L{n}", name=f"Link center {n}", city="Moscow", timezone="Europe/Moscow")
        s.add(c)
        s.flush()
        return c.id


def make_staff(
    ctx: AppContext,
    role: Role,
    *,
    facility_id: int | None = None,
    link_center_id: int | None = None,
    totp: bool = True,
    email: str | None = None,
) -> tuple[str, str | None]:
    """A staff account with one grant; returns its email and TOTP secret (None when not enrolled)."""
    n = next(_counter)
    email = email or f"staff{n}@example.org"
    secret = pyotp.random_base32() if totp else None
    with ctx.db.write() as s:
        user = UserAccount(
            email=email,
            password_hash=_hash(PASSWORD),
            kind=AccountKind.STAFF,
            display_name=f"Staff {n}",
            totp_secret=secret,
            totp_enrolled_at=ctx.clock() if totp else None,
        )
        s.add(user)
        s.flush()
        s.add(StaffGrant(user_id=user.id, role=role, facility_id=facility_id, link_center_id=link_center_id))
    return email, secret


def make_visitor(
    ctx: AppContext, *, language: str = "en", tz: str = "Europe/Moscow", born: date = date(1980, 1, 1)
) -> tuple[str, int]:
    """A visitor account; returns its email and visitor id."""
    n = next(_counter)
    email = f"visitor{n}@example.org"
    with ctx.db.write() as s:
        user = UserAccount(
            email=email,
            password_hash=_hash(PASSWORD),
            kind=AccountKind.VISITOR,
            display_name=f"Visitor {n}",
            language=language,
            timezone=tz,
        )
        s.add(user)
        s.flush()
        v = Visitor(user_id=user.id, last_name="Иванова", first_name="Анна", birth_date=born)
        s.add(v)
        s.flush()
        return email, v.id


def make_resident(ctx: AppContext, place: Place, *, pin: str = "2468") -> tuple[int, str]:
    """A resident of `place`; returns its id and number."""
    n = next(_counter)
    number = f"R-{n:06d}"
    with ctx.db.write() as s:
        r = Resident(
            number=number,
            last_name="Петров",
            first_name="Иван",
            middle_name="Сергеевич",
            birth_date=date(1985, 5, 5),
            facility_id=place.facility_id,
            unit_id=place.unit_id,
            pin_hash=_hash(pin),
        )
        s.add(r)
        s.flush()
        return r.id, number


def connect(ctx: AppContext, resident_id: int, visitor_id: int, status: ConnectionStatus) -> None:
    with ctx.db.write() as s:
        s.add(
            Connection(
                resident_id=resident_id,
                visitor_id=visitor_id,
                relationship=Relationship.SPOUSE,
                kind=ConnectionKind.SOCIAL,
                status=status,
                reason=None if status in (ConnectionStatus.APPROVED, ConnectionStatus.REQUESTED) else "other",
            )
        )


def make_visit(
    ctx: AppContext, place: Place, resident_id: int, visitor_id: int, *, starts_at: datetime | None = None
) -> int:
    start = starts_at or ctx.clock() + timedelta(days=2)
    with ctx.db.write() as s:
        v = Visit(
            kind=VisitKind.SOCIAL,
            mode=VisitMode.HOME,
            status=VisitStatus.APPROVED,
            facility_id=place.facility_id,
            resident_id=resident_id,
            station_id=place.station_id,
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
        )
        s.add(v)
        s.flush()
        s.add(VisitParticipant(visit_id=v.id, visitor_id=visitor_id, role=ParticipantRole.LEAD))
        return v.id


def totp_now(secret: str, at: datetime) -> str:
    return pyotp.TOTP(secret).at(at)


def make_schedule(
    ctx: AppContext,
    place: Place,
    *,
    start: time = time(9, 0),
    end: time = time(17, 0),
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6),
    slot_minutes: int = 30,
    buffer_minutes: int = 5,
    extra_kiosks: int = 0,
    bookable_by: BookableBy = BookableBy.PUBLIC,
) -> tuple[int, list[int]]:
    """A station group holding the place's kiosk (and `extra_kiosks` more), with a template on each weekday.
    Returns the group id and the station ids."""
    with ctx.db.write() as s:
        group = StationGroup(facility_id=place.facility_id, name=f"Kiosks {next(_counter)}")
        s.add(group)
        s.flush()
        kiosk = s.get(Station, place.station_id)
        assert kiosk is not None
        kiosk.group_id = group.id
        ids = [kiosk.id]
        for i in range(extra_kiosks):
            extra = Station(
                code=f"{kiosk.code}-X{i}",
                name=f"Extra kiosk {i}",
                kind=StationKind.UNIT_KIOSK,
                facility_id=place.facility_id,
                unit_id=place.unit_id,
                group_id=group.id,
            )
            s.add(extra)
            s.flush()
            ids.append(extra.id)
        for weekday in weekdays:
            s.add(
                SessionTemplate(
                    facility_id=place.facility_id,
                    group_id=group.id,
                    weekday=weekday,
                    start_time=start,
                    end_time=end,
                    slot_minutes=slot_minutes,
                    buffer_minutes=buffer_minutes,
                    valid_from=date(2026, 1, 1),
                    bookable_by=bookable_by,
                )
            )
        return group.id, ids


def make_dependent(
    ctx: AppContext,
    visitor_id: int,
    resident_id: int,
    *,
    born: date = date(2018, 6, 1),
    approved: bool = True,
) -> int:
    with ctx.db.write() as s:
        child = Dependent(visitor_id=visitor_id, last_name="Иванова", first_name="Дарья", birth_date=born)
        s.add(child)
        s.flush()
        s.add(
            Connection(
                resident_id=resident_id,
                visitor_id=visitor_id,
                dependent_id=child.id,
                relationship=Relationship.CHILD,
                kind=ConnectionKind.SOCIAL,
                status=ConnectionStatus.APPROVED if approved else ConnectionStatus.REQUESTED,
            )
        )
        return child.id


def principal_of(ctx: AppContext, email: str) -> Principal:
    """The Principal a login of `email` would give (second factor done)."""
    with ctx.db.read() as s:
        user = s.execute(sa.select(UserAccount).where(UserAccount.email == email)).scalar_one()
        return principal_for_user(s, user)
