"""Availability, booking, cancelling, rescheduling, approving; templates, blocks and lockdowns."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request, Response

from openvisit.domain.enums import BlockKind, BookableBy, ResidentStatus, VisitKind, VisitMode
from openvisit.domain.principal import Principal
from openvisit.services import scheduling
from openvisit.services.context import AppContext, Caller, RequestMeta
from openvisit.services.scheduling import (
    Availability,
    BookedVisit,
    BookingRequest,
    CalendarEntry,
    TemplateInput,
)
from openvisit.web.deps import (
    CtxDep,
    CurrentPrincipal,
    IdPath,
    IdQuery,
    MetaDep,
    active_caller,
    active_principal,
    live_rooms_of,
    off_loop,
    request_meta,
)
from openvisit.web.i18n import format_when
from openvisit.web.schemas import (
    AvailabilityDay,
    AvailabilityRead,
    BlockCreate,
    BlockCreated,
    BlockRead,
    BookingCreate,
    CalendarEntryRead,
    CalendarRead,
    CalendarStation,
    CancelCreate,
    DecisionCreate,
    FreeTimeRead,
    RequestRead,
    RescheduleCreate,
    ResidentStatusCreate,
    TemplateRead,
    TemplateWrite,
    VisitBooked,
    VisitRead,
)
from openvisit.web.templating import ctx_of

router = APIRouter(tags=["scheduling"])


def _booked(result: BookedVisit) -> VisitBooked:
    visit = result.visit
    return VisitBooked(
        **VisitRead.model_validate(visit).model_dump(),
        station_code=result.station_code,
        booth_code=result.booth_code,
        facility_timezone=result.facility_timezone,
        hold_expires_at=visit.hold_expires_at,
    )


def _entry(e: CalendarEntry) -> CalendarEntryRead:
    return CalendarEntryRead(
        visit=VisitRead.model_validate(e.visit),
        resident_name=e.resident_name,
        resident_number=e.resident_number,
        lead_name=e.lead_name,
        party_size=e.party_size,
    )


@router.get("/residents/{resident_id}/availability", response_model=AvailabilityRead)
async def get_availability(
    resident_id: IdPath,
    request: Request,
    ctx: CtxDep,
    kind: VisitKind = VisitKind.SOCIAL,
    mode: VisitMode = VisitMode.HOME,
    link_center_id: IdQuery = None,
    first_day: Annotated[date | None, Query(alias="from")] = None,
    days: Annotated[int | None, Query(ge=1, le=28)] = None,
    rebooks_visit_id: IdQuery = None,
) -> AvailabilityRead:
    """Free times per facility-local day, each shown in the facility's time and the caller's own. With
    `rebooks_visit_id` (a visit the system cut short), the times of its priority re-booking."""

    def find() -> AvailabilityRead:
        principal = active_principal(request, ctx)
        return _availability(
            principal,
            scheduling.availability(
                ctx,
                principal,
                resident_id,
                kind=kind,
                mode=mode,
                link_center_id=link_center_id,
                first_day=first_day,
                days=days,
                rebooks_visit_id=rebooks_visit_id,
            ),
        )

    return await off_loop(find)


def _availability(principal: Principal, result: Availability) -> AvailabilityRead:
    language = principal.language
    full = set(result.allowance_full_days)
    return AvailabilityRead(
        resident_id=result.resident_id,
        facility_id=result.facility_id,
        facility_timezone=result.facility_timezone,
        viewer_timezone=principal.timezone,
        kind=result.kind.value,
        mode=result.mode.value,
        link_center_id=result.link_center_id,
        allowance=result.allowance,
        days=[
            AvailabilityDay(
                day=day,
                allowance_used_up=day in full,
                times=[
                    FreeTimeRead(
                        starts_at=t.starts_at,
                        ends_at=t.ends_at,
                        facility_time=format_when(t.starts_at, language, result.facility_timezone),
                        viewer_time=format_when(t.starts_at, language, principal.timezone),
                    )
                    for t in times
                ],
            )
            for day, times in result.by_day().items()
        ],
    )


@router.post("/visits", response_model=VisitBooked, status_code=201)
async def create_visit(body: BookingCreate, http: Request) -> Response:
    """Book a visit (or hold the time for 10 minutes with `hold`); the station is chosen for you."""
    return await book(body, http)


async def book(body: BookingCreate, http: Request) -> Response:
    """The booking itself, for this route and for `openvisit.web.direct`, which answers most bookings
    without FastAPI's layers: the caller found and the visit booked in one hop off the event loop."""
    ctx = ctx_of(http)
    meta = request_meta(http)
    return await off_loop(lambda: _create_visit(body, ctx, active_caller(http, ctx), meta))


