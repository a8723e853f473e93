"""Demo data: a penal colony in Krasnoyarsk, two link centers, residents, families, an attorney and staff.

Everything is fixed (names, numbers, dates, secrets), so two loads anywhere give the same data, and the
logins below can be printed by `make run` and shown in the README.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    AttorneyProfile,
    Connection,
    Dependent,
    Facility,
    HousingUnit,
    LinkCenter,
    Resident,
    SessionTemplate,
    Station,
    StationGroup,
    UserAccount,
    Visitor,
)
from openvisit.domain.enums import (
    AccountKind,
    ActorKind,
    BookableBy,
    ConnectionKind,
    ConnectionStatus,
    Relationship,
    ResidentStatus,
    Role,
    StationKind,
    VerificationStatus,
)
from openvisit.domain.errors import Forbidden
from openvisit.domain.principal import Grant, Principal
from openvisit.services import audit
from openvisit.services.context import AppContext
from openvisit.services.demo_visits import add_history_and_plans, add_live_visits
from openvisit.services.passwords import hash_secret
from openvisit.services.users import VisitorProfile, check_new_user, insert_user

DEMO_ACTOR = Principal(kind=ActorKind.SYSTEM, label="demo")
"""Who the audit log names as the author of the demo data."""

DEMO_PASSWORD = "visit-demo-2026"  # noqa: S105 - published on purpose: it is the demo's login
"""The password of every demo account."""

DEMO_EMAIL_DOMAIN = "example.org"
DEMO_FACILITY_CODE = "IK-17"
DEMO_RESIDENT_PINS: tuple[str, ...] = ("1234", "2345", "3456", "4567", "5678")
"""Residents' PINs cycle through these by number, so five hashes serve fifty residents."""

_FIRST_NUMBER = 100001
_RESIDENT_COUNT = 50
_TEMPLATES_VALID_FROM = date(2026, 1, 1)
_WEEKDAYS = range(5)


class DemoLogin(NamedTuple):
    """One row of the demo's login table."""

    role: str
    login: str
    secret: str
    note: str


class DemoStation(NamedTuple):
    """A demo station's code and the device key that enrols a browser as that station."""

    code: str
    key: str


@dataclass(frozen=True)
class DemoSummary:
    """What `load_demo` created, by kind of thing; empty when the demo data was already there."""

    created: Mapping[str, int]

    @property
    def already_loaded(self) -> bool:
        """True when the load found the demo there and changed nothing."""
        return not self.created

    def describe(self) -> str:
        """One line for people: what was created, or that nothing changed."""
        if self.already_loaded:
            return "Demo data is already loaded; nothing changed."
        parts = ", ".join(f"{name}: {count}" for name, count in self.created.items())
        return f"Demo data loaded: {parts}."


def demo_pin(number: str) -> str:
    """The PIN of a demo resident (A-100001 → 1234, A-100002 → 2345, …, repeating every five)."""
    index = int(number.rsplit("-", 1)[-1]) - _FIRST_NUMBER
    return DEMO_RESIDENT_PINS[index % len(DEMO_RESIDENT_PINS)]


def station_key(code: str) -> str:
    """The device key of a demo station."""
    return f"demo-station-{code.lower()}"


def _email(local: str) -> str:
    return f"{local}@{DEMO_EMAIL_DOMAIN}"


# --- places ---------------------------------------------------------------------------------------

_UNITS = (("U1", "Unit 1"), ("U2", "Unit 2"))
_KIOSKS_PER_UNIT = 2
_LINK_CENTERS = (
    # code, name, city, time zone, latitude, longitude
    ("LC-KRS", "Krasnoyarsk Link Center", "Krasnoyarsk", "Asia/Krasnoyarsk", 56.0106, 92.8526),
    ("LC-MOW", "Moscow Link Center", "Moscow", "Europe/Moscow", 55.7558, 37.6173),
)
_BOOTHS_PER_CENTER = 2


def _kiosk_code(unit_code: str, n: int) -> str:
    return f"IK17-{unit_code}-K{n}"


def _booth_code(center_code: str, n: int) -> str:
    return f"{center_code}-B{n}"


DEMO_STATIONS: list[DemoStation] = [
    DemoStation(code, station_key(code))
    for code in [
        *(_kiosk_code(unit, n) for unit, _ in _UNITS for n in range(1, _KIOSKS_PER_UNIT + 1)),
        *(_booth_code(center[0], n) for center in _LINK_CENTERS for n in range(1, _BOOTHS_PER_CENTER + 1)),
    ]
]
"""Every demo station, kiosks first, with its device key."""

