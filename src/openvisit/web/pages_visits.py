"""Visitor pages: my visits; free times for a chosen resident and mode; hold, confirm, cancel and
reschedule. Each route that changes something calls one service and redirects (post/redirect/get);
a refusal is shown beside the form, in the reader's language, with its 4xx status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import AwareDatetime, Field

from openvisit.domain import scheduling as rules
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    ConnectionKind,
    ConnectionStatus,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import N_, DomainError, Forbidden
from openvisit.domain.principal import Principal
from openvisit.services import live, queries, scheduling
from openvisit.services.scheduling import Availability, BookingRequest
from openvisit.web.deps import MAX_ID, CsrfChecked, CtxDep, CurrentPrincipal, IdPath, IdQuery, MetaDep
from openvisit.web.forms import error_status, language_of, see_other
from openvisit.web.i18n import format_both, translate, zone
from openvisit.web.labels import clock, long_day, reason_label, short_day, zone_label
from openvisit.web.templating import render

router = APIRouter(include_in_schema=False)

DAYS_PER_PAGE = 7
"""A week of days per page keeps the grid of times short enough for a phone. One more day is asked
for, and not shown, to know whether a later page has any day at all."""

FormId = Annotated[int, Field(ge=1, le=MAX_ID)]

DONE_MESSAGES: dict[str, str] = {
    "booked": N_("Your visit is booked."),
    "requested": N_("Your visit is requested. Staff will look at it; you will be told their decision."),
    "cancelled": N_("The visit is cancelled."),
    "moved": N_("Your visit is moved to the new time."),
}


# --- helpers ------------------------------------------------------------------------------------


def _form_error(request: Request, exc: DomainError) -> dict[str, str | None]:
    language = language_of(request)
    params = dict(exc.params)
    # A restriction's reason may be a preset's code (a termination's): said in the reader's words.
    if isinstance(params.get("reason"), str):
        params["reason"] = translate(language, reason_label(params["reason"]))
    return {
        "code": exc.code,
        "message": translate(language, exc.message, params),
        "field": exc.field,
    }


def _require_visitor(principal: Principal) -> None:
    if not principal.is_visitor:
        raise Forbidden("visit.visitors_only", N_("These pages are for visitors."))


def _changeable(status: VisitStatus, starts_at: datetime, now: datetime) -> bool:
    """Whether a visitor may still cancel or move the visit: the domain's own rule decides."""
    try:
        rules.check_cancellation(status, starts_at, now, by_staff=False, reason=None)
    except DomainError:
        return False
    return True


@dataclass(frozen=True)
class TimeChoice:
    """One free time as a button shows it: the facility's wall clock, and the viewer's when it differs."""

    value: str
    facility_clock: str
    viewer_clock: str | None
    full: str


@dataclass(frozen=True)
class DayChoices:
    day: date
    heading: str
    times: list[TimeChoice]
    used_up: bool
    legend: str | None
    """Set when the zones' offsets that day differ from the page's (a clock change in the window)."""


def _legend(at: datetime, language: str, facility_tz: str, viewer_tz: str) -> str:
    here = zone_label(at, language, facility_tz)
    if zone(facility_tz).utcoffset(at) == zone(viewer_tz).utcoffset(at):
        return translate(language, N_("Times are in the facility's time (%(zone)s)."), {"zone": here})
    return translate(
        language,
        N_("Times are in the facility's time (%(zone)s); yours (%(yours)s) is shown below each."),
        {"zone": here, "yours": zone_label(at, language, viewer_tz)},
    )


def _offsets(at: datetime, facility_tz: str, viewer_tz: str) -> tuple[object, object]:
    return zone(facility_tz).utcoffset(at), zone(viewer_tz).utcoffset(at)