def _create_visit(body: BookingCreate, ctx: AppContext, caller: Caller, meta: RequestMeta) -> Response:
    request = BookingRequest(
        resident_id=body.resident_id,
        starts_at=body.starts_at,
        kind=VisitKind(body.kind),
        mode=VisitMode(body.mode),
        link_center_id=body.link_center_id,
        lead_visitor_id=body.lead_visitor_id,
        visitor_ids=tuple(body.visitor_ids),
        dependent_ids=tuple(body.dependent_ids),
        hold=body.hold,
        notes=body.notes,
        rebooks_visit_id=body.rebooks_visit_id,
    )
    booked = _booked(scheduling.book_visit(ctx, caller, request, meta))
    # Serialised here, once: the model was just built and checked, FastAPI need not validate it again.
    return Response(booked.model_dump_json(), status_code=201, media_type="application/json")


@router.post("/visits/{visit_id}/confirm", response_model=VisitRead)
def confirm_visit(visit_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep) -> VisitRead:
    """Turn a held time into a booking."""
    return VisitRead.model_validate(scheduling.confirm_hold(ctx, principal, visit_id, meta))


@router.post("/visits/{visit_id}/cancel", response_model=VisitRead)
def cancel_visit(
    visit_id: IdPath,
    body: CancelCreate,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    request: Request,
    after: BackgroundTasks,
) -> VisitRead:
    """Cancel: visitors until the start; staff at any time with a reason (a visit in progress ends at once:
    its media is cut and both sides are told why)."""
    visit = scheduling.cancel_visit(ctx, principal, visit_id, meta, reason=body.reason, note=body.note)
    after.add_task(live_rooms_of(request).close_ended)
    return VisitRead.model_validate(visit)


