"""Importing residents from the prison's records: a CSV or JSON file (the format is in README.md,
"Importing residents"), upserted by resident number.

Reading and checking need no database: `open_import` reads the header (or the whole JSON), `check_rows`
checks each row and reports duplicate numbers, `resolve_places` finds the facility and unit, and
`plan_change` decides what a row changes in a stored resident. `import_file` then writes in batches of
BATCH_SIZE rows, one transaction each, so a crash leaves whole batches committed and running the same
file again changes nothing. Transfers and releases go through scheduling.apply_resident_status, which
cancels the resident's future visits and audits the change as when staff make it by hand."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any, BinaryIO, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import Facility, HousingUnit, Resident
from openvisit.domain.enums import ActorKind, ResidentStatus, Role
from openvisit.domain.errors import N_, Forbidden, InvalidInput
from openvisit.domain.principal import Principal
from openvisit.services import audit
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import apply_resident_status, cancel_visits_left_behind
from openvisit.services.users import LANGUAGES

REQUIRED_COLUMNS: tuple[str, ...] = (
    "number",
    "last_name",
    "first_name",
    "middle_name",
    "birth_date",
    "facility",
    "unit",
    "status",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("language",)
COLUMNS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS

BATCH_SIZE = 1000
"""Rows per transaction: large enough to be fast, small enough that a batch's locks and memory stay small."""
DEFAULT_LANGUAGE = "ru"
"""A new resident's language when the file does not say (the column's default in the data model)."""
EARLIEST_BIRTH_DATE = date(1900, 1, 1)
NUMBER_LIMIT = 32
NAME_LIMIT = 120
CODE_LIMIT = 32

_BOM = b"\xef\xbb\xbf"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A JSON file is decoded with surrogateescape, which turns each byte that is not UTF-8 into a lone
# surrogate; finding one in a value marks that row's encoding as broken while the others still import.
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_DELIMITERS = (",", ";", "\t")


class FileFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class UnreadableFile(InvalidInput):
    """The file as a whole cannot be read (no header, unknown columns, not JSON): nothing is imported."""

    default_code = "import.unreadable"
    default_message = N_("The file cannot be read.")


@dataclass(frozen=True)
class RowError:
    """A rejected row: its number (data rows count from 1 after the header; JSON items from 1), a stable
    code and an English message (a msgid) with its parameters."""

    row: int
    code: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The message in English with its parameters filled in."""
        return self.message % self.params if self.params else self.message


@dataclass(frozen=True)
class RawRow:
    """A row as read: its number and each column's value, trimmed ("" when empty or absent)."""

    row: int
    values: dict[str, str]


@dataclass(frozen=True)
class ResidentRow:
    """A row that passed every check that needs no database."""

    row: int
    number: str
    last_name: str
    first_name: str
    middle_name: str
    birth_date: date
    status: ResidentStatus
    facility: str | None
    """The facility's code; None (only with transferred or released) keeps the stored facility."""
    unit: str | None
    """The housing unit's code in that facility; None means no unit."""
    language: str | None
    """None keeps the stored language (a new resident gets DEFAULT_LANGUAGE)."""


@dataclass(frozen=True)
class ImportFile:
    """An opened import file whose header (or whole JSON document) has been read."""

    format: FileFormat
    rows: Iterator[RawRow | RowError]
    total: int | None
    """How many data rows there are (CSV: lines after the header, blank ones included), for progress."""


# --- reading a file -------------------------------------------------------------------------------


def guess_format(name: str, head: bytes) -> FileFormat:
    """JSON for a .json name or content that starts with [ or {; otherwise CSV."""
    lowered = name.lower()
    if lowered.endswith(".json"):
        return FileFormat.JSON
    if lowered.endswith(".csv"):
        return FileFormat.CSV
    start = head.removeprefix(_BOM).lstrip()
    return FileFormat.JSON if start[:1] in (b"[", b"{") else FileFormat.CSV


def _unreadable(code: str, message: str, **params: Any) -> UnreadableFile:
    return UnreadableFile(code, message, params=params)