def _choices(result: Availability, language: str, viewer_tz: str) -> tuple[list[DayChoices], str | None]:
    """The free times per facility-local day, ready for the grid of buttons, and the page's legend."""
    facility_tz = result.facility_timezone
    first = result.times[0].starts_at if result.times else None
    legend = _legend(first, language, facility_tz, viewer_tz) if first else None
    page_offsets = _offsets(first, facility_tz, viewer_tz) if first else None
    full_days = set(result.allowance_full_days)
    days: list[DayChoices] = []
    shown_until = result.first_day + timedelta(days=DAYS_PER_PAGE)
    for day, free in result.by_day().items():
        if day >= shown_until:
            continue
        times = []
        for t in free:
            here = clock(t.starts_at, language, facility_tz)
            theirs: str | None = None
            if zone(facility_tz).utcoffset(t.starts_at) != zone(viewer_tz).utcoffset(t.starts_at):
                theirs = clock(t.starts_at, language, viewer_tz)
                if t.starts_at.astimezone(zone(viewer_tz)).date() != day:
                    theirs = f"{theirs}, {short_day(t.starts_at, language, viewer_tz)}"
            times.append(
                TimeChoice(
                    t.starts_at.isoformat(),
                    here,
                    theirs,
                    format_both(t.starts_at, language, facility_tz, viewer_tz),
                )
            )
        day_legend = None
        if free and page_offsets and _offsets(free[0].starts_at, facility_tz, viewer_tz) != page_offsets:
            day_legend = _legend(free[0].starts_at, language, facility_tz, viewer_tz)
        days.append(DayChoices(day, long_day(day, language), times, day in full_days, day_legend))
    return days, legend


def _pages(base: dict[str, Any], path: str, result: Availability, requested: date | None) -> dict[str, str]:
    """Links to the previous and next week of days (the service keeps them inside the booking window)."""
    links: dict[str, str] = {}
    if requested is not None and result.first_day == requested:
        links["earlier"] = (
            f"{path}?{urlencode({**base, 'from': (requested - timedelta(days=DAYS_PER_PAGE))})}"
        )
    later = result.first_day + timedelta(days=DAYS_PER_PAGE)
    if result.last_day >= later:
        links["later"] = f"{path}?{urlencode({**base, 'from': later})}"
    return links


# --- my visits ----------------------------------------------------------------------------------