# Each unit's kiosks take visits on weekday mornings and afternoons, and on Saturday for staff bookings;
# the second unit runs an hour later so that the two groups differ. Times are the colony's local time.
_SESSIONS: tuple[tuple[range | tuple[int, ...], time, time, BookableBy], ...] = (
    (_WEEKDAYS, time(9, 0), time(12, 0), BookableBy.PUBLIC),
    (_WEEKDAYS, time(14, 0), time(17, 0), BookableBy.PUBLIC),
    ((5,), time(10, 0), time(13, 0), BookableBy.STAFF),
)


# --- people ---------------------------------------------------------------------------------------

# The first six residents have family, an attorney or a pending request below, so they are spelt out.
_NAMED_RESIDENTS: tuple[tuple[str, str, str, date], ...] = (
    ("Смирнов", "Алексей", "Викторович", date(1985, 4, 12)),
    ("Кузнецов", "Андрей", "Сергеевич", date(1992, 9, 3)),
    ("Попов", "Артём", "Игоревич", date(1988, 1, 27)),
    ("Васильев", "Николай", "Петрович", date(1979, 11, 15)),
    ("Петров", "Иван", "Олегович", date(1995, 6, 30)),
    ("Михайлов", "Сергей", "Андреевич", date(1983, 2, 8)),
)
_SURNAMES = (
    "Иванов",
    "Соколов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Кузьмин",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
)
_FIRST_NAMES = (
    "Алексей",
    "Андрей",
    "Антон",
    "Артём",
    "Владимир",
    "Дмитрий",
    "Евгений",
    "Иван",
    "Игорь",
    "Кирилл",
    "Максим",
    "Михаил",
    "Николай",
    "Олег",
    "Павел",
    "Роман",
    "Сергей",
    "Станислав",
    "Юрий",
    "Виктор",
)
_PATRONYMICS = (
    "Александрович",
    "Алексеевич",
    "Андреевич",
    "Викторович",
    "Владимирович",
    "Геннадьевич",
    "Дмитриевич",
    "Евгеньевич",
    "Иванович",
    "Игоревич",
    "Михайлович",
    "Николаевич",
    "Олегович",
    "Павлович",
    "Петрович",
    "Сергеевич",
    "Юрьевич",
)


def _resident_rows() -> list[tuple[str, str, str, str, date]]:
    """(number, last name, first name, middle name, birth date) for every demo resident."""
    rows = list(_NAMED_RESIDENTS)
    for i in range(_RESIDENT_COUNT - len(rows)):
        rows.append(
            (
                _SURNAMES[i],
                _FIRST_NAMES[(i * 7) % len(_FIRST_NAMES)],
                _PATRONYMICS[(i * 5) % len(_PATRONYMICS)],
                date(1965 + (i * 7) % 35, (i * 5) % 12 + 1, (i * 11) % 28 + 1),
            )
        )
    return [(f"A-{_FIRST_NUMBER + i}", *row) for i, row in enumerate(rows)]


@dataclass(frozen=True)
class _DemoVisitor:
    login: str
    profile: VisitorProfile
    timezone: str
    language: str
    resident: str
    relationship: Relationship
    note: str
    approved: bool = True
    child: tuple[str, str, date] | None = None
    """A dependent (last name, first name, birth date) approved to visit beside this visitor."""


_VISITORS = (
    _DemoVisitor(
        login="maria.smirnova",
        profile=VisitorProfile(
            "Смирнова", "Мария", date(1987, 3, 21), "Алексеевна", "+7 900 000-00-01", "Москва"
        ),
        timezone="Europe/Moscow",
        language="ru",
        resident="A-100001",
        relationship=Relationship.SPOUSE,
        note="Moscow; wife of A-100001, visits with their daughter",
        child=("Смирнова", "Дарья", date(2017, 8, 9)),
    ),
    _DemoVisitor(
        login="olga.kuznetsova",
        profile=VisitorProfile(
            "Кузнецова", "Ольга", date(1968, 12, 2), "Николаевна", "+7 900 000-00-02", "Красноярск"
        ),
        timezone="Asia/Krasnoyarsk",
        language="ru",
        resident="A-100002",
        relationship=Relationship.PARENT,
        note="Krasnoyarsk; mother of A-100002",
    ),
    _DemoVisitor(
        login="dmitry.popov",
        profile=VisitorProfile(
            "Попов", "Дмитрий", date(1990, 5, 17), "Игоревич", "+7 900 000-00-03", "Екатеринбург"
        ),
        timezone="Asia/Yekaterinburg",
        language="en",
        resident="A-100003",
        relationship=Relationship.SIBLING,
        note="Yekaterinburg, English interface; brother of A-100003",
    ),
    _DemoVisitor(
        login="elena.vasilyeva",
        profile=VisitorProfile(
            "Васильева", "Елена", date(1982, 7, 4), "Петровна", "+7 900 000-00-04", "Новосибирск"
        ),
        timezone="Asia/Novosibirsk",
        language="ru",
        resident="A-100004",
        relationship=Relationship.SIBLING,
        note="Novosibirsk; sister of A-100004",
    ),
    _DemoVisitor(
        login="anna.lysenko",
        profile=VisitorProfile(
            "Лысенко", "Анна", date(1996, 10, 11), "Сергеевна", "+7 900 000-00-05", "Владивосток"
        ),
        timezone="Asia/Vladivostok",
        language="ru",
        resident="A-100005",
        relationship=Relationship.PARTNER,
        note="Vladivostok; her request to visit A-100005 waits for the clerk",
        approved=False,
    ),
)