def _check_header(names: list[str]) -> None:
    twice = sorted(name for name, count in Counter(names).items() if count > 1)
    if twice:
        raise _unreadable(
            "import.duplicate_columns",
            N_("The header names a column more than once: %(columns)s."),
            columns=", ".join(twice),
        )
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise _unreadable(
            "import.unknown_columns",
            N_("The header has columns that are not part of the format: %(columns)s."),
            columns=", ".join(name or '""' for name in unknown),
        )
    missing = [n for n in REQUIRED_COLUMNS if n not in names]
    if missing:
        raise _unreadable(
            "import.missing_columns",
            N_("The header lacks the columns %(columns)s."),
            columns=", ".join(missing),
        )


def read_csv(lines: Iterable[bytes]) -> Iterator[RawRow | RowError]:
    """The rows of a CSV file given as lines of bytes; reads and checks the header at once (raising
    UnreadableFile) and each data line only when asked. One record per line: each line is decoded on
    its own, so a line that is not UTF-8 rejects that row alone."""
    source = iter(lines)
    first = next(source, None)
    if first is None or not first.strip():
        raise _unreadable("import.empty", N_("The file is empty or does not start with a header line."))
    try:
        header_text = first.removeprefix(_BOM).rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        raise _unreadable("import.not_utf8", N_("The file is not UTF-8 text.")) from None
    # Spreadsheets set up for Russian write semicolons; the header shows which separator the file uses.
    delimiter = next((d for d in _DELIMITERS if d in header_text), ",")
    try:
        names = [n.strip().lower() for n in next(csv.reader([header_text], delimiter=delimiter, strict=True))]
    except csv.Error:
        raise _unreadable("import.bad_header", N_("The header line is not valid CSV.")) from None
    _check_header(names)
    return _csv_records(source, names, delimiter)