@router.post("/visits/{visit_id}/reschedule", response_model=VisitBooked, status_code=201)
def reschedule_visit(
    visit_id: IdPath, body: RescheduleCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> VisitBooked:
    """Move a visit to another free time; the old one is cancelled only if the new one is booked."""
    return _booked(scheduling.reschedule_visit(ctx, principal, visit_id, body.starts_at, meta))


@router.post("/visits/{visit_id}/decision", response_model=VisitRead)
def decide_visit(
    visit_id: IdPath, body: DecisionCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> VisitRead:
    """Approve a requested visit, or reject it with a preset reason."""
    visit = scheduling.decide_request(
        ctx, principal, visit_id, meta, approve=body.approve, reason=body.reason, note=body.note
    )
    return VisitRead.model_validate(visit)


@router.get("/facilities/{facility_id}/requests", response_model=list[RequestRead])
def list_requests(facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> list[RequestRead]:
    """Requested visits waiting for a decision, soonest first."""
    return [
        RequestRead(**_entry(e).model_dump())
        for e in scheduling.pending_requests(ctx, principal, facility_id)
    ]


@router.get("/facilities/{facility_id}/calendar", response_model=CalendarRead)
def get_calendar(
    facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, day: Annotated[date, Query(alias="date")]
) -> CalendarRead:
    """One facility-local day: each station and who is booked on it."""
    result = scheduling.calendar_day(ctx, principal, facility_id, day)
    return CalendarRead(
        facility_id=result.facility.id,
        facility_timezone=result.facility.timezone,
        day=result.day,
        stations=[
            CalendarStation(
                id=s.id,
                code=s.code,
                name=s.name,
                kind=s.kind.value,
                status=s.status.value,
                visits=[_entry(e) for e in result.entries.get(s.id, [])],
            )
            for s in result.stations
        ],
        blocks=[BlockRead.model_validate(b) for b in result.blocks],
    )


def _template_input(body: TemplateWrite) -> TemplateInput:
    return TemplateInput(
        group_id=body.group_id,
        weekday=body.weekday,
        start_time=body.start_time,
        end_time=body.end_time,
        slot_minutes=body.slot_minutes,
        buffer_minutes=body.buffer_minutes,
        valid_from=body.valid_from,
        valid_to=body.valid_to,
        every_n_weeks=body.every_n_weeks,
        allow_social=body.allow_social,
        allow_legal=body.allow_legal,
        allow_home=body.allow_home,
        allow_link_center=body.allow_link_center,
        bookable_by=BookableBy(body.bookable_by),
        unit_ids=tuple(body.unit_ids),
    )


def _template_read(row: object, unit_ids: list[int]) -> TemplateRead:
    return TemplateRead.model_validate(row).model_copy(update={"unit_ids": unit_ids})


@router.get("/facilities/{facility_id}/templates", response_model=list[TemplateRead])
def list_templates(facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> list[TemplateRead]:
    """The facility's session templates."""
    return [_template_read(r, units) for r, units in scheduling.list_templates(ctx, principal, facility_id)]


@router.post("/facilities/{facility_id}/templates", response_model=TemplateRead, status_code=201)
def create_template(
    facility_id: IdPath, body: TemplateWrite, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> TemplateRead:
    """Add a session template (times in the facility's local time)."""
    row = scheduling.save_template(ctx, principal, facility_id, _template_input(body), meta)
    return _template_read(row, sorted(body.unit_ids))


@router.put("/facilities/{facility_id}/templates/{template_id}", response_model=TemplateRead)
def update_template(
    facility_id: IdPath,
    template_id: IdPath,
    body: TemplateWrite,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
) -> TemplateRead:
    """Change a session template; visits already booked keep their times."""
    row = scheduling.save_template(
        ctx, principal, facility_id, _template_input(body), meta, template_id=template_id
    )
    return _template_read(row, sorted(body.unit_ids))


@router.delete("/templates/{template_id}", status_code=204)
def delete_template(template_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep) -> Response:
    """Remove a session template."""
    scheduling.delete_template(ctx, principal, template_id, meta)
    return Response(status_code=204)


@router.get("/facilities/{facility_id}/blocks", response_model=list[BlockRead])
def list_blocks(facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> list[BlockRead]:
    """Blocked periods and lockdowns that have not ended."""
    return [BlockRead.model_validate(b) for b in scheduling.list_blocks(ctx, principal, facility_id)]


@router.post("/facilities/{facility_id}/blocks", response_model=BlockCreated, status_code=201)
def create_block(
    facility_id: IdPath,
    body: BlockCreate,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    request: Request,
    after: BackgroundTasks,
) -> BlockCreated:
    """Block a period (or declare a lockdown): visits in it are cancelled (those in progress end at once)
    and everyone is told."""
    result = scheduling.declare_block(
        ctx,
        principal,
        facility_id,
        body.starts_at,
        body.ends_at,
        meta,
        kind=BlockKind(body.kind),
        reason=body.reason,
        unit_id=body.unit_id,
        station_id=body.station_id,
    )
    after.add_task(live_rooms_of(request).close_ended)
    return BlockCreated(
        block_id=result.block_id, cancelled_visits=result.cancelled_visits, notifications=result.notifications
    )


@router.delete("/blocks/{block_id}", status_code=204)
def delete_block(block_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep) -> Response:
    """Lift a blocked period."""
    scheduling.delete_block(ctx, principal, block_id, meta)
    return Response(status_code=204)


@router.post("/residents/{resident_id}/status", response_model=dict[str, int])
def change_resident_status(
    resident_id: IdPath, body: ResidentStatusCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> dict[str, int]:
    """Transfer or release a resident; their future visits are cancelled with the reason."""
    cancelled = scheduling.change_resident_status(
        ctx,
        principal,
        resident_id,
        ResidentStatus(body.status),
        meta,
        to_facility_id=body.to_facility_id,
        to_unit_id=body.to_unit_id,
    )
    return {"cancelled_visits": cancelled}
