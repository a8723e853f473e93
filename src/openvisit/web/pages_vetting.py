"""Vetting pages for clerks and facility admins: the queue of link requests with the visitor's photos
and restrictions, decisions with a preset reason, approved links to suspend, revoke or reinstate, bans
and suspensions, keep-apart orders and resident alerts, attorney claims and the do-not-record registry.
Each change calls one service and redirects; the services decide who may do what (a page only offers
the facilities where a clerk's roles are held, and says no early to anyone else)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import Field

from openvisit.domain.enums import ConnectionStatus, RestrictionKind
from openvisit.domain.errors import N_, DomainError, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.domain.scheduling import age_on, check_local_time_exists
from openvisit.domain.vetting import LINK_REJECTION_REASONS
from openvisit.services import queries, vetting
from openvisit.services.access import require_role
from openvisit.services.context import AppContext
from openvisit.services.vetting import CLERK_ROLES, QueueItem
from openvisit.web.deps import MAX_ID, CsrfChecked, CtxDep, CurrentPrincipal, IdPath, IdQuery, MetaDep
from openvisit.web.forms import error_status, language_of, see_other
from openvisit.web.i18n import translate, zone
from openvisit.web.labels import medium_date, reason_label, zone_label
from openvisit.web.pages_registry import FormError
from openvisit.web.staff_facility import facility_choice, local_today, no_facility_page
from openvisit.web.templating import render

router = APIRouter(include_in_schema=False)

FormId = Annotated[int, Field(ge=1, le=MAX_ID)]
View = Annotated[str, Query(pattern="^(requests|approved)$")]
FormView = Annotated[str, Form(pattern="^(requests|approved)$")]

LINKS_DONE: dict[str, str] = {
    "approved": N_("The link is approved; the visitor is told and can book visits."),
    "rejected": N_("The request is rejected; the visitor is told why."),
    "suspended": N_("The link is suspended; the visitor is told why."),
    "revoked": N_("The link is revoked; the visitor is told why."),
    "reinstated": N_("The link is approved again; the visitor is told."),
    "restricted": N_("The restriction is in force; the visitor is told until when."),
}
RESTRICTIONS_DONE: dict[str, str] = {
    "lifted": N_("The restriction is lifted. Visits it cancelled stay cancelled."),
    "kept_apart": N_("The two residents will never share a visiting room at the same time."),
    "alert_set": N_("The alert is set: the resident's bookings now wait for a clerk."),
    "alert_cleared": N_("The alert is cleared."),
}
ATTORNEYS_DONE: dict[str, str] = {
    "verified": N_("The attorney is verified: their visits with clients are privileged."),
    "rejected": N_("The attorney's claim is rejected; they are told."),
}
RESTRICTION_FIELDS = ("kind", "ends_at", "reason")
KEEP_APART_FIELDS = ("number_a", "number_b", "reason")


# --- helpers ------------------------------------------------------------------------------------


def _error(
    request: Request,
    form: str,
    exc: DomainError,
    fields: Sequence[str] = (),
    renamed: Mapping[str, str] | None = None,
) -> FormError:
    """The refusal beside its field of `form` (the service's field name `renamed` to the form's)."""
    name = (renamed or {}).get(exc.field or "", exc.field)
    return FormError(
        form,
        exc.code,
        translate(language_of(request), exc.message, exc.params),
        name if name in fields else None,
    )


# --- link requests and links --------------------------------------------------------------------


@dataclass(frozen=True)
class LinkCard:
    """A link as the clerk's card shows it: the service's item with the visitor's age and the unit."""

    item: QueueItem
    age: int
    unit_name: str


def _links_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    facility_id: int | None,
    view: str,
    *,
    done: str | None = None,
    cancelled: int | None = None,
    error: FormError | None = None,
    error_link_id: int | None = None,
    status: int = 200,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, CLERK_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Link requests"))
    language = language_of(request)
    today = local_today(ctx, facility)
    units = {u.id: u.name for u in queries.facility_layout(ctx, principal, facility.id).units}

    def cards(status: ConnectionStatus) -> list[LinkCard]:
        return [
            LinkCard(item, age_on(item.visitor.birth_date, today), units.get(item.resident.unit_id or 0, ""))
            for item in vetting.link_queue(ctx, principal, facility.id, status=status)
        ]

    if view == "approved":
        lists = {"approved": cards(ConnectionStatus.APPROVED), "suspended": cards(ConnectionStatus.SUSPENDED)}
    else:
        lists = {"requests": cards(ConnectionStatus.REQUESTED)}
    shown = {card.item.connection.id for cards_ in lists.values() for card in cards_}
    if error is not None and error_link_id not in shown:
        # A refusal about a link no longer listed here (decided meanwhile) is said above the list.
        error = FormError("page", error.code, error.message, None)
    return render(
        request,
        "vetting_links.html",
        {
            "facilities": facilities,
            "facility": facility,
            "view": view,
            "lists": lists,
            "reasons": list(LINK_REJECTION_REASONS.items()),
            "reason": lambda code: translate(language, reason_label(code)),
            "date_text": lambda day: medium_date(day, language),
            "zone_name": zone_label(ctx.clock(), language, facility.timezone),
            "tomorrow": (today + timedelta(days=1)).isoformat(),
            "done_message": LINKS_DONE.get(done or ""),
            "cancelled": cancelled,
            "error": error,
        },
        status=status,
    )