def _csv_records(source: Iterator[bytes], names: list[str], delimiter: str) -> Iterator[RawRow | RowError]:
    for row, raw in enumerate(source, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            yield RowError(row, "import.bad_encoding", N_("broken encoding (not UTF-8)"))
            continue
        try:
            cells = next(csv.reader([text], delimiter=delimiter, strict=True))
        except csv.Error:
            yield RowError(row, "import.bad_line", N_("not a valid CSV line (is a quote left open?)"))
            continue
        if len(cells) != len(names):
            yield RowError(
                row,
                "import.column_count",
                N_("wrong number of columns: expected %(expected)d, found %(found)d"),
                {"expected": len(names), "found": len(cells)},
            )
            continue
        yield RawRow(row, {name: cell.strip() for name, cell in zip(names, cells, strict=True)})


def read_json(data: bytes) -> tuple[int, Iterator[RawRow | RowError]]:
    """The rows of a JSON document: a list of objects with the CSV's column names as keys, or an object
    whose "residents" is that list. Returns how many items there are and the rows; raises UnreadableFile."""
    body = data.removeprefix(_BOM)
    if not body.strip():
        raise _unreadable("import.empty", N_("The file is empty."))
    try:
        document = json.loads(body.decode("utf-8", "surrogateescape"))
    except json.JSONDecodeError as exc:
        raise _unreadable(
            "import.bad_json",
            N_("The file is not valid JSON (line %(line)d, column %(column)d)."),
            line=exc.lineno,
            column=exc.colno,
        ) from None
    items = document.get("residents") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise _unreadable(
            "import.json_shape",
            N_('The JSON must be a list of residents, or an object with a "residents" list.'),
        )
    return len(items), _json_records(items)


def _json_records(items: list[Any]) -> Iterator[RawRow | RowError]:
    for row, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield RowError(row, "import.not_an_object", N_("not a JSON object"))
            continue
        if any(_SURROGATE.search(key) for key in item) or any(
            isinstance(v, str) and _SURROGATE.search(v) for v in item.values()
        ):
            yield RowError(row, "import.bad_encoding", N_("broken encoding (not UTF-8)"))
            continue
        unknown = sorted(key for key in item if key not in COLUMNS)
        if unknown:
            yield RowError(row, "import.unknown_field", N_("unknown field %(field)s"), {"field": unknown[0]})
            continue
        wrong = next((k for k in COLUMNS if item.get(k) is not None and not isinstance(item[k], str)), None)
        if wrong is not None:
            yield RowError(row, "import.not_a_string", N_("%(field)s must be a string"), {"field": wrong})
            continue
        yield RawRow(row, {key: (item.get(key) or "").strip() for key in COLUMNS})


def _count_lines(stream: BinaryIO) -> int | None:
    """Data lines in a seekable stream (everything after the header), then back to the start."""
    if not stream.seekable():
        return None
    start = stream.tell()
    lines, last = 0, b"\n"
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    stream.seek(start)
    if last != b"\n":
        lines += 1  # the last line has no line break
    return max(0, lines - 1)


def open_import(stream: BinaryIO, fmt: FileFormat) -> ImportFile:
    """Read the header of a CSV stream (the rows are read as they are imported) or the whole JSON;
    raises UnreadableFile when the file as a whole cannot be read."""
    if fmt is FileFormat.JSON:
        items, rows = read_json(stream.read())
        return ImportFile(fmt, rows, items)
    lines = _count_lines(stream)
    return ImportFile(fmt, read_csv(stream), lines)


# --- checking a row -------------------------------------------------------------------------------


_LIMITS = dict.fromkeys(COLUMNS, NAME_LIMIT) | {
    "number": NUMBER_LIMIT,
    "facility": CODE_LIMIT,
    "unit": CODE_LIMIT,
    "language": 8,
}


def _text_problem(row: int, values: Mapping[str, str]) -> RowError | None:
    # One search over all the values: nearly every row is clean, and this runs for each of them.
    if _CONTROL.search("".join(values.values())):
        name = next(n for n in COLUMNS if _CONTROL.search(values.get(n, "")))
        return RowError(
            row, "import.control_characters", N_("%(field)s has control characters"), {"field": name}
        )
    for name in COLUMNS:
        if len(values.get(name, "")) > _LIMITS[name]:
            return RowError(
                row,
                "import.too_long",
                N_("%(field)s is longer than %(limit)d characters"),
                {"field": name, "limit": _LIMITS[name]},
            )
    return None


def check_birth_date(row: int, value: str, *, today: date) -> date | RowError:
    """An ISO date (YYYY-MM-DD) that exists, from 1900 on and not after `today`."""
    if not value:
        return RowError(row, "import.missing", N_("missing %(field)s"), {"field": "birth_date"})
    if not _DATE.fullmatch(value):
        return RowError(
            row, "import.date_format", N_("birth date %(value)s is not written YYYY-MM-DD"), {"value": value}
        )
    try:
        born = date(int(value[:4]), int(value[5:7]), int(value[8:]))
    except ValueError:
        return RowError(row, "import.impossible_date", N_("impossible date %(value)s"), {"value": value})
    if born < EARLIEST_BIRTH_DATE:
        return RowError(
            row, "import.date_too_early", N_("birth date %(value)s is before 1900"), {"value": value}
        )
    if born > today:
        return RowError(
            row, "import.future_date", N_("birth date %(value)s is in the future"), {"value": value}
        )
    return born


def check_row(raw: RawRow, *, today: date) -> ResidentRow | RowError:
    """One row's values checked without the database: the first problem found, or the row."""
    row, values = raw.row, raw.values
    number = values.get("number", "")
    if not number:
        return RowError(row, "import.missing_number", N_("missing number"))
    problem = _text_problem(row, values)
    if problem is not None:
        return problem
    for name in ("last_name", "first_name"):
        if not values.get(name):
            return RowError(row, "import.missing", N_("missing %(field)s"), {"field": name})
    born = check_birth_date(row, values.get("birth_date", ""), today=today)
    if isinstance(born, RowError):
        return born
    status_text = values.get("status", "").lower()
    if not status_text:
        return RowError(row, "import.missing", N_("missing %(field)s"), {"field": "status"})
    try:
        status = ResidentStatus(status_text)
    except ValueError:
        return RowError(
            row,
            "import.unknown_status",
            N_("unknown status %(value)s (use active, transferred or released)"),
            {"value": values["status"]},
        )
    facility = values.get("facility") or None
    unit = values.get("unit") or None
    # Without a facility a row can only say that the resident left: transferred out of OpenVisit, or released.
    if facility is None and status is ResidentStatus.ACTIVE:
        return RowError(row, "import.missing", N_("missing %(field)s"), {"field": "facility"})
    if facility is None and unit is not None:
        return RowError(row, "import.unit_without_facility", N_("a unit is given without its facility"))
    language = values.get("language") or None
    if language is not None and language not in LANGUAGES:
        return RowError(
            row,
            "import.unknown_language",
            N_("unknown language %(value)s (use %(languages)s)"),
            {"value": language, "languages": " or ".join(LANGUAGES)},
        )
    return ResidentRow(
        row=row,
        number=number,
        last_name=values["last_name"],
        first_name=values["first_name"],
        middle_name=values.get("middle_name", ""),
        birth_date=born,
        status=status,
        facility=facility,
        unit=unit,
        language=language,
    )


def check_rows(rows: Iterable[RawRow | RowError], *, today: date) -> Iterator[ResidentRow | RowError]:
    """Each row checked; a number met again is rejected as a duplicate of the row that had it first,
    whether or not that row was good (the file is ambiguous about that resident either way)."""
    first_row: dict[str, int] = {}
    for raw in rows:
        if isinstance(raw, RowError):
            yield raw
            continue
        number = raw.values.get("number", "")
        if number:
            seen = first_row.setdefault(number, raw.row)
            if seen != raw.row:
                yield RowError(raw.row, "import.duplicate", N_("duplicate of row %(row)d"), {"row": seen})
                continue
        yield check_row(raw, today=today)


# --- places and what a row changes ------------------------------------------------------------------


@dataclass(frozen=True)
class Places:
    """Facilities by code and housing units by (facility id, code): everything a row may name."""

    facilities: Mapping[str, int]
    units: Mapping[tuple[int, str], int]


@dataclass(frozen=True)
class PlacedRow:
    """A checked row with its facility and unit found (None where the row names none)."""

    resident: ResidentRow
    facility_id: int | None
    unit_id: int | None


def resolve_places(row: ResidentRow, places: Places) -> PlacedRow | RowError:
    """The row's facility and unit codes as ids, or the row rejected for naming one we do not have."""
    if row.facility is None:
        return PlacedRow(row, None, None)
    facility_id = places.facilities.get(row.facility)
    if facility_id is None:
        return RowError(
            row.row, "import.unknown_facility", N_("unknown facility %(value)s"), {"value": row.facility}
        )
    if row.unit is None:
        return PlacedRow(row, facility_id, None)
    unit_id = places.units.get((facility_id, row.unit))
    if unit_id is None:
        return RowError(
            row.row,
            "import.unknown_unit",
            N_("unknown unit %(unit)s in facility %(facility)s"),
            {"unit": row.unit, "facility": row.facility},
        )
    return PlacedRow(row, facility_id, unit_id)


class StatusChange(StrEnum):
    """What a row does to a stored resident besides plain field changes."""

    TRANSFER = "transfer"
    """To another facility on OpenVisit (apply_resident_status: active there, future visits cancelled)."""
    TRANSFER_OUT = "transfer_out"
    """Out of OpenVisit (apply_resident_status: status transferred, future visits cancelled)."""
    RELEASE = "release"
    """apply_resident_status: status released, future visits cancelled."""
    READMIT = "readmit"
    """Active again in the facility they left; audited on its own."""
    MOVE = "move"
    """To another housing unit of the same facility; audited on its own."""


@dataclass(frozen=True)
class Stored:
    """What a plan compares of a stored resident."""

    status: ResidentStatus
    facility_id: int
    unit_id: int | None
    last_name: str
    first_name: str
    middle_name: str
    birth_date: date
    language: str


@dataclass(frozen=True)
class Plan:
    """What importing a row changes: a status change (or None) and the columns to set besides it."""

    change: StatusChange | None
    fields: dict[str, Any]
    facility_id: int
    """The resident's facility afterwards."""
    unit_id: int | None
    """The resident's housing unit afterwards."""

    @property
    def changed(self) -> bool:
        return self.change is not None or bool(self.fields)


def plan_change(placed: PlacedRow, stored: Stored) -> Plan:
    """Compare a row with the stored resident. A row naming another facility (status active, or
    transferred: "now held there") moves the resident there; status transferred without a facility
    means transferred out of OpenVisit; released releases."""
    row = placed.resident
    fields: dict[str, Any] = {}
    change: StatusChange | None = None
    if row.status is ResidentStatus.ACTIVE or (
        row.status is ResidentStatus.TRANSFERRED and placed.facility_id is not None
    ):
        assert placed.facility_id is not None, "check_row requires a facility for an active resident"
        facility_id, unit_id = placed.facility_id, placed.unit_id
        if facility_id != stored.facility_id:
            change = StatusChange.TRANSFER
        elif stored.status is not ResidentStatus.ACTIVE:
            change = StatusChange.READMIT
            fields["status"] = ResidentStatus.ACTIVE
        elif unit_id != stored.unit_id:
            change = StatusChange.MOVE
        if change in (StatusChange.READMIT, StatusChange.MOVE) and unit_id != stored.unit_id:
            fields["unit_id"] = unit_id
    else:
        if placed.facility_id is None:
            facility_id, unit_id = stored.facility_id, stored.unit_id
        else:
            facility_id, unit_id = placed.facility_id, placed.unit_id
        if row.status is not stored.status:
            change = (
                StatusChange.RELEASE if row.status is ResidentStatus.RELEASED else StatusChange.TRANSFER_OUT
            )
        # Where a person who left was last held is a record, not a move: set after the status change.
        if facility_id != stored.facility_id:
            fields["facility_id"] = facility_id
        if unit_id != stored.unit_id:
            fields["unit_id"] = unit_id
    for name in ("last_name", "first_name", "middle_name", "birth_date"):
        if getattr(row, name) != getattr(stored, name):
            fields[name] = getattr(row, name)
    if row.language is not None and row.language != stored.language:
        fields["language"] = row.language
    return Plan(change, fields, facility_id, unit_id)


def new_resident(placed: PlacedRow) -> dict[str, Any] | RowError:
    """The columns of a resident the file brings for the first time. No PIN: staff set it later."""
    row = placed.resident
    if placed.facility_id is None:
        return RowError(row.row, "import.missing", N_("missing %(field)s"), {"field": "facility"})
    return {
        "number": row.number,
        "last_name": row.last_name,
        "first_name": row.first_name,
        "middle_name": row.middle_name,
        "birth_date": row.birth_date,
        "facility_id": placed.facility_id,
        "unit_id": placed.unit_id,
        # Transferred with a facility means held there now: the resident is active in it.
        "status": ResidentStatus.RELEASED if row.status is ResidentStatus.RELEASED else ResidentStatus.ACTIVE,
        "language": row.language or DEFAULT_LANGUAGE,
        "pin_hash": None,
    }


# --- who may import -----------------------------------------------------------------------------


def check_may_import(p: Principal) -> frozenset[int] | None:
    """The facilities whose residents `p` may import; None means every facility (the system, a system
    admin). A facility admin imports rows of their own facilities; anyone else is refused."""
    if p.kind is ActorKind.SYSTEM:
        return None
    require_active(p)
    allowed = p.facilities_for([Role.FACILITY_ADMIN])
    if allowed is None or allowed:
        return allowed
    raise Forbidden("import.forbidden", N_("Only an administrator may import residents."))


def _not_yours(row: int) -> RowError:
    return RowError(row, "import.facility_not_yours", N_("facility not yours"))


# --- the import ---------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did. `errors` are in row order."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    visits_cancelled: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        """The last line of the command's report."""
        return (
            f"imported {self.imported}, updated {self.updated}, "
            f"unchanged {self.unchanged}, rejected {self.rejected}"
        )


Progress = Callable[[int, int | None], None]
"""Called after each batch with the last row read and the total (None when unknown)."""


def load_places(session: Session) -> Places:
    """Every facility and housing unit (a few hundred rows at most), read once per import."""
    facilities: dict[str, int] = dict(session.execute(sa.select(Facility.code, Facility.id)).all())
    units = {
        (facility_id, code): unit_id
        for unit_id, facility_id, code in session.execute(
            sa.select(HousingUnit.id, HousingUnit.facility_id, HousingUnit.code)
        )
    }
    return Places(facilities, units)


@dataclass
class _Batch:
    """What one batch did, by facility (the audit writes one entry per facility, which its admin reads)."""

    created: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    changed: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    same: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    visits_cancelled: int = 0
    errors: list[RowError] = field(default_factory=list)

    def add_to(self, result: ImportResult) -> None:
        result.imported += sum(len(numbers) for numbers in self.created.values())
        result.updated += sum(len(numbers) for numbers in self.changed.values())
        result.unchanged += sum(self.same.values())
        result.visits_cancelled += self.visits_cancelled
        result.errors.extend(self.errors)


def _apply_plan(
    session: Session, p: Principal, resident: Resident, plan: Plan, now: datetime, meta: RequestMeta
) -> int:
    """Carry out a plan on a locked resident; returns how many visits were cancelled."""
    cancelled = 0
    before = {
        "status": resident.status.value,
        "facility_id": resident.facility_id,
        "unit_id": resident.unit_id,
    }
    if plan.change is StatusChange.TRANSFER:
        cancelled = apply_resident_status(
            session,
            p,
            resident,
            ResidentStatus.TRANSFERRED,
            now,
            meta,
            to_facility_id=plan.facility_id,
            to_unit_id=plan.unit_id,
        )
    elif plan.change is StatusChange.RELEASE:
        cancelled = apply_resident_status(session, p, resident, ResidentStatus.RELEASED, now, meta)
    elif plan.change is StatusChange.TRANSFER_OUT:
        cancelled = apply_resident_status(session, p, resident, ResidentStatus.TRANSFERRED, now, meta)
    moved = "unit_id" in plan.fields and plan.fields["unit_id"] != resident.unit_id
    for name, value in plan.fields.items():
        setattr(resident, name, value)
    if moved and plan.change is StatusChange.MOVE:
        session.flush()
        cancelled += cancel_visits_left_behind(session, p, resident, now, meta)
    if plan.change in (StatusChange.READMIT, StatusChange.MOVE):
        action = "resident.readmitted" if plan.change is StatusChange.READMIT else "resident.moved"
        session.flush()
        audit.record(
            session,
            p,
            action,
            "resident",
            resident.id,
            at=now,
            facility_id=resident.facility_id,
            before=before,
            after={
                "status": resident.status.value,
                "facility_id": resident.facility_id,
                "unit_id": resident.unit_id,
            },
            ip=meta.ip,
        )
    return cancelled


_RESIDENT_TABLE = cast(sa.Table, Resident.__table__)


def _write_batch(
    session: Session,
    p: Principal,
    rows: list[PlacedRow],
    allowed: frozenset[int] | None,
    now: datetime,
    meta: RequestMeta,
) -> _Batch:
    batch = _Batch()
    numbers = [placed.resident.number for placed in rows]
    # Columns, not objects: most rows of a repeated import change nothing, and loading 1,000 objects a
    # batch would cost more than everything else. Locked (PostgreSQL) so that nobody changes these
    # residents between the comparison and the write.
    stored: dict[str, tuple[int, Stored]] = {}
    for row in session.execute(
        sa.select(
            Resident.id,
            Resident.number,
            Resident.status,
            Resident.facility_id,
            Resident.unit_id,
            Resident.last_name,
            Resident.first_name,
            Resident.middle_name,
            Resident.birth_date,
            Resident.language,
        )
        .where(Resident.number.in_(numbers))
        .order_by(Resident.id)
        .with_for_update()
    ):
        stored[row.number] = (
            row.id,
            Stored(
                row.status,
                row.facility_id,
                row.unit_id,
                row.last_name,
                row.first_name,
                row.middle_name,
                row.birth_date,
                row.language,
            ),
        )
    inserts: list[dict[str, Any]] = []
    changes: list[tuple[int, Plan, str]] = []
    for placed in rows:
        number = placed.resident.number
        found = stored.get(number)
        if found is None:
            values = new_resident(placed)
            if isinstance(values, RowError):
                batch.errors.append(values)
            elif allowed is not None and values["facility_id"] not in allowed:
                batch.errors.append(_not_yours(placed.resident.row))
            else:
                inserts.append(values)
                batch.created[values["facility_id"]].append(number)
            continue
        resident_id, state = found
        # A facility admin may neither take a resident from another facility nor send one there.
        if allowed is not None and (
            state.facility_id not in allowed
            or (placed.facility_id is not None and placed.facility_id not in allowed)
        ):
            batch.errors.append(_not_yours(placed.resident.row))
            continue
        plan = plan_change(placed, state)
        if plan.changed:
            changes.append((resident_id, plan, number))
        else:
            batch.same[state.facility_id] += 1
    if changes:
        residents = {
            r.id: r
            for r in session.execute(sa.select(Resident).where(Resident.id.in_([c[0] for c in changes])))
            .scalars()
            .all()
        }
        for resident_id, plan, number in changes:
            batch.visits_cancelled += _apply_plan(session, p, residents[resident_id], plan, now, meta)
            batch.changed[plan.facility_id].append(number)
    if inserts:
        # Core, not the ORM's bulk insert: nothing here needs the objects, and it is twice as fast.
        session.execute(sa.insert(_RESIDENT_TABLE), inserts)
    session.flush()
    # One entry per batch and facility, not one per resident: a first import of 100,000 residents
    # would otherwise add 100,000 entries. Transfers, releases and moves have entries of their own.
    for facility_id in sorted(set(batch.created) | set(batch.changed)):
        audit.record(
            session,
            p,
            "residents.imported",
            "resident",
            None,
            at=now,
            facility_id=facility_id,
            after={
                "imported": len(batch.created[facility_id]),
                "updated": len(batch.changed[facility_id]),
                "unchanged": batch.same[facility_id],
                "created_numbers": batch.created[facility_id],
                "updated_numbers": batch.changed[facility_id],
            },
            ip=meta.ip,
        )
    return batch


def _commit_batch(
    ctx: AppContext, p: Principal, rows: list[PlacedRow], allowed: frozenset[int] | None, meta: RequestMeta
) -> _Batch:
    try:
        with ctx.db.write() as session:
            return _write_batch(session, p, rows, allowed, ctx.clock(), meta)
    except sa.exc.IntegrityError:
        # Only another import inserting one of these numbers at the same moment gets past the lookup;
        # the second attempt finds those residents and compares with them instead.
        pass
    with ctx.db.write() as session:
        return _write_batch(session, p, rows, allowed, ctx.clock(), meta)


def import_file(
    ctx: AppContext,
    p: Principal,
    source: ImportFile,
    meta: RequestMeta,
    *,
    on_progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Create or update a resident for every good row of an opened file, in batches of `batch_size`
    rows, each its own transaction; every bad row is reported and the others still imported."""
    allowed = check_may_import(p)
    with ctx.db.read() as session:
        places = load_places(session)
    result = ImportResult()
    pending: list[PlacedRow] = []
    last_row = reported = 0
    for item in check_rows(source.rows, today=ctx.clock().date()):
        last_row = item.row
        placed = item if isinstance(item, RowError) else resolve_places(item, places)
        if isinstance(placed, RowError):
            result.errors.append(placed)
        else:
            pending.append(placed)
        committed = len(pending) >= batch_size
        if committed:
            _commit_batch(ctx, p, pending, allowed, meta).add_to(result)
            pending = []
        # Also while only bad rows go by, so that the bar moves whatever the file holds.
        if on_progress is not None and (committed or last_row - reported >= batch_size):
            on_progress(last_row, source.total)
            reported = last_row
    if pending:
        _commit_batch(ctx, p, pending, allowed, meta).add_to(result)
    if on_progress is not None:
        on_progress(max(last_row, source.total or 0), source.total)
    result.errors.sort(key=lambda e: e.row)
    return result


def import_residents(
    ctx: AppContext,
    p: Principal,
    stream: BinaryIO,
    fmt: FileFormat,
    meta: RequestMeta,
    *,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Check that `p` may import, read the file (UnreadableFile when it cannot be read at all) and
    import it: see import_file."""
    check_may_import(p)
    return import_file(ctx, p, open_import(stream, fmt), meta, batch_size=batch_size)


def import_bytes(
    ctx: AppContext, p: Principal, data: bytes, fmt: FileFormat, meta: RequestMeta
) -> ImportResult:
    """import_residents for a file already in memory (a request body)."""
    return import_residents(ctx, p, io.BytesIO(data), fmt, meta)