_ATTORNEY = _DemoVisitor(
    login="irina.gavrilova",
    profile=VisitorProfile(
        "Гаврилова", "Ирина", date(1975, 1, 19), "Александровна", "+7 900 000-00-06", "Красноярск"
    ),
    timezone="Asia/Krasnoyarsk",
    language="ru",
    resident="A-100006",
    relationship=Relationship.ATTORNEY,
    note="verified attorney; privileged legal visits with A-100006",
)
_ATTORNEY_LICENCE = "24/1187"
_ATTORNEY_ORGANISATION = "Адвокатская палата Красноярского края"

# login, display name, role, scope ("facility", "link_center" or None), note
_STAFF: tuple[tuple[str, str, Role, str | None, str], ...] = (
    ("admin", "System Administrator", Role.SYSTEM_ADMIN, None, "every facility and link center"),
    ("facility-admin", "Facility Administrator", Role.FACILITY_ADMIN, "facility", "IK-17"),
    ("clerk", "Vetting Clerk", Role.VETTING_CLERK, "facility", "IK-17; one link request waiting"),
    ("scheduler", "Scheduler", Role.SCHEDULER, "facility", "IK-17"),
    ("monitor", "Monitoring Officer", Role.MONITORING_OFFICER, "facility", "IK-17"),
    ("investigator", "Investigator", Role.INVESTIGATOR, "facility", "IK-17"),
    ("operator", "Link-Center Operator", Role.LINK_OPERATOR, "link_center", "LC-KRS, Krasnoyarsk"),
)
_ROLE_LABELS = {
    Role.SYSTEM_ADMIN: "System admin",
    Role.FACILITY_ADMIN: "Facility admin",
    Role.VETTING_CLERK: "Vetting clerk",
    Role.SCHEDULER: "Scheduler",
    Role.MONITORING_OFFICER: "Monitoring officer",
    Role.INVESTIGATOR: "Investigator",
    Role.LINK_OPERATOR: "Link-center operator",
}

DEMO_LOGINS: list[DemoLogin] = [
    *(
        DemoLogin(_ROLE_LABELS[role], _email(login), DEMO_PASSWORD, f"{note}; TOTP not enrolled")
        for login, _, role, _, note in _STAFF
    ),
    *(DemoLogin("Visitor", _email(v.login), DEMO_PASSWORD, v.note) for v in _VISITORS),
    DemoLogin("Attorney", _email(_ATTORNEY.login), DEMO_PASSWORD, _ATTORNEY.note),
    DemoLogin(
        "Resident",
        "A-100001",
        demo_pin("A-100001"),
        "at any IK-17 kiosk; A-100002 has PIN 2345, A-100003 3456, … (five PINs in turn)",
    ),
]
"""(role label, login, password or PIN, note) for every demo login."""


# --- loading --------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _demo_hash(secret: str) -> str:
    # argon2 is slow on purpose; the demo's secrets are public anyway, so one hash per process is enough.
    return hash_secret(secret)


def _is_loaded(session: Session) -> bool:
    return (
        session.execute(sa.select(Facility.id).where(Facility.code == DEMO_FACILITY_CODE)).first() is not None
    )