def _visits_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    *,
    done: str | None = None,
    error: DomainError | None = None,
) -> Response:
    _require_visitor(principal)
    now = ctx.clock()
    rows = scheduling.my_visits(ctx, principal)
    # Upcoming means still going to happen; a cancelled or rejected one joins the past, with its reason.
    ahead = {r.visit.id for r in rows if r.visit.ends_at > now and r.visit.status in ACTIVE_VISIT_STATUSES}
    upcoming = sorted((r for r in rows if r.visit.id in ahead), key=lambda r: r.visit.starts_at)
    past = [r for r in rows if r.visit.id not in ahead]
    # A visit the system cut short offers its priority re-booking until a booking made from it stands.
    rebooked = {
        r.visit.replaces_visit_id
        for r in rows
        if r.visit.status not in (VisitStatus.CANCELLED, VisitStatus.REJECTED)
    }
    rebookable = {
        r.visit.id: live.rebook_path(r.visit)
        for r in past
        if r.visit.status is VisitStatus.FAILED and r.visit.priority_rebooking and r.visit.id not in rebooked
    }
    return render(
        request,
        "visits_list.html",
        {
            "upcoming": upcoming,
            "past": past,
            "changeable": {
                r.visit.id for r in upcoming if _changeable(r.visit.status, r.visit.starts_at, now)
            },
            "done_message": DONE_MESSAGES.get(done or ""),
            "error": _form_error(request, error) if error else None,
            "reason": lambda code: translate(language_of(request), reason_label(code)),
            "rebookable": rebookable,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/visits")
def my_visits(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _visits_page(request, ctx, principal, done=done)


@router.post("/visits/{visit_id}/cancel", dependencies=[CsrfChecked])
def cancel(
    visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    try:
        scheduling.cancel_visit(ctx, principal, visit_id, meta)
    except DomainError as exc:
        return _visits_page(request, ctx, principal, error=exc)
    return see_other("/visits?done=cancelled")


# --- choosing a time ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BookingChoice:
    """What the booking page was asked to show."""

    resident_id: int | None
    kind: VisitKind | None
    mode: VisitMode
    link_center_id: int | None
    first_day: date | None
    rebooks_visit_id: int | None = None


def _book_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    choice: BookingChoice,
    *,
    error: DomainError | None = None,
    chosen_dependents: frozenset[int] = frozenset(),
) -> Response:
    _require_visitor(principal)
    language = language_of(request)
    approved = [
        c for c in queries.my_connections(ctx, principal) if c.connection.status is ConnectionStatus.APPROVED
    ]
    resident_id = choice.resident_id
    if resident_id is None and approved:
        resident_id = approved[0].connection.resident_id
    link = next((c for c in approved if c.connection.resident_id == resident_id), None)
    kind = choice.kind or (
        VisitKind.LEGAL
        if link is not None and link.connection.kind is ConnectionKind.LEGAL
        else VisitKind.SOCIAL
    )
    # A visit from home has no link center: the choice in the form only counts with the link-center mode.
    link_center_id = choice.link_center_id if choice.mode is VisitMode.LINK_CENTER else None
    context: dict[str, Any] = {
        "connections": approved,
        "centers": queries.link_centers(ctx, principal),
        "resident_id": resident_id,
        "kind": kind,
        "mode": choice.mode,
        "link_center_id": link_center_id,
        "first_day": choice.first_day,
        "days": [],
        "legend": None,
        "pages": {},
        "dependents": [],
        "chosen_dependents": chosen_dependents,
        "availability": None,
        "rebook": choice.rebooks_visit_id,
    }
    status = 200
    if resident_id is not None:
        try:
            result = scheduling.availability(
                ctx,
                principal,
                resident_id,
                kind=kind,
                mode=choice.mode,
                link_center_id=link_center_id,
                first_day=choice.first_day,
                days=DAYS_PER_PAGE + 1,
                rebooks_visit_id=choice.rebooks_visit_id,
            )
        except DomainError as exc:
            # The service's own refusal (not approved, no link center chosen) is the page's message.
            error = error or exc
        else:
            days, legend = _choices(result, language, principal.timezone)
            base: dict[str, Any] = {"resident_id": resident_id, "mode": choice.mode.value, "kind": kind.value}
            if link_center_id is not None:
                base["link_center_id"] = link_center_id
            if choice.rebooks_visit_id is not None:
                base["rebook"] = choice.rebooks_visit_id
            context.update(
                availability=result,
                days=days,
                legend=legend,
                pages=_pages(base, "/visits/book", result, choice.first_day),
                dependents=queries.my_dependents_for(ctx, principal, resident_id),
                resident_name=link.resident_name if link is not None else "",
                facility_name=link.facility_name if link is not None else "",
            )
    if error is not None:
        context["error"] = _form_error(request, error)
        status = error_status(error)
    return render(request, "visits_book.html", context, status=status)


@router.get("/visits/book")
def book_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    resident_id: IdQuery = None,
    kind: VisitKind | None = None,
    mode: VisitMode = VisitMode.HOME,
    link_center_id: IdQuery = None,
    first_day: Annotated[date | None, Query(alias="from")] = None,
    rebook: IdQuery = None,
) -> Response:
    """Free times to book; with `rebook`, a visit the system cut short is booked again with priority."""
    return _book_page(
        request, ctx, principal, BookingChoice(resident_id, kind, mode, link_center_id, first_day, rebook)
    )


@router.post("/visits/hold", dependencies=[CsrfChecked])
def hold(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    resident_id: Annotated[FormId, Form()],
    starts_at: Annotated[AwareDatetime, Form()],
    kind: Annotated[VisitKind, Form()] = VisitKind.SOCIAL,
    mode: Annotated[VisitMode, Form()] = VisitMode.HOME,
    link_center_id: Annotated[FormId | None, Form()] = None,
    dependent_ids: Annotated[list[FormId] | None, Form(max_length=10)] = None,
    first_day: Annotated[date | None, Form(alias="from")] = None,
    rebook: Annotated[FormId | None, Form()] = None,
) -> Response:
    _require_visitor(principal)
    children = tuple(dict.fromkeys(dependent_ids or ()))
    request_ = BookingRequest(
        resident_id=resident_id,
        starts_at=starts_at,
        kind=kind,
        mode=mode,
        link_center_id=link_center_id if mode is VisitMode.LINK_CENTER else None,
        dependent_ids=children,
        hold=True,
        rebooks_visit_id=rebook,
    )
    try:
        booked = scheduling.book_visit(ctx, principal, request_, meta)
    except DomainError as exc:
        choice = BookingChoice(resident_id, kind, mode, link_center_id, first_day, rebook)
        return _book_page(request, ctx, principal, choice, error=exc, chosen_dependents=frozenset(children))
    return see_other(f"/visits/{booked.visit.id}/confirm")


# --- confirming a held time ---------------------------------------------------------------------


def _confirm_page(
    request: Request, ctx: CtxDep, principal: Principal, visit_id: int, *, error: DomainError | None = None
) -> Response:
    _require_visitor(principal)
    details = queries.visit_details(ctx, principal, visit_id)
    visit = details.visit
    now = ctx.clock()
    held = visit.status is VisitStatus.HELD and visit.booked_by_id == principal.user_id
    expired = (held and (visit.hold_expires_at is None or visit.hold_expires_at <= now)) or (
        visit.status is VisitStatus.CANCELLED and visit.reason == "hold_expired"
    )
    if not held and not expired and error is None:
        # Already confirmed (a second click, the back button) or not this person's hold: show the list.
        return see_other("/visits")
    again = {"resident_id": visit.resident_id, "mode": visit.mode.value, "kind": visit.kind.value}
    if visit.link_center_id is not None:
        again["link_center_id"] = visit.link_center_id
    return render(
        request,
        "visits_confirm.html",
        {
            "details": details,
            "visit": visit,
            "expired": expired,
            "again_url": f"/visits/book?{urlencode(again)}",
            "error": _form_error(request, error) if error else None,
        },
        status=error_status(error) if error else 200,
    )


@router.get("/visits/{visit_id}/confirm")
def confirm_page(visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    return _confirm_page(request, ctx, principal, visit_id)


@router.post("/visits/{visit_id}/confirm", dependencies=[CsrfChecked])
def confirm(
    visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    try:
        visit = scheduling.confirm_hold(ctx, principal, visit_id, meta)
    except DomainError as exc:
        return _confirm_page(request, ctx, principal, visit_id, error=exc)
    done = "requested" if visit.status is VisitStatus.REQUESTED else "booked"
    return see_other(f"/visits?done={done}")


@router.post("/visits/{visit_id}/release", dependencies=[CsrfChecked])
def release(
    visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    """Give a held time back at once (rather than letting it run out) and choose again."""
    try:
        visit = scheduling.cancel_visit(ctx, principal, visit_id, meta)
    except DomainError as exc:
        return _confirm_page(request, ctx, principal, visit_id, error=exc)
    again: dict[str, Any] = {
        "resident_id": visit.resident_id,
        "mode": visit.mode.value,
        "kind": visit.kind.value,
    }
    if visit.link_center_id is not None:
        again["link_center_id"] = visit.link_center_id
    return see_other(f"/visits/book?{urlencode(again)}")


# --- rescheduling -------------------------------------------------------------------------------


def _reschedule_page(
    request: Request,
    ctx: CtxDep,
    principal: Principal,
    visit_id: int,
    first_day: date | None,
    *,
    error: DomainError | None = None,
) -> Response:
    _require_visitor(principal)
    language = language_of(request)
    details = queries.visit_details(ctx, principal, visit_id)
    visit = details.visit
    context: dict[str, Any] = {
        "details": details,
        "visit": visit,
        "days": [],
        "legend": None,
        "pages": {},
        "first_day": first_day,
        "availability": None,
        "changeable": _changeable(visit.status, visit.starts_at, ctx.clock()),
    }
    status = 200
    if context["changeable"]:
        try:
            result = scheduling.availability(
                ctx,
                principal,
                visit.resident_id,
                kind=visit.kind,
                mode=visit.mode,
                link_center_id=visit.link_center_id,
                first_day=first_day,
                days=DAYS_PER_PAGE + 1,
                moving_visit_id=visit.id,
            )
        except DomainError as exc:
            error = error or exc
        else:
            days, legend = _choices(result, language, principal.timezone)
            context.update(
                availability=result,
                days=days,
                legend=legend,
                pages=_pages({}, f"/visits/{visit.id}/reschedule", result, first_day),
            )
    if error is not None:
        context["error"] = _form_error(request, error)
        status = error_status(error)
    return render(request, "visits_reschedule.html", context, status=status)


@router.get("/visits/{visit_id}/reschedule")
def reschedule_page(
    visit_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    first_day: Annotated[date | None, Query(alias="from")] = None,
) -> Response:
    return _reschedule_page(request, ctx, principal, visit_id, first_day)


@router.post("/visits/{visit_id}/reschedule", dependencies=[CsrfChecked])
def reschedule(
    visit_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    starts_at: Annotated[AwareDatetime, Form()],
    first_day: Annotated[date | None, Form(alias="from")] = None,
) -> Response:
    _require_visitor(principal)
    try:
        scheduling.reschedule_visit(ctx, principal, visit_id, starts_at, meta)
    except DomainError as exc:
        return _reschedule_page(request, ctx, principal, visit_id, first_day, error=exc)
    return see_other("/visits?done=moved")
