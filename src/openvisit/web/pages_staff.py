"""Staff scheduling pages: a day's calendar per station, requests to decide, session templates, blocked
periods and lockdowns. Each change calls one service and redirects; the services decide who may do
what (a page only offers the facilities where its roles are held, and says no early to anyone else)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, BackgroundTasks, Depends, Form, Query, Request
from fastapi.responses import Response
from pydantic import Field

from openvisit.db.models import SessionTemplate
from openvisit.domain.enums import BlockKind, BookableBy
from openvisit.domain.errors import N_, DomainError, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.domain.scheduling import REJECTION_REASONS, check_local_time_exists
from openvisit.services import queries, scheduling
from openvisit.services.scheduling import (
    BOOKING_STAFF_ROLES,
    DECIDING_ROLES,
    SCHEDULING_ROLES,
    CalendarEntry,
    TemplateInput,
)
from openvisit.web.deps import (
    MAX_ID,
    CsrfChecked,
    CtxDep,
    CurrentPrincipal,
    IdPath,
    IdQuery,
    MetaDep,
    live_rooms_of,
)
from openvisit.web.forms import error_status, language_of, see_other
from openvisit.web.i18n import translate, zone
from openvisit.web.labels import clock, long_day, medium_date, weekday_name, zone_label
from openvisit.web.staff_facility import facility_choice, local_today, no_facility_page
from openvisit.web.templating import render

router = APIRouter(include_in_schema=False)

FormId = Annotated[int, Field(ge=1, le=MAX_ID)]
SmallInt = Annotated[int, Field(ge=-10_000, le=10_000)]
"""Numbers a form may carry; the scheduling rules give the real range and the message."""

TEMPLATE_FIELDS = (
    "group_id",
    "weekday",
    "start_time",
    "end_time",
    "slot_minutes",
    "buffer_minutes",
    "valid_from",
    "valid_to",
    "every_n_weeks",
    "allow_social",
    "allow_home",
    "bookable_by",
    "unit_ids",
)
"""Fields the template form shows an error beside; any other error is shown above the form."""

BLOCK_FIELDS = ("kind", "starts_at", "ends_at", "unit_id", "station_id", "reason")

DONE_MESSAGES: dict[str, str] = {
    "approved": N_("The visit is approved; everyone is told."),
    "rejected": N_("The request is rejected; everyone is told why."),
    "saved": N_("The session template is saved. Visits already booked keep their times."),
    "deleted": N_("The session template is deleted. Visits already booked stay booked."),
    "lifted": N_("The blocked period is lifted. Visits it cancelled stay cancelled."),
}


# --- helpers ------------------------------------------------------------------------------------


def _form_error(request: Request, exc: DomainError, fields: Sequence[str] = ()) -> dict[str, str | None]:
    return {
        "code": exc.code,
        "message": translate(language_of(request), exc.message, exc.params),
        "field": exc.field if exc.field in fields else None,
    }


# --- calendar -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarRow:
    """A visit as the calendar shows it: facility-local times and the people."""

    entry: CalendarEntry
    starts: str
    ends: str


def _calendar_url(facility_id: int, day: date | None) -> str:
    params: dict[str, object] = {"facility_id": facility_id}
    if day is not None:
        params["date"] = day.isoformat()
    return f"/staff/calendar?{urlencode(params)}"


@router.get("/staff/calendar")
def calendar(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    day: Annotated[date | None, Query(alias="date")] = None,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, BOOKING_STAFF_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Calendar"))
    language = language_of(request)
    day = day or local_today(ctx, facility)
    result = scheduling.calendar_day(ctx, principal, facility.id, day)
    tz = result.facility.timezone
    columns = [
        (
            station,
            [
                CalendarRow(e, clock(e.visit.starts_at, language, tz), clock(e.visit.ends_at, language, tz))
                for e in result.entries.get(station.id, [])
            ],
        )
        for station in result.stations
    ]
    return render(
        request,
        "staff_calendar.html",
        {
            "facilities": facilities,
            "facility": result.facility,
            "zone_name": zone_label(ctx.clock(), language, tz),
            "day": day,
            "heading": long_day(day, language),
            "columns": columns,
            "blocks": result.blocks,
            "units": {u.id: u for u in queries.facility_layout(ctx, principal, facility.id).units},
            "previous": _calendar_url(facility.id, day - timedelta(days=1)),
            "next": _calendar_url(facility.id, day + timedelta(days=1)),
            "today": _calendar_url(facility.id, None),
        },
    )


# --- requests -----------------------------------------------------------------------------------


def _requests_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    facility_id: int | None,
    *,
    done: str | None = None,
    error: DomainError | None = None,
    error_visit_id: int | None = None,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, DECIDING_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Requests"))
    entries = scheduling.pending_requests(ctx, principal, facility.id)
    shown = {e.visit.id for e in entries}
    return render(
        request,
        "staff_requests.html",
        {
            "facilities": facilities,
            "facility": facility,
            "entries": entries,
            "reasons": list(REJECTION_REASONS.items()),
            "done_message": DONE_MESSAGES.get(done or ""),
            "error": _form_error(request, error, ("reason",)) if error else None,
            # A refusal about one request is shown in its row; one about a request no longer listed, above.
            "error_visit_id": error_visit_id if error_visit_id in shown else None,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/staff/requests")
def requests_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _requests_page(request, ctx, principal, facility_id, done=done)


@router.post("/staff/requests/{visit_id}/decision", dependencies=[CsrfChecked])
def decide(
    visit_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    facility_id: Annotated[FormId | None, Form()] = None,
    reason: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    approve = decision == "approve"
    try:
        scheduling.decide_request(
            ctx, principal, visit_id, meta, approve=approve, reason=reason or None, note=note.strip()
        )
    except DomainError as exc:
        return _requests_page(request, ctx, principal, facility_id, error=exc, error_visit_id=visit_id)
    return see_other("/staff/requests", facility_id=facility_id, done="approved" if approve else "rejected")


# --- session templates --------------------------------------------------------------------------


def _template_values(row: SessionTemplate | None, unit_ids: Sequence[int] = ()) -> dict[str, Any]:
    """The form's values: a template's own, or the defaults of DOMAIN.md for a new one."""
    if row is None:
        return {
            "group_id": None,
            "weekday": 0,
            "start_time": "09:00",
            "end_time": "17:00",
            "slot_minutes": 30,
            "buffer_minutes": 5,
            "valid_from": "",
            "valid_to": "",
            "every_n_weeks": 1,
            "allow_social": True,
            "allow_legal": True,
            "allow_home": True,
            "allow_link_center": True,
            "bookable_by": BookableBy.PUBLIC.value,
            "unit_ids": set(),
        }
    return {
        "group_id": row.group_id,
        "weekday": row.weekday,
        "start_time": row.start_time.strftime("%H:%M"),
        "end_time": row.end_time.strftime("%H:%M"),
        "slot_minutes": row.slot_minutes,
        "buffer_minutes": row.buffer_minutes,
        "valid_from": row.valid_from.isoformat(),
        "valid_to": row.valid_to.isoformat() if row.valid_to else "",
        "every_n_weeks": row.every_n_weeks,
        "allow_social": row.allow_social,
        "allow_legal": row.allow_legal,
        "allow_home": row.allow_home,
        "allow_link_center": row.allow_link_center,
        "bookable_by": row.bookable_by.value,
        "unit_ids": set(unit_ids),
    }


def _templates_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    facility_id: int | None,
    *,
    done: str | None = None,
    error: DomainError | None = None,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, SCHEDULING_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Session templates"))
    language = language_of(request)
    rows = scheduling.list_templates(ctx, principal, facility.id)
    layout = queries.facility_layout(ctx, principal, facility.id)
    return render(
        request,
        "staff_templates.html",
        {
            "facilities": facilities,
            "facility": facility,
            "zone_name": zone_label(ctx.clock(), language, facility.timezone),
            "rows": rows,
            "groups": {g.id: g for g in layout.groups},
            "units": {u.id: u for u in layout.units},
            "weekday": lambda n: weekday_name(n, language),
            "date_text": lambda d: medium_date(d, language),
            "done_message": DONE_MESSAGES.get(done or ""),
            "error": _form_error(request, error) if error else None,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/staff/templates")
def templates_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _templates_page(request, ctx, principal, facility_id, done=done)


def _template_form(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    facility_id: int | None,
    values: dict[str, Any],
    *,
    template_id: int | None = None,
    error: DomainError | None = None,
) -> Response:
    _facilities, facility = facility_choice(ctx, principal, SCHEDULING_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Session templates"))
    language = language_of(request)
    layout = queries.facility_layout(ctx, principal, facility.id)
    return render(
        request,
        "staff_template_form.html",
        {
            "facility": facility,
            "zone_name": zone_label(ctx.clock(), language, facility.timezone),
            "template_id": template_id,
            "groups": layout.groups,
            "units": layout.units,
            "weekdays": [(n, weekday_name(n, language)) for n in range(7)],
            "bookable": [BookableBy.PUBLIC.value, BookableBy.STAFF.value],
            "form": values,
            "error": _form_error(request, error, TEMPLATE_FIELDS) if error else None,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/staff/templates/new")
def new_template_page(
    request: Request, ctx: CtxDep, principal: CurrentPrincipal, facility_id: IdQuery = None
) -> Response:
    return _template_form(request, ctx, principal, facility_id, _template_values(None))


@router.get("/staff/templates/{template_id}/edit")
def edit_template_page(
    template_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
) -> Response:
    _facilities, facility = facility_choice(ctx, principal, SCHEDULING_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Session templates"))
    found = next(
        (
            (row, units)
            for row, units in scheduling.list_templates(ctx, principal, facility.id)
            if row.id == template_id
        ),
        None,
    )
    if found is None:
        raise NotFound("template.not_found", N_("No such session template."))
    return _template_form(
        request, ctx, principal, facility.id, _template_values(*found), template_id=template_id
    )


@dataclass(frozen=True)
class TemplateFormData:
    """The template form as posted (browsers send valid times and numbers; the rules judge them)."""

    group_id: int
    weekday: int
    start_time: time
    end_time: time
    slot_minutes: int
    buffer_minutes: int
    valid_from: date | None
    valid_to: date | None
    every_n_weeks: int
    allow_social: bool
    allow_legal: bool
    allow_home: bool
    allow_link_center: bool
    bookable_by: BookableBy
    unit_ids: tuple[int, ...]

    def to_input(self) -> TemplateInput:
        return TemplateInput(**self.__dict__)

    def values(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "start_time": self.start_time.strftime("%H:%M"),
            "end_time": self.end_time.strftime("%H:%M"),
            "valid_from": self.valid_from.isoformat() if self.valid_from else "",
            "valid_to": self.valid_to.isoformat() if self.valid_to else "",
            "bookable_by": self.bookable_by.value,
            "unit_ids": set(self.unit_ids),
        }


def template_form_data(
    group_id: Annotated[FormId, Form()],
    weekday: Annotated[SmallInt, Form()],
    start_time: Annotated[time, Form()],
    end_time: Annotated[time, Form()],
    slot_minutes: Annotated[SmallInt, Form()],
    buffer_minutes: Annotated[SmallInt, Form()],
    every_n_weeks: Annotated[SmallInt, Form()],
    valid_from: Annotated[date | None, Form()] = None,
    valid_to: Annotated[date | None, Form()] = None,
    allow_social: Annotated[bool, Form()] = False,
    allow_legal: Annotated[bool, Form()] = False,
    allow_home: Annotated[bool, Form()] = False,
    allow_link_center: Annotated[bool, Form()] = False,
    bookable_by: Annotated[BookableBy, Form()] = BookableBy.PUBLIC,
    unit_ids: Annotated[list[FormId] | None, Form(max_length=100)] = None,
) -> TemplateFormData:
    """Unchecked boxes are simply absent from a form post, hence False by default."""
    return TemplateFormData(
        group_id,
        weekday,
        start_time,
        end_time,
        slot_minutes,
        buffer_minutes,
        valid_from,
        valid_to,
        every_n_weeks,
        allow_social,
        allow_legal,
        allow_home,
        allow_link_center,
        bookable_by,
        tuple(sorted(set(unit_ids or ()))),
    )


TemplateForm = Annotated[TemplateFormData, Depends(template_form_data)]


@router.post("/staff/templates/new", dependencies=[CsrfChecked])
def create_template(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    form: TemplateForm,
    facility_id: Annotated[FormId, Form()],
) -> Response:
    try:
        scheduling.save_template(ctx, principal, facility_id, form.to_input(), meta)
    except DomainError as exc:
        return _template_form(request, ctx, principal, facility_id, form.values(), error=exc)
    return see_other("/staff/templates", facility_id=facility_id, done="saved")


@router.post("/staff/templates/{template_id}/edit", dependencies=[CsrfChecked])
def update_template(
    template_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    form: TemplateForm,
    facility_id: Annotated[FormId, Form()],
) -> Response:
    try:
        scheduling.save_template(ctx, principal, facility_id, form.to_input(), meta, template_id=template_id)
    except DomainError as exc:
        return _template_form(
            request, ctx, principal, facility_id, form.values(), template_id=template_id, error=exc
        )
    return see_other("/staff/templates", facility_id=facility_id, done="saved")


@router.post("/staff/templates/{template_id}/delete", dependencies=[CsrfChecked])
def delete_template(
    template_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId | None, Form()] = None,
) -> Response:
    try:
        scheduling.delete_template(ctx, principal, template_id, meta)
    except DomainError as exc:
        return _templates_page(request, ctx, principal, facility_id, error=exc)
    return see_other("/staff/templates", facility_id=facility_id, done="deleted")


# --- blocked periods and lockdowns --------------------------------------------------------------


def _block_values() -> dict[str, Any]:
    return {
        "kind": BlockKind.BLOCKED.value,
        "start_date": "",
        "start_time": "00:00",
        "end_date": "",
        "end_time": "00:00",
        "unit_id": None,
        "station_id": None,
        "reason": "",
    }


def _blocks_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    facility_id: int | None,
    *,
    done: str | None = None,
    result: tuple[int, int] | None = None,
    values: dict[str, Any] | None = None,
    error: DomainError | None = None,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, SCHEDULING_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Blocked periods"))
    blocks = scheduling.list_blocks(ctx, principal, facility.id)
    layout = queries.facility_layout(ctx, principal, facility.id)
    return render(
        request,
        "staff_blocks.html",
        {
            "facilities": facilities,
            "facility": facility,
            "zone_name": zone_label(ctx.clock(), language_of(request), facility.timezone),
            "blocks": blocks,
            "units": layout.units,
            "stations": layout.stations,
            "unit_names": {u.id: u.name for u in layout.units},
            "station_codes": {s.id: s.code for s in layout.stations},
            "result": result,
            "done_message": DONE_MESSAGES.get(done or ""),
            "form": values or _block_values(),
            "error": _form_error(request, error, BLOCK_FIELDS) if error else None,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/staff/blocks")
def blocks_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
    cancelled: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
    notified: Annotated[int | None, Query(ge=0, le=10_000_000)] = None,
) -> Response:
    result = (cancelled, notified or 0) if cancelled is not None else None
    return _blocks_page(request, ctx, principal, facility_id, done=done, result=result)


def _local_moment(day: date | None, at: time, tz: str, field: str) -> datetime:
    """A facility-local date and time as a UTC moment; a time the clocks skip is refused, not moved."""
    if day is None:
        raise InvalidInput("block.date_required", N_("Please give the date."), field=field)
    try:
        return check_local_time_exists(day, at, zone(tz))
    except InvalidInput as exc:
        exc.field = field
        raise


@router.post("/staff/blocks", dependencies=[CsrfChecked])
def create_block(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    after: BackgroundTasks,
    facility_id: Annotated[FormId, Form()],
    start_date: Annotated[date | None, Form()] = None,
    end_date: Annotated[date | None, Form()] = None,
    start_time: Annotated[time, Form()] = time(0),
    end_time: Annotated[time, Form()] = time(0),
    kind: Annotated[BlockKind, Form()] = BlockKind.BLOCKED,
    unit_id: Annotated[FormId | None, Form()] = None,
    station_id: Annotated[FormId | None, Form()] = None,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    values = {
        "kind": kind.value,
        "start_date": start_date.isoformat() if start_date else "",
        "start_time": start_time.strftime("%H:%M"),
        "end_date": end_date.isoformat() if end_date else "",
        "end_time": end_time.strftime("%H:%M"),
        "unit_id": unit_id,
        "station_id": station_id,
        "reason": reason,
    }
    try:
        # The facility's zone turns the local wall times into moments; the service checks access again.
        tz = queries.facility_layout(ctx, principal, facility_id).facility.timezone
        starts_at = _local_moment(start_date, start_time, tz, "starts_at")
        ends_at = _local_moment(end_date, end_time, tz, "ends_at")
        outcome = scheduling.declare_block(
            ctx,
            principal,
            facility_id,
            starts_at,
            ends_at,
            meta,
            kind=kind,
            reason=reason,
            unit_id=unit_id,
            station_id=station_id,
        )
    except DomainError as exc:
        return _blocks_page(request, ctx, principal, facility_id, values=values, error=exc)
    after.add_task(live_rooms_of(request).close_ended)  # visits in progress in the period end now
    return see_other(
        "/staff/blocks",
        facility_id=facility_id,
        cancelled=outcome.cancelled_visits,
        notified=outcome.notifications,
    )


@router.post("/staff/blocks/{block_id}/lift", dependencies=[CsrfChecked])
def lift_block(
    block_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId | None, Form()] = None,
) -> Response:
    try:
        scheduling.delete_block(ctx, principal, block_id, meta)
    except DomainError as exc:
        return _blocks_page(request, ctx, principal, facility_id, error=exc)
    return see_other("/staff/blocks", facility_id=facility_id, done="lifted")
