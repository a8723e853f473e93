"""Resident import: the prison's records as the raw request body, CSV or JSON (see README.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from openvisit.domain.errors import N_
from openvisit.services import residents_import
from openvisit.services.residents_import import FileFormat, UnreadableFile
from openvisit.web.deps import CtxDep, CurrentPrincipal, MetaDep
from openvisit.web.errors import language_of
from openvisit.web.i18n import translate
from openvisit.web.schemas import Output

router = APIRouter(tags=["residents"])

FORMATS = {"text/csv": FileFormat.CSV, "application/json": FileFormat.JSON}


class ImportRowError(Output):
    row: int
    """Data rows count from 1 after the CSV header; JSON items from 1."""
    code: str
    reason: str


class ImportReport(Output):
    imported: int
    updated: int
    unchanged: int
    rejected: int
    complete: bool
    """False when some rows were rejected: the others were imported all the same."""
    summary: str
    visits_cancelled: int
    errors: list[ImportRowError]


def _format_of(content_type: str | None) -> FileFormat:
    media, *params = (part.strip().lower() for part in (content_type or "").split(";"))
    fmt = FORMATS.get(media)
    if fmt is None:
        raise HTTPException(415)
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            raise UnreadableFile("import.not_utf8", N_("The file is not UTF-8 text."))
    return fmt


_ROW = {
    "type": "object",
    "properties": {column: {"type": ["string", "null"]} for column in residents_import.COLUMNS},
    "additionalProperties": False,
}
_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "array", "items": _ROW},
                    {"type": "object", "properties": {"residents": {"type": "array", "items": _ROW}}},
                ]
            }
        },
    },
}


@router.post("/residents/import", response_model=ImportReport, openapi_extra={"requestBody": _BODY})
async def import_residents(
    request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> ImportReport:
    """Create or update residents from the body (Content-Type text/csv or application/json, UTF-8).
    Answers 200 even when some rows were rejected (`complete` is false and `errors` lists them: the
    other rows were imported), 400 when the file cannot be read at all. A facility admin imports rows
    of their own facilities; other rows are rejected as "facility not yours"."""
    fmt = _format_of(request.headers.get("content-type"))
    body = await request.body()
    # The import is synchronous database work; keep it off the event loop.
    result = await run_in_threadpool(residents_import.import_bytes, ctx, principal, body, fmt, meta)
    language = language_of(request)
    return ImportReport(
        imported=result.imported,
        updated=result.updated,
        unchanged=result.unchanged,
        rejected=result.rejected,
        complete=result.rejected == 0,
        summary=translate(
            language,
            N_("imported %(imported)d, updated %(updated)d, unchanged %(unchanged)d, rejected %(rejected)d"),
            {
                "imported": result.imported,
                "updated": result.updated,
                "unchanged": result.unchanged,
                "rejected": result.rejected,
            },
        ),
        visits_cancelled=result.visits_cancelled,
        errors=[
            ImportRowError(row=e.row, code=e.code, reason=translate(language, e.message, e.params))
            for e in result.errors
        ],
    )
