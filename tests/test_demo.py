"""The demo data: loaded once and only once, in the colony's time zone, and every published login works."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from openvisit.db.models import (
    AttorneyProfile,
    AuditEntry,
    AuditHead,
    Base,
    Connection,
    Dependent,
    Facility,
    HousingUnit,
    LinkCenter,
    Resident,
    SessionTemplate,
    StaffGrant,
    Station,
    UserAccount,
    Visit,
    Visitor,
)
from openvisit.domain.enums import (
    AccountKind,
    ConnectionKind,
    ConnectionStatus,
    ResidentStatus,
    Role,
    StationKind,
    VerificationStatus,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import Forbidden
from openvisit.services import audit, auth
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.demo import (
    DEMO_FACILITY_CODE,
    DEMO_LOGINS,
    DEMO_STATIONS,
    demo_pin,
    load_demo,
)
from openvisit.services.demo_visits import live_demo_visits, load_live_visits
from openvisit.settings import Settings
from tests.conftest import TEST_SECRET, FrozenClock

META = RequestMeta(ip="198.51.100.1")
CYRILLIC_NAME = re.compile(r"^[А-ЯЁ][а-яё]+$")


def _row_counts(ctx: AppContext) -> dict[str, int]:
    with ctx.db.read() as session:
        return {
            table.name: session.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }


def _audit_head(ctx: AppContext) -> tuple[int, str]:
    with ctx.db.read() as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        return head.seq, head.hash


def test_second_load_changes_nothing(ctx: AppContext) -> None:
    first = load_demo(ctx)
    assert not first.already_loaded
    assert first.created["residents"] == 50
    assert first.describe().startswith("Demo data loaded: ")
    counts, head = _row_counts(ctx), _audit_head(ctx)

    second = load_demo(ctx)
    assert second.already_loaded
    assert second.describe() == "Demo data is already loaded; nothing changed."
    assert _row_counts(ctx) == counts
    assert _audit_head(ctx) == head
    assert audit.verify(ctx.db).ok


def test_created_counts_match_the_rows(ctx: AppContext) -> None:
    summary = load_demo(ctx)
    counts = _row_counts(ctx)
    assert summary.created["stations"] == counts["station"] == 8
    assert summary.created["residents"] == counts["resident"]
    assert summary.created["connections"] == counts["connection"]
    assert summary.created["staff accounts"] + summary.created["visitor accounts"] == counts["user_account"]


def test_the_colony_and_the_link_centers(ctx: AppContext) -> None:
    load_demo(ctx)
    with ctx.db.read() as session:
        facility = session.execute(
            sa.select(Facility).where(Facility.code == DEMO_FACILITY_CODE)
        ).scalar_one()
        assert (facility.name, facility.city, facility.timezone) == (
            "Penal Colony No. 17",
            "Krasnoyarsk",
            "Asia/Krasnoyarsk",
        )
        units = (
            session.execute(sa.select(HousingUnit).where(HousingUnit.facility_id == facility.id))
            .scalars()
            .all()
        )
        assert len(units) == 2
        stations = session.execute(sa.select(Station).order_by(Station.code)).scalars().all()
        kiosks = [s for s in stations if s.kind is StationKind.UNIT_KIOSK]
        booths = [s for s in stations if s.kind is StationKind.LINK_BOOTH]
        assert Counter(s.unit_id for s in kiosks) == {unit.id: 2 for unit in units}
        assert all(s.group_id is not None and s.facility_id == facility.id for s in kiosks)
        assert {s.code for s in stations} == {code for code, _ in DEMO_STATIONS}

        centers = session.execute(sa.select(LinkCenter).order_by(LinkCenter.code)).scalars().all()
        assert [(c.city, c.timezone) for c in centers] == [
            ("Krasnoyarsk", "Asia/Krasnoyarsk"),
            ("Moscow", "Europe/Moscow"),
        ]
        assert Counter(s.link_center_id for s in booths) == {c.id: 2 for c in centers}

        templates = session.execute(sa.select(SessionTemplate)).scalars().all()
        groups = {s.group_id for s in kiosks}
        assert {t.group_id for t in templates} == groups
        for group in groups:
            assert {t.weekday for t in templates if t.group_id == group} >= {0, 1, 2, 3, 4}


def test_fifty_residents_with_cyrillic_names(ctx: AppContext) -> None:
    load_demo(ctx)
    with ctx.db.read() as session:
        residents = session.execute(sa.select(Resident).order_by(Resident.number)).scalars().all()
    assert len(residents) == 50
    assert residents[0].number == "A-100001"
    assert (residents[0].last_name, residents[0].first_name, residents[0].middle_name) == (
        "Смирнов",
        "Алексей",
        "Викторович",
    )
    assert len({r.number for r in residents}) == 50
    assert len({(r.last_name, r.first_name, r.middle_name) for r in residents}) == 50
    for r in residents:
        assert re.fullmatch(r"A-1000[0-9]{2}", r.number)
        assert all(CYRILLIC_NAME.match(name) for name in (r.last_name, r.first_name, r.middle_name)), r.number
        assert r.middle_name.endswith(("вич", "ьич")), r.number
        assert r.status is ResidentStatus.ACTIVE
        assert r.pin_hash is not None
    assert len(Counter(r.unit_id for r in residents)) == 2


def test_visitors_attorney_and_connections(ctx: AppContext) -> None:
    load_demo(ctx)
    with ctx.db.read() as session:
        visitors = session.execute(
            sa.select(UserAccount.timezone, Visitor).join(Visitor, Visitor.user_id == UserAccount.id)
        ).all()
        assert {
            "Europe/Moscow",
            "Asia/Krasnoyarsk",
            "Asia/Yekaterinburg",
            "Asia/Novosibirsk",
            "Asia/Vladivostok",
        } <= {tz for tz, _ in visitors}
        assert all(v.verification is VerificationStatus.VERIFIED for _, v in visitors)

        attorney = session.execute(sa.select(AttorneyProfile)).scalar_one()
        assert attorney.status is VerificationStatus.VERIFIED
        assert attorney.licence_number and attorney.organisation

        connections = session.execute(sa.select(Connection)).scalars().all()
        legal = [c for c in connections if c.kind is ConnectionKind.LEGAL]
        assert [(c.visitor_id, c.status) for c in legal] == [(attorney.visitor_id, ConnectionStatus.APPROVED)]
        requested = [c for c in connections if c.status is ConnectionStatus.REQUESTED]
        assert len(requested) == 1
        assert requested[0].decided_at is None

        child = session.execute(sa.select(Dependent)).scalar_one()
        child_links = [c for c in connections if c.dependent_id == child.id]
        assert [(c.visitor_id, c.status) for c in child_links] == [
            (child.visitor_id, ConnectionStatus.APPROVED)
        ]

        grants = session.execute(sa.select(StaffGrant)).scalars().all()
        assert sorted(g.role for g in grants) == sorted(Role)
        for g in grants:
            if g.role is Role.LINK_OPERATOR:
                center = session.get(LinkCenter, g.link_center_id)
                assert center is not None and center.city == "Krasnoyarsk"
        staff = session.execute(sa.select(UserAccount).where(UserAccount.kind == AccountKind.STAFF)).scalars()
        assert all(u.totp_enrolled_at is None and u.totp_secret is None for u in staff)

        people = session.execute(
            sa.select(AuditEntry.action, sa.func.count()).group_by(AuditEntry.action)
        ).all()
    assert dict(people) == {
        "user.created": 13,
        "resident.created": 50,
        "dependent.created": 1,
        "visit.booked": 5,
        "demo.loaded": 1,
    }


def test_every_published_login_logs_in(ctx: AppContext) -> None:
    load_demo(ctx)
    accounts = [row for row in DEMO_LOGINS if "@" in row.login]
    assert {row.role for row in accounts} >= {"System admin", "Vetting clerk", "Visitor", "Attorney"}
    for row in accounts:
        result = auth.login(ctx, row.login, row.secret, META)
        assert result.principal.label == row.login
    resident_rows = [row for row in DEMO_LOGINS if row.role == "Resident"]
    assert [(row.login, row.secret) for row in resident_rows] == [("A-100001", "1234")]

    kiosks = [s for s in DEMO_STATIONS if s.code.startswith("IK17-")]
    for station in kiosks:
        result = auth.station_login(ctx, station.code, station.key, "A-100001", "1234", META)
        assert result.principal.resident_id is not None
    other = auth.station_login(ctx, kiosks[-1].code, kiosks[-1].key, "A-100002", demo_pin("A-100002"), META)
    assert other.principal.label == "resident A-100002"
    for station in DEMO_STATIONS:
        assert auth.verify_station(ctx, station.code, station.key, META) == station.code


def test_pins_cycle_by_number() -> None:
    assert [demo_pin(f"A-{n}") for n in range(100001, 100008)] == [
        "1234",
        "2345",
        "3456",
        "4567",
        "5678",
        "1234",
        "2345",
    ]


def test_refused_in_production(ctx: AppContext, tmp_path: Path) -> None:
    production = AppContext(
        settings=Settings(
            mode="production",
            database_url=ctx.settings.database_url,
            secret_key=TEST_SECRET,  # type: ignore[arg-type]
            var_dir=tmp_path,
        ),
        db=ctx.db,
        clock=ctx.clock,
    )
    before = _row_counts(ctx)
    with pytest.raises(Forbidden) as caught:
        load_demo(production)
    assert caught.value.code == "demo.refused_in_production"
    assert _row_counts(ctx) == before


def test_demo_visits_can_be_joined_now_and_added_again(ctx: AppContext, clock: FrozenClock) -> None:
    """Right after the load three visits are inside their join window (home, legal, link center); a
    history and next week's visit are there too; `--live` adds new live visits only where nobody is busy."""
    load_demo(ctx)
    now = ctx.clock()
    with ctx.db.read() as session:
        live = live_demo_visits(session, now)
        visits = session.execute(sa.select(Visit).order_by(Visit.starts_at)).scalars().all()
    assert sorted((v.kind, v.mode) for v in live) == sorted(
        [
            (VisitKind.SOCIAL, VisitMode.HOME),
            (VisitKind.LEGAL, VisitMode.HOME),
            (VisitKind.SOCIAL, VisitMode.LINK_CENTER),
        ]
    )
    assert all(v.starts_at <= now < v.ends_at for v in live)
    assert [v.status for v in visits].count(VisitStatus.COMPLETED) == 1
    assert any(v.status is VisitStatus.APPROVED and v.starts_at > now + timedelta(days=5) for v in visits)
    legal = next(v for v in visits if v.kind is VisitKind.LEGAL)
    assert not legal.counts_toward_allowance

    assert load_live_visits(ctx) == []  # everyone is busy now
    clock.advance(hours=2)
    again = load_live_visits(ctx)
    assert len(again) == 3
    with ctx.db.read() as session:
        assert {v.id for v in live_demo_visits(session, ctx.clock())} == {v.id for v in again}