def load_demo(ctx: AppContext) -> DemoSummary:
    """Load the demo data in one audited transaction; a second load changes nothing. Refused in production."""
    if ctx.settings.mode == "production":
        raise Forbidden(
            "demo.refused_in_production",
            "Demo accounts with published passwords are never loaded in production.",
        )
    with ctx.db.read() as session:
        if _is_loaded(session):
            return DemoSummary(created={})
    secrets = [DEMO_PASSWORD, *DEMO_RESIDENT_PINS, *(s.key for s in DEMO_STATIONS)]
    hashes = {secret: _demo_hash(secret) for secret in secrets}
    with ctx.db.write() as session:
        # Asked again inside the transaction: another load may have committed since. (A load running
        # at the same moment on PostgreSQL is refused by the unique facility code instead.)
        if _is_loaded(session):
            return DemoSummary(created={})
        return DemoSummary(created=_Loader(session, ctx.clock(), hashes).load())


class _Loader:
    """Builds the demo in one session, counting what it adds."""

    def __init__(self, session: Session, now: datetime, hashes: Mapping[str, str]) -> None:
        self.session = session
        self.now = now
        self.hashes = hashes
        self.created: Counter[str] = Counter()

    def add(self, kind: str, row: object) -> None:
        self.session.add(row)
        self.created[kind] += 1

    def load(self) -> dict[str, int]:
        facility, units = self._colony()
        centers = self._link_centers()
        staff = self._staff(facility, centers)
        residents = self._residents(facility, units)
        self._visitors(residents, clerk=staff[Role.VETTING_CLERK])
        self.session.flush()
        self.created["visits"] += len(add_history_and_plans(self.session, self.now))
        self.created["visits"] += len(add_live_visits(self.session, self.now))
        created = dict(self.created)
        audit.record(
            self.session,
            DEMO_ACTOR,
            "demo.loaded",
            "facility",
            facility.id,
            at=self.now,
            facility_id=facility.id,
            after=created,
        )
        return created

    def _colony(self) -> tuple[Facility, list[HousingUnit]]:
        facility = Facility(
            code=DEMO_FACILITY_CODE,
            name="Penal Colony No. 17",
            timezone="Asia/Krasnoyarsk",
            city="Krasnoyarsk",
            address="Krasnoyarsk (a fictional colony for the demo)",
            latitude=56.0153,
            longitude=92.8932,
        )
        self.add("facilities", facility)
        self.session.flush()
        units = []
        for unit_code, unit_name in _UNITS:
            unit = HousingUnit(facility_id=facility.id, code=unit_code, name=unit_name)
            group = StationGroup(facility_id=facility.id, name=f"{unit_name} kiosks")
            self.add("housing units", unit)
            self.add("station groups", group)
            self.session.flush()
            units.append(unit)
            for n in range(1, _KIOSKS_PER_UNIT + 1):
                code = _kiosk_code(unit_code, n)
                self.add(
                    "stations",
                    Station(
                        code=code,
                        name=f"{unit_name}, kiosk {n}",
                        kind=StationKind.UNIT_KIOSK,
                        facility_id=facility.id,
                        unit_id=unit.id,
                        group_id=group.id,
                        room=f"{unit_name} day room",
                        device_key_hash=self.hashes[station_key(code)],
                    ),
                )
            shift = len(units) - 1
            for weekdays, start, end, bookable_by in _SESSIONS:
                for weekday in weekdays:
                    self.add(
                        "session templates",
                        SessionTemplate(
                            facility_id=facility.id,
                            group_id=group.id,
                            weekday=weekday,
                            start_time=start.replace(hour=start.hour + shift),
                            end_time=end.replace(hour=end.hour + shift),
                            slot_minutes=30,
                            buffer_minutes=5,
                            valid_from=_TEMPLATES_VALID_FROM,
                            bookable_by=bookable_by,
                            units=[unit],
                        ),
                    )
        return facility, units

    def _link_centers(self) -> list[LinkCenter]:
        centers = []
        for code, name, city, timezone, latitude, longitude in _LINK_CENTERS:
            center = LinkCenter(
                code=code, name=name, city=city, timezone=timezone, latitude=latitude, longitude=longitude
            )
            self.add("link centers", center)
            self.session.flush()
            centers.append(center)
            for n in range(1, _BOOTHS_PER_CENTER + 1):
                booth = _booth_code(code, n)
                self.add(
                    "stations",
                    Station(
                        code=booth,
                        name=f"{name}, booth {n}",
                        kind=StationKind.LINK_BOOTH,
                        link_center_id=center.id,
                        room=f"Booth {n}",
                        device_key_hash=self.hashes[station_key(booth)],
                    ),
                )
        return centers

    def _user(
        self,
        login: str,
        kind: AccountKind,
        display_name: str,
        timezone: str,
        language: str,
        *,
        grants: tuple[Grant, ...] = (),
        visitor: VisitorProfile | None = None,
    ) -> UserAccount:
        new = check_new_user(
            email=_email(login),
            kind=kind,
            display_name=display_name,
            language=language,
            timezone=timezone,
            grants=grants,
            visitor=visitor,
            today=self.now.date(),
        )
        user = insert_user(
            self.session, DEMO_ACTOR, new, self.hashes[DEMO_PASSWORD], at=self.now, email_verified=True
        )
        self.created["staff accounts" if kind is AccountKind.STAFF else "visitor accounts"] += 1
        return user

    def _staff(self, facility: Facility, centers: list[LinkCenter]) -> dict[Role, UserAccount]:
        staff = {}
        for login, display_name, role, scope, _ in _STAFF:
            grant = Grant(
                role,
                facility_id=facility.id if scope == "facility" else None,
                link_center_id=centers[0].id if scope == "link_center" else None,
            )
            timezone = "Europe/Moscow" if role is Role.SYSTEM_ADMIN else "Asia/Krasnoyarsk"
            staff[role] = self._user(login, AccountKind.STAFF, display_name, timezone, "en", grants=(grant,))
        return staff

    def _residents(self, facility: Facility, units: list[HousingUnit]) -> dict[str, Resident]:
        residents = {}
        for i, (number, last_name, first_name, middle_name, birth_date) in enumerate(_resident_rows()):
            resident = Resident(
                number=number,
                last_name=last_name,
                first_name=first_name,
                middle_name=middle_name,
                birth_date=birth_date,
                facility_id=facility.id,
                unit_id=units[i % len(units)].id,
                status=ResidentStatus.ACTIVE,
                language="ru",
                pin_hash=self.hashes[demo_pin(number)],
            )
            self.add("residents", resident)
            self.session.flush()
            audit.record(
                self.session,
                DEMO_ACTOR,
                "resident.created",
                "resident",
                resident.id,
                at=self.now,
                facility_id=facility.id,
                after={"number": number, "unit_id": resident.unit_id},
            )
            residents[number] = resident
        return residents

    def _visitors(self, residents: Mapping[str, Resident], *, clerk: UserAccount) -> None:
        for demo in (*_VISITORS, _ATTORNEY):
            profile = demo.profile
            user = self._user(
                demo.login,
                AccountKind.VISITOR,
                f"{profile.first_name} {profile.last_name}",
                demo.timezone,
                demo.language,
                visitor=profile,
            )
            visitor = self.session.execute(sa.select(Visitor).where(Visitor.user_id == user.id)).scalar_one()
            visitor.verification = VerificationStatus.VERIFIED
            visitor.verified_by_id = clerk.id
            visitor.verified_at = self.now
            resident = residents[demo.resident]
            legal = demo.relationship is Relationship.ATTORNEY
            if legal:
                self.add(
                    "attorney profiles",
                    AttorneyProfile(
                        visitor_id=visitor.id,
                        licence_number=_ATTORNEY_LICENCE,
                        organisation=_ATTORNEY_ORGANISATION,
                        status=VerificationStatus.VERIFIED,
                        verified_by_id=clerk.id,
                        verified_at=self.now,
                    ),
                )
            self._connect(
                resident, visitor, demo.relationship, legal=legal, approved=demo.approved, clerk=clerk
            )
            if demo.child is not None:
                self._child(demo.child, resident, visitor, clerk)

    def _connect(
        self,
        resident: Resident,
        visitor: Visitor,
        relationship: Relationship,
        *,
        legal: bool = False,
        approved: bool,
        clerk: UserAccount,
        dependent: Dependent | None = None,
    ) -> None:
        self.add(
            "connections",
            Connection(
                resident_id=resident.id,
                visitor_id=visitor.id,
                dependent_id=dependent.id if dependent else None,
                relationship=relationship,
                kind=ConnectionKind.LEGAL if legal else ConnectionKind.SOCIAL,
                status=ConnectionStatus.APPROVED if approved else ConnectionStatus.REQUESTED,
                decided_by_id=clerk.id if approved else None,
                decided_at=self.now if approved else None,
            ),
        )

    def _child(
        self, child_row: tuple[str, str, date], resident: Resident, parent: Visitor, clerk: UserAccount
    ) -> None:
        last_name, first_name, birth_date = child_row
        child = Dependent(
            visitor_id=parent.id, last_name=last_name, first_name=first_name, birth_date=birth_date
        )
        self.add("dependents", child)
        self.session.flush()
        audit.record(
            self.session,
            DEMO_ACTOR,
            "dependent.created",
            "dependent",
            child.id,
            at=self.now,
            after={"visitor_id": parent.id},
        )
        self._connect(resident, parent, Relationship.CHILD, approved=True, clerk=clerk, dependent=child)
