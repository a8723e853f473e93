"""Resident import: reading and checking rows without a database, the batch upsert on both databases
(transfers and releases cancel future visits), the `openvisit import residents` command with its exact
report and exit status, and POST /api/v1/residents/import."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from openvisit.cli import app
from openvisit.db.models import AuditEntry, HousingUnit, Resident, UserAccount, Visit
from openvisit.domain.enums import AccountKind, ConnectionStatus, ResidentStatus, Role, VisitStatus
from openvisit.domain.errors import Forbidden
from openvisit.domain.principal import SYSTEM, Principal
from openvisit.services import residents_import as ri
from openvisit.services import scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from tests.conftest import TEST_SECRET, FrozenClock
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    principal_of,
    totp_now,
)
from tests.webutil import api_token

TODAY = date(2026, 3, 2)
HEADER = "number,last_name,first_name,middle_name,birth_date,facility,unit,status"
META = RequestMeta(ip="198.51.100.4")
runner = CliRunner()


def _csv(*lines: str, header: str = HEADER) -> bytes:
    return "\n".join((header, *lines, "")).encode()


def _checked(data: bytes) -> list[ri.ResidentRow | ri.RowError]:
    return list(ri.check_rows(ri.open_import(io.BytesIO(data), ri.FileFormat.CSV).rows, today=TODAY))


def _errors(items: list[ri.ResidentRow | ri.RowError]) -> list[tuple[int, str, str]]:
    return [(e.row, e.code, e.reason) for e in items if isinstance(e, ri.RowError)]


# --- reading and checking, without a database -------------------------------------------------------


def test_a_good_row_keeps_its_names_exactly() -> None:
    [row] = _checked(_csv("А-0001, Ёлкина-Щукина ,Анна-Мария,Д'Артаньян-оглы,1990-01-02,IK-17,U1,Active"))
    assert row == ri.ResidentRow(
        row=1,
        number="А-0001",
        last_name="Ёлкина-Щукина",
        first_name="Анна-Мария",
        middle_name="Д'Артаньян-оглы",
        birth_date=date(1990, 1, 2),
        status=ResidentStatus.ACTIVE,
        facility="IK-17",
        unit="U1",
        language=None,
    )


@pytest.mark.parametrize(
    ("line", "code", "reason"),
    [
        (",Иванов,Иван,,1980-01-01,F,U,active", "import.missing_number", "missing number"),
        ("A1,,Иван,,1980-01-01,F,U,active", "import.missing", "missing last_name"),
        ("A1,Иванов,,,1980-01-01,F,U,active", "import.missing", "missing first_name"),
        ("A1,Иванов,Иван,,2001-02-30,F,U,active", "import.impossible_date", "impossible date 2001-02-30"),
        (
            "A1,Иванов,Иван,,2026-03-03,F,U,active",
            "import.future_date",
            "birth date 2026-03-03 is in the future",
        ),
        (
            "A1,Иванов,Иван,,1899-12-31,F,U,active",
            "import.date_too_early",
            "birth date 1899-12-31 is before 1900",
        ),
        (
            "A1,Иванов,Иван,,05.05.1985,F,U,active",
            "import.date_format",
            "birth date 05.05.1985 is not written YYYY-MM-DD",
        ),
        ("A1,Иванов,Иван,,,F,U,active", "import.missing", "missing birth_date"),
        (
            "A1,Иванов,Иван,,1980-01-01,F,U,escaped",
            "import.unknown_status",
            "unknown status escaped (use active, transferred or released)",
        ),
        ("A1,Иванов,Иван,,1980-01-01,F,U,", "import.missing", "missing status"),
        ("A1,Иванов,Иван,,1980-01-01,,,active", "import.missing", "missing facility"),
        (
            "A1,Иванов,Иван,,1980-01-01,,U,released",
            "import.unit_without_facility",
            "a unit is given without its facility",
        ),
        (
            "A1,Иванов,Иван,,1980-01-01,F,U",
            "import.column_count",
            "wrong number of columns: expected 8, found 7",
        ),
        (
            'A1,"Иванов,Иван,,1980-01-01,F,U,active',
            "import.bad_line",
            "not a valid CSV line (is a quote left open?)",
        ),
        (
            "A123456789012345678901234567890123,Иванов,Иван,,1980-01-01,F,U,active",
            "import.too_long",
            "number is longer than 32 characters",
        ),
        (
            "A1,Иванов\x07,Иван,,1980-01-01,F,U,active",
            "import.control_characters",
            "last_name has control characters",
        ),
    ],
)
def test_each_bad_row_has_its_reason(line: str, code: str, reason: str) -> None:
    assert _errors(_checked(_csv(line))) == [(1, code, reason)]


def test_rows_count_from_the_line_after_the_header_and_blank_lines_count() -> None:
    data = (
        b"\xef\xbb\xbf" + HEADER.encode() + b"\r\n"
        b"A1,\xd0\x98\xd0\xb2\xd0\xb0\xd0\xbd\xd0\xbe\xd0\xb2,x,,1980-01-01,F,,active\r\n"
        b"\r\n"
        b"A2,\xff\xfe broken,x,,1980-01-01,F,,active\r\n"
        b"A3,y,x,,2001-02-30,F,,active\r\n"
        b"A1,z,x,,1980-01-01,F,,active\r\n"
        b"A4,w,x,,1980-01-01,F,,active"
    )
    source = ri.open_import(io.BytesIO(data), ri.FileFormat.CSV)
    assert source.total == 6
    items = list(ri.check_rows(source.rows, today=TODAY))
    assert _errors(items) == [
        (3, "import.bad_encoding", "broken encoding (not UTF-8)"),
        (4, "import.impossible_date", "impossible date 2001-02-30"),
        (5, "import.duplicate", "duplicate of row 1"),
    ]
    good = [r for r in items if isinstance(r, ri.ResidentRow)]
    assert [(r.row, r.number, r.last_name) for r in good] == [(1, "A1", "Иванов"), (6, "A4", "w")]


def test_semicolons_and_an_optional_language_column() -> None:
    data = _csv("A1;Петров;Иван;;1980-01-01;F;;transferred;en", header=HEADER.replace(",", ";") + ";language")
    [row] = _checked(data)
    assert isinstance(row, ri.ResidentRow)
    assert (row.status, row.language, row.unit) == (ResidentStatus.TRANSFERRED, "en", None)
    [bad] = _checked(_csv("A1,Петров,Иван,,1980-01-01,F,,active,de", header=HEADER + ",language"))
    assert isinstance(bad, ri.RowError)
    assert bad.reason == "unknown language de (use en or ru)"


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        (b"", "import.empty", "The file is empty or does not start with a header line."),
        (b"\xff\xfenumber\n", "import.not_utf8", "The file is not UTF-8 text."),
        (
            b"number,last_name,first_name\n",
            "import.missing_columns",
            "The header lacks the columns middle_name, birth_date, facility, unit, status.",
        ),
        (
            (HEADER + ",cell,\n").encode(),
            "import.unknown_columns",
            'The header has columns that are not part of the format: cell, "".',
        ),
        (
            (HEADER + ",number\n").encode(),
            "import.duplicate_columns",
            "The header names a column more than once: number.",
        ),
    ],
)
def test_a_csv_header_that_cannot_be_read(data: bytes, code: str, message: str) -> None:
    with pytest.raises(ri.UnreadableFile) as caught:
        ri.open_import(io.BytesIO(data), ri.FileFormat.CSV)
    assert caught.value.code == code
    assert caught.value.message % caught.value.params == message


def _resident(**overrides: Any) -> dict[str, Any]:
    base = {
        "number": "J-1",
        "last_name": "Соколова",
        "first_name": "Ольга",
        "middle_name": "",
        "birth_date": "1979-11-30",
        "facility": "F",
        "unit": "U",
        "status": "active",
    }
    return {**base, **overrides}


def test_json_a_list_or_an_object_and_its_bad_items() -> None:
    items = [
        _resident(),
        "not an object",
        _resident(number="J-2", cell="7"),
        _resident(number=17),
        _resident(number="J-3", middle_name=None, language="en"),
        _resident(number="J-4", last_name="@broken@"),
    ]
    for document in (items, {"residents": items}):
        # Bytes that are not UTF-8 inside one value (as a Windows-1251 export would have).
        broken = json.dumps(document, ensure_ascii=False).encode().replace(b"@broken@", b"\xcf\xe5\xf2")
        source = ri.open_import(io.BytesIO(broken), ri.FileFormat.JSON)
        assert source.total == 6
        checked = list(ri.check_rows(source.rows, today=TODAY))
        assert _errors(checked) == [
            (2, "import.not_an_object", "not a JSON object"),
            (3, "import.unknown_field", "unknown field cell"),
            (4, "import.not_a_string", "number must be a string"),
            (6, "import.bad_encoding", "broken encoding (not UTF-8)"),
        ]
        good = [r for r in checked if isinstance(r, ri.ResidentRow)]
        assert [(r.number, r.last_name, r.middle_name, r.language) for r in good] == [
            ("J-1", "Соколова", "", None),
            ("J-3", "Соколова", "", "en"),
        ]


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"[{", "import.bad_json"), (b'{"people": []}', "import.json_shape"), (b"  ", "import.empty")],
)
def test_json_that_cannot_be_read(data: bytes, code: str) -> None:
    with pytest.raises(ri.UnreadableFile) as caught:
        ri.open_import(io.BytesIO(data), ri.FileFormat.JSON)
    assert caught.value.code == code


def test_the_format_comes_from_the_name_then_the_content() -> None:
    assert ri.guess_format("x.JSON", b"number") is ri.FileFormat.JSON
    assert ri.guess_format("x.csv", b"[") is ri.FileFormat.CSV
    assert ri.guess_format("export", b"\xef\xbb\xbf \n[{") is ri.FileFormat.JSON
    assert ri.guess_format("export", b"number,") is ri.FileFormat.CSV


STORED = ri.Stored(
    status=ResidentStatus.ACTIVE,
    facility_id=1,
    unit_id=10,
    last_name="Петров",
    first_name="Иван",
    middle_name="",
    birth_date=date(1985, 5, 5),
    language="ru",
)


def _placed(status: ResidentStatus, facility_id: int | None, unit_id: int | None, **kw: Any) -> ri.PlacedRow:
    row = ri.ResidentRow(
        row=1,
        number="R",
        last_name=kw.get("last_name", "Петров"),
        first_name="Иван",
        middle_name="",
        birth_date=date(1985, 5, 5),
        status=status,
        facility=None if facility_id is None else "code",
        unit=None if unit_id is None else "code",
        language=kw.get("language"),
    )
    return ri.PlacedRow(row, facility_id, unit_id)


A, T, R = ResidentStatus.ACTIVE, ResidentStatus.TRANSFERRED, ResidentStatus.RELEASED


@pytest.mark.parametrize(
    ("placed", "stored", "change", "fields"),
    [
        (_placed(A, 1, 10), STORED, None, {}),
        (_placed(T, 1, 10), STORED, None, {}),
        (_placed(A, 1, 10, language="ru"), STORED, None, {}),
        (_placed(A, 1, 11), STORED, ri.StatusChange.MOVE, {"unit_id": 11}),
        (_placed(A, 2, 20), STORED, ri.StatusChange.TRANSFER, {}),
        (_placed(T, 2, None), STORED, ri.StatusChange.TRANSFER, {}),
        (_placed(T, None, None), STORED, ri.StatusChange.TRANSFER_OUT, {}),
        (_placed(R, None, None), STORED, ri.StatusChange.RELEASE, {}),
        (_placed(R, 2, None), STORED, ri.StatusChange.RELEASE, {"facility_id": 2, "unit_id": None}),
        (_placed(R, None, None), ri.Stored(**{**STORED.__dict__, "status": R}), None, {}),
        (
            _placed(A, 1, 10),
            ri.Stored(**{**STORED.__dict__, "status": T}),
            ri.StatusChange.READMIT,
            {"status": A},
        ),
        (
            _placed(A, 1, 10, last_name="Петрова", language="en"),
            STORED,
            None,
            {"last_name": "Петрова", "language": "en"},
        ),
    ],
    ids=[
        "same",
        "transferred-here-again",
        "same-language",
        "unit",
        "facility",
        "transferred-there",
        "transferred-out",
        "released",
        "released-elsewhere",
        "released-again",
        "readmitted",
        "names",
    ],
)
def test_what_a_row_changes(
    placed: ri.PlacedRow, stored: ri.Stored, change: ri.StatusChange | None, fields: dict[str, Any]
) -> None:
    plan = ri.plan_change(placed, stored)
    assert (plan.change, plan.fields) == (change, fields)
    assert plan.changed is bool(change or fields)


# --- the import on both databases ------------------------------------------------------------------


def _unit(ctx: AppContext, place: Place, code: str) -> int:
    with ctx.db.write() as s:
        unit = HousingUnit(facility_id=place.facility_id, code=code, name=f"Unit {code}")
        s.add(unit)
        s.flush()
        return unit.id


def _code(ctx: AppContext, place: Place) -> str:
    with ctx.db.read() as s:
        return str(
            s.execute(sa.text("SELECT code FROM facility WHERE id = :id"), {"id": place.facility_id}).scalar()
        )


def _import(ctx: AppContext, data: bytes, p: Principal = SYSTEM, **kw: Any) -> ri.ImportResult:
    return ri.import_residents(ctx, p, io.BytesIO(data), ri.FileFormat.CSV, META, **kw)


def _resident_by(ctx: AppContext, number: str) -> Resident:
    with ctx.db.read() as s:
        return s.execute(sa.select(Resident).where(Resident.number == number)).scalar_one()


def _actions(ctx: AppContext) -> list[str]:
    with ctx.db.read() as s:
        return list(s.execute(sa.select(AuditEntry.action).order_by(AuditEntry.seq)).scalars())


def test_good_rows_import_bad_ones_are_reported_and_a_second_run_changes_nothing(ctx: AppContext) -> None:
    place = make_facility(ctx)
    f = _code(ctx, place)
    _unit(ctx, place, "U2")
    data = _csv(
        f"N-1,Ёлкина,Анна,Петровна,1990-01-02,{f},U1,active",
        f"N-2,Смирнов,Олег,,2001-02-30,{f},U1,active",
        f"N-3,Кузнецов,Пётр,Ильич,1980-05-05,{f},U1,active",
        "N-4,Попов,Илья,,1975-07-07,NOWHERE,U1,active",
        f"N-5,Васильев,Антон,,1970-01-01,{f},U9,active",
        f"N-6,Новикова,Вера,,1991-03-03,{f},U2,released",
        f"N-1,Ёлкина,Анна,Петровна,1990-01-02,{f},U1,active",
        f"N-7,Морозов,Глеб,,1988-08-08,{f},,transferred",
        "N-8,Лебедев,Марк,,1988-08-08,,,released",
    )
    progress: list[tuple[int, int | None]] = []
    source = ri.open_import(io.BytesIO(data), ri.FileFormat.CSV)
    first = ri.import_file(
        ctx,
        SYSTEM,
        source,
        META,
        batch_size=2,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    # After each batch (rows 3 and 8), whenever two rows went by without one, and at the end.
    assert progress == [(2, 9), (3, 9), (5, 9), (7, 9), (8, 9), (9, 9)]
    assert first.summary() == "imported 4, updated 0, unchanged 0, rejected 5"
    assert [(e.row, e.reason) for e in first.errors] == [
        (2, "impossible date 2001-02-30"),
        (4, "unknown facility NOWHERE"),
        (5, f"unknown unit U9 in facility {f}"),
        (7, "duplicate of row 1"),
        (9, "missing facility"),
    ]
    elkina = _resident_by(ctx, "N-1")
    assert (elkina.last_name, elkina.first_name, elkina.middle_name) == ("Ёлкина", "Анна", "Петровна")
    assert (elkina.pin_hash, elkina.language, elkina.status) == (None, "ru", ResidentStatus.ACTIVE)
    assert _resident_by(ctx, "N-6").status is ResidentStatus.RELEASED
    assert (_resident_by(ctx, "N-7").status, _resident_by(ctx, "N-7").unit_id) == (
        ResidentStatus.ACTIVE,
        None,
    )
    # Two good rows a batch: N-1 and N-3, then N-6 and N-7, each batch one entry for the facility.
    with ctx.db.read() as s:
        entries = (
            s.execute(
                sa.select(AuditEntry)
                .where(AuditEntry.action == "residents.imported")
                .order_by(AuditEntry.seq)
            )
            .scalars()
            .all()
        )
    assert [(e.facility_id, e.after["created_numbers"] if e.after else None) for e in entries] == [
        (place.facility_id, ["N-1", "N-3"]),
        (place.facility_id, ["N-6", "N-7"]),
    ]
    before = _actions(ctx)
    second = _import(ctx, data, batch_size=2)
    assert second.summary() == "imported 0, updated 0, unchanged 4, rejected 5"
    assert _actions(ctx) == before, "an import that changes nothing writes nothing"
    renamed = _import(ctx, _csv(f"N-3,Кузнецов,Пётр,Ильич,1980-05-06,{f},U1,active"))
    assert renamed.summary() == "imported 0, updated 1, unchanged 0, rejected 0"
    assert _resident_by(ctx, "N-3").birth_date == date(1980, 5, 6)


@dataclass
class World:
    place: Place
    other: Place
    resident_id: int
    number: str
    visit_id: int


def _krs(day: date, hh: int) -> datetime:
    return datetime.combine(day, time(hh), tzinfo=UTC) - timedelta(hours=7)


@pytest.fixture
def world(ctx: AppContext) -> World:
    """A resident with an approved visit on Wednesday, and a second facility to transfer to."""
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, number = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    booked = scheduling.book_visit(
        ctx,
        principal_of(ctx, email),
        BookingRequest(resident_id=resident_id, starts_at=_krs(date(2026, 3, 4), 9)),
        META,
    )
    return World(place, make_facility(ctx), resident_id, number, booked.visit.id)


def _row(ctx: AppContext, w: World, place: Place | None, unit: str, status: str) -> bytes:
    facility = _code(ctx, place) if place else ""
    return _csv(f"{w.number},Петров,Иван,Сергеевич,1985-05-05,{facility},{unit},{status}")


def _visit(ctx: AppContext, visit_id: int) -> Visit:
    with ctx.db.read() as s:
        visit = s.get(Visit, visit_id)
        assert visit is not None
        return visit


def test_a_transfer_cancels_future_visits_and_offers_rebooking(ctx: AppContext, world: World) -> None:
    assert _import(ctx, _row(ctx, world, world.place, "U1", "active")).unchanged == 1
    result = _import(ctx, _row(ctx, world, world.other, "U1", "transferred"))
    assert (result.updated, result.visits_cancelled, result.rejected) == (1, 1, 0)
    visit = _visit(ctx, world.visit_id)
    assert (visit.status, visit.reason) == (VisitStatus.CANCELLED, "resident_transferred")
    resident = _resident_by(ctx, world.number)
    assert (resident.facility_id, resident.unit_id, resident.status) == (
        world.other.facility_id,
        world.other.unit_id,
        ResidentStatus.ACTIVE,
    )
    assert resident.pin_hash is not None, "an import never touches the PIN"
    assert "resident.transferred" in _actions(ctx)
    again = _import(ctx, _row(ctx, world, world.other, "U1", "transferred"))
    assert again.summary() == "imported 0, updated 0, unchanged 1, rejected 0"


def test_a_release_cancels_future_visits(ctx: AppContext, world: World) -> None:
    result = _import(ctx, _row(ctx, world, None, "", "released"))
    assert (result.updated, result.visits_cancelled) == (1, 1)
    visit = _visit(ctx, world.visit_id)
    assert (visit.status, visit.reason) == (VisitStatus.CANCELLED, "resident_released")
    assert _resident_by(ctx, world.number).status is ResidentStatus.RELEASED
    assert _actions(ctx)[-2:] == ["resident.released", "residents.imported"]


def test_moves_between_units_transfers_out_and_readmission_are_audited(ctx: AppContext, world: World) -> None:
    u2 = _unit(ctx, world.place, "U2")
    moved = _import(ctx, _row(ctx, world, world.place, "U2", "active"))
    # The visit was booked on a kiosk of the old unit: taking the resident there would need an escort.
    assert (moved.updated, moved.visits_cancelled) == (1, 1)
    assert _resident_by(ctx, world.number).unit_id == u2
    visit = _visit(ctx, world.visit_id)
    assert (visit.status, visit.reason) == (VisitStatus.CANCELLED, "resident_moved")
    with ctx.db.read() as s:
        entry = s.execute(sa.select(AuditEntry).where(AuditEntry.action == "resident.moved")).scalar_one()
    assert (entry.object_id, entry.before, entry.after) == (
        str(world.resident_id),
        {"status": "active", "facility_id": world.place.facility_id, "unit_id": world.place.unit_id},
        {"status": "active", "facility_id": world.place.facility_id, "unit_id": u2},
    )
    out = _import(ctx, _row(ctx, world, None, "", "transferred"))
    assert (out.updated, out.visits_cancelled) == (1, 0)
    resident = _resident_by(ctx, world.number)
    assert (resident.status, resident.facility_id, resident.unit_id) == (
        ResidentStatus.TRANSFERRED,
        world.place.facility_id,
        u2,
    )
    back = _import(ctx, _row(ctx, world, world.place, "U1", "active"))
    assert back.updated == 1
    resident = _resident_by(ctx, world.number)
    assert (resident.status, resident.unit_id) == (ResidentStatus.ACTIVE, world.place.unit_id)
    assert _actions(ctx)[-2:] == ["resident.readmitted", "residents.imported"]


def test_a_facility_admin_imports_only_their_own_facility(ctx: AppContext, world: World) -> None:
    ours, theirs = _code(ctx, world.place), _code(ctx, world.other)
    their_id, their_number = make_resident(ctx, world.other)
    email, _ = make_staff(ctx, Role.FACILITY_ADMIN, facility_id=world.place.facility_id)
    admin = principal_of(ctx, email)
    data = _csv(
        f"M-1,Орлова,Нина,,1990-01-01,{ours},U1,active",
        f"M-2,Зайцев,Лев,,1990-01-01,{theirs},U1,active",
        f"{their_number},Петров,Иван,Сергеевич,1985-05-05,{ours},U1,active",
        f"{world.number},Петров,Иван,Сергеевич,1985-05-05,{theirs},U1,active",
        f"{world.number.replace('R', 'Q')},Петров,Иван,Сергеевич,1985-05-05,{ours},U1,active",
    )
    result = _import(ctx, data, admin)
    assert result.summary() == "imported 2, updated 0, unchanged 0, rejected 3"
    assert [(e.row, e.code, e.reason) for e in result.errors] == [
        (r, "import.facility_not_yours", "facility not yours") for r in (2, 3, 4)
    ]
    assert _resident_by(ctx, their_number).facility_id == world.other.facility_id
    assert _visit(ctx, world.visit_id).status is VisitStatus.APPROVED
    email, _ = make_staff(ctx, Role.SCHEDULER, facility_id=world.place.facility_id)
    with pytest.raises(Forbidden):
        _import(ctx, data, principal_of(ctx, email))
    everything = _import(ctx, data, principal_of(ctx, make_staff(ctx, Role.SYSTEM_ADMIN)[0]))
    assert everything.summary() == "imported 1, updated 2, unchanged 2, rejected 0"
    assert their_id != world.resident_id


class _BreaksAfter(io.BytesIO):
    """A file whose reading fails after `lines` lines, as when a disk or a connection goes."""

    def __init__(self, data: bytes, lines: int) -> None:
        super().__init__(data)
        self.lines = lines

    def __iter__(self) -> Iterator[bytes]:
        for n, line in enumerate(io.BytesIO(self.getvalue())):
            if n >= self.lines:
                raise OSError("the disk went away")
            yield line


def test_a_crash_keeps_whole_batches_and_the_same_file_then_finishes_the_job(ctx: AppContext) -> None:
    f = _code(ctx, make_facility(ctx))
    data = _csv(*(f"C-{i},Фёдоров,Фёдор,,1980-01-01,{f},U1,active" for i in range(1, 8)))
    with pytest.raises(OSError, match="the disk went away"):
        ri.import_residents(ctx, SYSTEM, _BreaksAfter(data, 6), ri.FileFormat.CSV, META, batch_size=2)
    with ctx.db.read() as s:
        stored = s.execute(sa.select(Resident.number).order_by(Resident.number)).scalars().all()
    assert stored == ["C-1", "C-2", "C-3", "C-4"], "the two whole batches stay, the half one is gone"
    assert _import(ctx, data, batch_size=2).summary() == "imported 3, updated 0, unchanged 4, rejected 0"


# --- the command line --------------------------------------------------------------------------------


def _cli(db_url: str, tmp_path: Path, *args: str) -> Result:
    env = {
        "OPENVISIT_DATABASE_URL": db_url,
        "OPENVISIT_MODE": "test",
        "OPENVISIT_SECRET_KEY": TEST_SECRET,
        "OPENVISIT_VAR_DIR": str(tmp_path / "var"),
    }
    return runner.invoke(app, ["import", "residents", *args], env=env)


def test_the_command_reports_each_bad_row_then_the_summary_and_exits_1(
    ctx: AppContext, db_url: str, tmp_path: Path
) -> None:
    f = _code(ctx, make_facility(ctx))
    path = tmp_path / "export.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + _csv(
            f"K-1,Ёлкина,Анна,Петровна,1990-01-02,{f},U1,active",
            f",Смирнов,Олег,,1980-01-01,{f},U1,active",
            f"K-2,Кузнецов,Пётр,Ильич,2001-02-30,{f},U1,active",
            f"K-3,Попов,Илья,,1975-07-07,{f},U1,escaped",
            f"K-1,Ёлкина,Анна,Петровна,1990-01-02,{f},U1,active",
        )
        + b"K-4,\xcf\xe5\xf2\xf0\xee\xe2,x,,1980-01-01,"
        + f.encode()
        + b",U1,active\n"
        + f"K-5,Соколова,Ольга,,1979-11-30,{f},U1,active\n".encode()
    )
    result = _cli(db_url, tmp_path, str(path))
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "row 2: missing number",
        "row 3: impossible date 2001-02-30",
        "row 4: unknown status escaped (use active, transferred or released)",
        "row 5: duplicate of row 1",
        "row 6: broken encoding (not UTF-8)",
        "imported 2, updated 0, unchanged 0, rejected 5",
    ]
    assert result.output.splitlines()[-1] == "imported 2, updated 0, unchanged 0, rejected 5"
    assert _resident_by(ctx, "K-5").last_name == "Соколова"


def test_the_command_exits_0_when_every_row_imports_and_cyrillic_round_trips(
    ctx: AppContext, db_url: str, tmp_path: Path
) -> None:
    f = _code(ctx, make_facility(ctx))
    names = [("Ёлкина-Щукина", "Анна-Мария", "Д'Артаньян-оглы"), ("Шайхутдинов", "Рүстәм", "Ғабдулла улы")]
    rows = [
        {
            **_resident(number=f"Ж-{i}", facility=f, unit="U1"),
            "last_name": last,
            "first_name": first,
            "middle_name": middle,
        }
        for i, (last, first, middle) in enumerate(names, start=1)
    ]
    as_json = tmp_path / "export.json"
    as_json.write_text(json.dumps({"residents": rows}, ensure_ascii=False), encoding="utf-8")
    result = _cli(db_url, tmp_path, str(as_json))
    assert (result.exit_code, result.output) == (0, "imported 2, updated 0, unchanged 0, rejected 0\n")
    for row in rows:
        stored = _resident_by(ctx, row["number"])
        assert (stored.last_name, stored.first_name, stored.middle_name) == (
            row["last_name"],
            row["first_name"],
            row["middle_name"],
        )
    # The same people as CSV, without a telling name: nothing to change.
    as_csv = tmp_path / "export"
    as_csv.write_bytes(_csv(*(",".join(r[c] for c in ri.REQUIRED_COLUMNS) for r in rows)))
    again = _cli(db_url, tmp_path, str(as_csv))
    assert (again.exit_code, again.output) == (0, "imported 0, updated 0, unchanged 2, rejected 0\n")


def test_the_command_exits_2_with_one_line_when_the_file_cannot_be_read(
    ctx: AppContext, db_url: str, tmp_path: Path
) -> None:
    (tmp_path / "header.csv").write_bytes(b"number,name\nA-1,x\n")
    (tmp_path / "broken.json").write_bytes(b'[{"number": ')
    unknown = "error: import.unknown_columns: The header has columns that are not part of the format: name."
    cases = [
        (tmp_path / "missing.csv", "error: import.unreadable: "),
        (tmp_path, "error: import.unreadable: "),
        (tmp_path / "header.csv", unknown),
        (tmp_path / "broken.json", "error: import.bad_json: The file is not valid JSON (line 1, column 13)."),
    ]
    for path, line in cases:
        result = _cli(db_url, tmp_path, str(path))
        assert result.exit_code == 2, result.output
        assert len(result.output.splitlines()) == 1
        assert result.output.startswith(line), result.output
    assert _cli(db_url, tmp_path, "--format", "xml", str(tmp_path / "header.csv")).exit_code == 2
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Resident)).scalar_one() == 0


def test_the_command_has_help() -> None:
    result = runner.invoke(app, ["import", "residents", "--help"], env={"OPENVISIT_MODE": "production"})
    assert result.exit_code == 0
    assert "Usage: openvisit import residents" in result.output
    assert "--format" in result.output


# --- the API ----------------------------------------------------------------------------------------------


def _bearer(
    client: TestClient, ctx: AppContext, clock: FrozenClock, role: Role, facility_id: int | None
) -> dict[str, str]:
    email, secret = make_staff(ctx, role, facility_id=facility_id)
    assert secret
    return {"Authorization": f"Bearer {api_token(client, email, totp=totp_now(secret, clock()))}"}


def test_the_api_imports_csv_and_json_and_says_which_rows_it_refused(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    ours, theirs = make_facility(ctx), make_facility(ctx)
    f, g = _code(ctx, ours), _code(ctx, theirs)
    admin = _bearer(client, ctx, clock, Role.FACILITY_ADMIN, ours.facility_id)
    body = _csv(
        f"W-1,Ёлкина,Анна,,1990-01-02,{f},U1,active",
        f"W-2,Смирнов,Олег,,1990-01-02,{g},U1,active",
        f"W-3,Кузнецов,Пётр,,2001-02-30,{f},U1,active",
    )
    r = client.post(
        "/api/v1/residents/import", content=body, headers={**admin, "Content-Type": "text/csv; charset=utf-8"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "imported": 1,
        "updated": 0,
        "unchanged": 0,
        "rejected": 2,
        "complete": False,
        "summary": "imported 1, updated 0, unchanged 0, rejected 2",
        "visits_cancelled": 0,
        "errors": [
            {"row": 2, "code": "import.facility_not_yours", "reason": "facility not yours"},
            {"row": 3, "code": "import.impossible_date", "reason": "impossible date 2001-02-30"},
        ],
    }
    people = [
        _resident(
            number="W-1",
            facility=f,
            unit="U1",
            last_name="Ёлкина",
            first_name="Анна",
            birth_date="1990-01-02",
        )
    ]
    r = client.post(
        "/api/v1/residents/import",
        content=json.dumps(people, ensure_ascii=False).encode(),
        headers={**admin, "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()["unchanged"], r.json()["complete"]) == (200, 1, True)
    listed = client.get("/api/v1/residents", params={"q": "W-1"}, headers=admin).json()["items"]
    assert [(p["last_name"], p["first_name"]) for p in listed] == [("Ёлкина", "Анна")]


def test_the_api_refuses_what_it_cannot_read_and_who_may_not_import(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    admin = _bearer(client, ctx, clock, Role.SYSTEM_ADMIN, None)
    url = "/api/v1/residents/import"
    cases: list[tuple[bytes, str, dict[str, str], int, str]] = [
        (b"number,name\n", "text/csv", admin, 400, "import.unknown_columns"),
        (b"[{", "application/json", admin, 400, "import.bad_json"),
        (b"", "text/csv", admin, 400, "import.empty"),
        (HEADER.encode(), "text/csv; charset=windows-1251", admin, 400, "import.not_utf8"),
        (HEADER.encode(), "text/plain", admin, 415, "request.unsupported_media_type"),
        (HEADER.encode(), "text/csv", {}, 401, "auth.required"),
        (
            HEADER.encode(),
            "text/csv",
            _bearer(client, ctx, clock, Role.SCHEDULER, place.facility_id),
            403,
            "import.forbidden",
        ),
    ]
    for body, content_type, headers, status, code in cases:
        r = client.post(url, content=body, headers={**headers, "Content-Type": content_type})
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    r = client.post(url, content=HEADER.encode() + b"\n", headers={**admin, "Content-Type": "text/csv"})
    assert (r.status_code, r.json()["summary"], r.json()["complete"]) == (
        200,
        "imported 0, updated 0, unchanged 0, rejected 0",
        True,
    )
    # Reasons and the summary come in the caller's language.
    with ctx.db.write() as s:
        s.execute(sa.update(UserAccount).where(UserAccount.kind == AccountKind.STAFF).values(language="ru"))
    body = _csv(f"X-1,Ёлкина,Анна,,2001-02-30,{_code(ctx, place)},U1,active")
    r = client.post(url, content=body, headers={**admin, "Content-Type": "text/csv"})
    assert (r.json()["summary"], r.json()["errors"]) == (
        "импортировано 0, обновлено 0, без изменений 0, отклонено 1",
        [{"row": 1, "code": "import.impossible_date", "reason": "невозможная дата 2001-02-30"}],
    )