@router.get("/staff/links")
def links_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    view: View = "requests",
    done: Annotated[str | None, Query(max_length=20)] = None,
    cancelled: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    return _links_page(request, ctx, principal, facility_id, view, done=done, cancelled=cancelled)


@router.post("/staff/links/{link_id}/decision", dependencies=[CsrfChecked])
def decide_link(
    link_id: IdPath,
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
        vetting.decide_link(
            ctx, principal, link_id, meta, approve=approve, reason=reason or None, note=note.strip()
        )
    except DomainError as exc:
        return _links_page(
            request,
            ctx,
            principal,
            facility_id,
            "requests",
            error=_error(request, f"decide-{link_id}", exc, ("reason",)),
            error_link_id=link_id,
            status=error_status(exc),
        )
    return see_other("/staff/links", facility_id=facility_id, done="approved" if approve else "rejected")


@router.post("/staff/links/{link_id}/status", dependencies=[CsrfChecked])
def change_link(
    link_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    status: Annotated[ConnectionStatus, Form()],
    facility_id: Annotated[FormId | None, Form()] = None,
    reason: Annotated[str, Form(max_length=64)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        _, cancelled = vetting.change_link(
            ctx, principal, link_id, status, meta, reason=reason or None, note=note.strip()
        )
    except DomainError as exc:
        return _links_page(
            request,
            ctx,
            principal,
            facility_id,
            "approved",
            error=_error(request, f"status-{link_id}", exc, ("reason",)),
            error_link_id=link_id,
            status=error_status(exc),
        )
    done = "reinstated" if status is ConnectionStatus.APPROVED else status.value
    return see_other(
        "/staff/links", facility_id=facility_id, view="approved", done=done, cancelled=cancelled or None
    )


def _ends_at(ends_on: date | None, no_end: bool, tz: str) -> datetime | None:
    """The moment a restriction ends: 00:00 of the chosen day in the facility's time, or never."""
    if no_end:
        return None
    if ends_on is None:
        raise InvalidInput(
            "restriction.end_required",
            N_("Please give the day it ends, or choose no end."),
            field="ends_at",
        )
    try:
        return check_local_time_exists(ends_on, time(0), zone(tz))
    except InvalidInput as exc:
        exc.field = "ends_at"
        raise


@router.post("/staff/links/{link_id}/restriction", dependencies=[CsrfChecked])
def restrict_visitor(
    link_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    visitor_id: Annotated[FormId, Form()],
    facility_id: Annotated[FormId, Form()],
    kind: Annotated[RestrictionKind, Form()],
    view: FormView = "requests",
    ends_on: Annotated[date | None, Form()] = None,
    no_end: Annotated[bool, Form()] = False,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """A ban or suspension of the visitor of a link card, at the facility of the page."""
    try:
        _, facility = facility_choice(ctx, principal, CLERK_ROLES, facility_id)
        assert facility is not None
        _, cancelled = vetting.add_restriction(
            ctx,
            principal,
            visitor_id,
            facility.id,
            kind,
            meta,
            reason=reason,
            ends_at=_ends_at(ends_on, no_end, facility.timezone),
        )
    except DomainError as exc:
        return _links_page(
            request,
            ctx,
            principal,
            facility_id,
            view,
            error=_error(request, f"restrict-{link_id}", exc, RESTRICTION_FIELDS),
            error_link_id=link_id,
            status=error_status(exc),
        )
    return see_other(
        "/staff/links", facility_id=facility_id, view=view, done="restricted", cancelled=cancelled or None
    )


# --- restrictions, keep-apart orders, alerts ----------------------------------------------------


def _restrictions_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    facility_id: int | None,
    *,
    done: str | None = None,
    error: FormError | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> Response:
    facilities, facility = facility_choice(ctx, principal, CLERK_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Restrictions"))
    return render(
        request,
        "vetting_restrictions.html",
        {
            "facilities": facilities,
            "facility": facility,
            "restrictions": vetting.facility_restrictions(ctx, principal, facility.id),
            "orders": queries.keep_apart_orders(ctx, principal, facility.id, CLERK_ROLES),
            "alerts": queries.resident_alerts(ctx, principal, facility.id, CLERK_ROLES),
            "form": {
                "number_a": "",
                "number_b": "",
                "reason": "",
                "number": "",
                "note": "",
                **(values or {}),
            },
            "done_message": RESTRICTIONS_DONE.get(done or ""),
            "error": error,
        },
        status=status,
    )


@router.get("/staff/restrictions")
def restrictions_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _restrictions_page(request, ctx, principal, facility_id, done=done)


@router.post("/staff/restrictions/{restriction_id}/lift", dependencies=[CsrfChecked])
def lift_restriction(
    restriction_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId | None, Form()] = None,
) -> Response:
    try:
        vetting.lift_restriction(ctx, principal, restriction_id, meta)
    except DomainError as exc:
        return _restrictions_page(
            request, ctx, principal, facility_id, error=_error(request, "lift", exc), status=error_status(exc)
        )
    return see_other("/staff/restrictions", facility_id=facility_id, done="lifted")


def _resident_id(ctx: AppContext, p: Principal, facility_id: int, number: str, field: str) -> int:
    """The id of the facility's resident with `number`; an unknown number is said beside its field."""
    try:
        return queries.resident_by_number(ctx, p, facility_id, number, CLERK_ROLES).id
    except NotFound as exc:
        if exc.code == "resident.not_found":
            exc.field = field
        raise


@router.post("/staff/keep-apart", dependencies=[CsrfChecked])
def keep_apart(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId, Form()],
    number_a: Annotated[str, Form(max_length=32)] = "",
    number_b: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        first = _resident_id(ctx, principal, facility_id, number_a, "number_a")
        second = _resident_id(ctx, principal, facility_id, number_b, "number_b")
        vetting.set_keep_apart(ctx, principal, first, second, meta, reason=reason)
    except DomainError as exc:
        renamed = {"resident_b": "number_b"}
        return _restrictions_page(
            request,
            ctx,
            principal,
            facility_id,
            error=_error(request, "keep_apart", exc, KEEP_APART_FIELDS, renamed),
            status=error_status(exc),
            values={"number_a": number_a, "number_b": number_b, "reason": reason},
        )
    return see_other("/staff/restrictions", facility_id=facility_id, done="kept_apart")


@router.post("/staff/alerts", dependencies=[CsrfChecked])
def resident_alert(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId, Form()],
    action: Annotated[str, Form(pattern="^(set|clear)$")],
    number: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        resident_id = _resident_id(ctx, principal, facility_id, number, "number")
        vetting.set_alert(ctx, principal, resident_id, meta, note=note if action == "set" else None)
    except DomainError as exc:
        return _restrictions_page(
            request,
            ctx,
            principal,
            facility_id,
            error=_error(request, "alert", exc, ("number", "note")),
            status=error_status(exc),
            values={"number": number, "note": note},
        )
    done = "alert_set" if action == "set" else "alert_cleared"
    return see_other("/staff/restrictions", facility_id=facility_id, done=done)


# --- attorneys ----------------------------------------------------------------------------------


def _attorneys_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    *,
    done: str | None = None,
    error: FormError | None = None,
    status: int = 200,
) -> Response:
    require_role(principal, *CLERK_ROLES)
    claims = vetting.attorney_queue(ctx, principal)
    language = language_of(request)
    if error is not None and error.form not in {f"attorney-{v.id}" for _a, v, _e in claims}:
        error = FormError("page", error.code, error.message, None)
    return render(
        request,
        "vetting_attorneys.html",
        {
            "claims": claims,
            "registry": vetting.do_not_record_registry(ctx, principal),
            "date_text": lambda day: medium_date(day, language),
            "done_message": ATTORNEYS_DONE.get(done or ""),
            "error": error,
        },
        status=status,
    )


@router.get("/staff/attorneys")
def attorneys_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _attorneys_page(request, ctx, principal, done=done)


@router.post("/staff/attorneys/{visitor_id}/verification", dependencies=[CsrfChecked])
def verify_attorney(
    visitor_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    decision: Annotated[str, Form(pattern="^(verify|reject)$")],
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    approve = decision == "verify"
    try:
        vetting.verify_attorney(ctx, principal, visitor_id, meta, approve=approve, note=note.strip())
    except DomainError as exc:
        return _attorneys_page(
            request,
            ctx,
            principal,
            error=_error(request, f"attorney-{visitor_id}", exc),
            status=error_status(exc),
        )
    return see_other("/staff/attorneys", done="verified" if approve else "rejected")
