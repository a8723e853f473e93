"""Server-rendered pages. Each route parses the form, calls one service, and renders or redirects."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

import segno
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from openvisit.domain.enums import ActorKind, Role
from openvisit.domain.errors import DomainError, Forbidden
from openvisit.services import auth, delivery, queries
from openvisit.services.access import require_role
from openvisit.web.deps import (
    CsrfChecked,
    CtxDep,
    CurrentPrincipal,
    MetaDep,
    OptionalPrincipal,
    PendingPrincipal,
)
from openvisit.web.forms import error_status, see_other
from openvisit.web.i18n import LANGUAGES, translate, zone
from openvisit.web.templating import (
    CSRF_COOKIE,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    STATION_COOKIE,
    render,
    set_cookie,
)

router = APIRouter(include_in_schema=False)

STAFF_ROLES_FOR_RESIDENTS = (
    Role.VETTING_CLERK,
    Role.SCHEDULER,
    Role.MONITORING_OFFICER,
    Role.INVESTIGATOR,
    Role.FACILITY_ADMIN,
)
YEAR = 365 * 24 * 3600


def safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _form_error(request: Request, exc: DomainError) -> dict[str, str | None]:
    language = str(getattr(request.state, "language", "en"))
    return {"code": exc.code, "message": translate(language, exc.message, exc.params), "field": exc.field}


# --- home ---------------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, ctx: CtxDep, principal: OptionalPrincipal) -> Response:
    if principal is None:
        return render(request, "home.html")
    if principal.second_factor_pending:
        return see_other("/account/security")
    if principal.kind is ActorKind.RESIDENT:
        return see_other("/station")
    context: dict[str, object] = {}
    if principal.is_staff:
        context["facilities"] = queries.staff_facilities(ctx, principal)
        context["roles"] = sorted({g.role.value for g in principal.grants})
    if principal.is_visitor:
        context["connections"] = queries.my_connections(ctx, principal)
        context["visits"] = queries.visits(ctx, principal, limit=20)
    return render(request, "dashboard.html", context)


@router.get("/language/{code}")
def choose_language(request: Request, code: str, next: Annotated[str | None, Query()] = None) -> Response:
    response = see_other(safe_next(next))
    if code in LANGUAGES:
        set_cookie(request, response, LANGUAGE_COOKIE, code, max_age=YEAR)
    return response


# --- login --------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, principal: OptionalPrincipal, next: str | None = None) -> Response:
    if principal is not None and not principal.second_factor_pending:
        return see_other(safe_next(next))
    return render(request, "login.html", {"next": safe_next(next), "email": ""})


@router.post("/login", dependencies=[CsrfChecked])
def login_submit(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    email: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1024)],
    totp: Annotated[str, Form(max_length=12)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    try:
        result = auth.login(ctx, email, password, meta, totp_code=totp or None, channel="cookie")
    except DomainError as exc:
        headers = {"Retry-After": str(exc.params["seconds"])} if exc.kind == "throttled" else None
        return render(
            request,
            "login.html",
            {
                "error": _form_error(request, exc),
                "email": email,
                "next": safe_next(next),
                "ask_totp": exc.code in ("auth.totp_required",) or bool(totp),
            },
            status=error_status(exc),
            headers=headers,
        )
    target = "/account/security" if result.principal.second_factor_pending else safe_next(next)
    response = see_other(target)
    max_age = int((result.expires_at - ctx.clock()).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, result.token, max_age=max_age)
    # A new CSRF seed at login: a token planted before login is worthless after it.
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, ctx: CtxDep, meta: MetaDep) -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        auth.logout(ctx, token, meta)
    response = see_other("/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


# --- second factor ------------------------------------------------------------------------------


def _qr_data_uri(uri: str) -> str:
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


@router.get("/account/security")
def security_page(request: Request, ctx: CtxDep, principal: PendingPrincipal) -> Response:
    context: dict[str, object] = {"enrolled": not principal.second_factor_pending}
    if principal.is_staff or principal.is_visitor:
        enrolled = auth.totp_enrolled(ctx, principal)
        context["enrolled"] = enrolled
        if not enrolled:
            secret, uri = auth.begin_totp_enrolment(ctx, principal)
            context.update(secret=secret, qr=_qr_data_uri(uri), required=principal.is_staff)
    return render(request, "security.html", context)


@router.post("/account/security", dependencies=[CsrfChecked])
def security_confirm(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    principal: PendingPrincipal,
    code: Annotated[str, Form(max_length=12)],
) -> Response:
    try:
        auth.confirm_totp_enrolment(
            ctx, principal, code, meta, session_token=request.cookies.get(SESSION_COOKIE)
        )
    except DomainError as exc:
        secret, uri = auth.begin_totp_enrolment(ctx, principal)
        return render(
            request,
            "security.html",
            {
                "enrolled": False,
                "secret": secret,
                "qr": _qr_data_uri(uri),
                "error": _form_error(request, exc),
                "required": principal.is_staff,
            },
            status=error_status(exc),
        )
    return see_other("/")


# --- stations -----------------------------------------------------------------------------------


def _station_cookie(request: Request) -> tuple[str, str] | None:
    raw = request.cookies.get(STATION_COOKIE, "")
    code, sep, key = raw.partition(":")
    return (code, key) if sep and code and key else None


@router.get("/station/login")
def station_login_form(request: Request, principal: OptionalPrincipal) -> Response:
    if principal is not None and principal.kind is ActorKind.RESIDENT:
        return see_other("/station")
    enrolled = _station_cookie(request)
    if enrolled is None:
        return render(request, "station_enrol.html", {"code": ""})
    return render(request, "station_login.html", {"station_code": enrolled[0], "number": ""})


@router.post("/station/enrol", dependencies=[CsrfChecked])
def station_enrol(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    station_code: Annotated[str, Form(max_length=32)],
    station_key: Annotated[str, Form(max_length=200)],
) -> Response:
    try:
        code = auth.verify_station(ctx, station_code, station_key, meta)
    except DomainError as exc:
        return render(
            request,
            "station_enrol.html",
            {"code": station_code, "error": _form_error(request, exc)},
            status=error_status(exc),
        )
    response = see_other("/station/login")
    set_cookie(request, response, STATION_COOKIE, f"{code}:{station_key}", max_age=YEAR, samesite="strict")
    return response


@router.post("/station/forget", dependencies=[CsrfChecked])
def station_forget(request: Request) -> Response:
    response = see_other("/station/login")
    response.delete_cookie(STATION_COOKIE, path="/")
    return response


@router.post("/station/login", dependencies=[CsrfChecked])
def station_login_submit(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    number: Annotated[str, Form(max_length=32)],
    pin: Annotated[str, Form(max_length=32)],
) -> Response:
    enrolled = _station_cookie(request)
    if enrolled is None:
        return see_other("/station/login")
    try:
        result = auth.station_login(ctx, enrolled[0], enrolled[1], number, pin, meta, channel="cookie")
    except DomainError as exc:
        return render(
            request,
            "station_login.html",
            {"station_code": enrolled[0], "number": number, "error": _form_error(request, exc)},
            status=error_status(exc),
        )
    response = see_other("/station")
    max_age = int((result.expires_at - ctx.clock()).total_seconds())
    set_cookie(request, response, SESSION_COOKIE, result.token, max_age=max_age)
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/station")
def station_home(request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    if principal.kind is not ActorKind.RESIDENT or principal.resident_id is None:
        raise Forbidden("station.residents_only", "This page is for residents at a station.")
    resident = queries.resident(ctx, principal, principal.resident_id)
    now = ctx.clock()
    local_today = now.astimezone(zone(principal.timezone)).date()
    upcoming = [
        v
        for v in queries.visits(ctx, principal, resident_id=resident.id, limit=50)
        if v.ends_at >= now
        and v.starts_at.astimezone(zone(principal.timezone)).date() <= local_today + timedelta(days=7)
    ]
    upcoming.sort(key=lambda v: v.starts_at)
    messages = delivery.station_messages(ctx, principal)
    return render(
        request,
        "station_home.html",
        {
            "resident": resident,
            "visits": upcoming,
            "inbox": messages,
            "unread": sum(not m.read for m in messages),
        },
    )


@router.post("/station/messages/read", dependencies=[CsrfChecked])
def station_messages_read(ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    delivery.mark_read(ctx, principal)
    return see_other("/station")


# --- staff --------------------------------------------------------------------------------------


@router.get("/staff/residents")
def staff_residents(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    q: Annotated[str | None, Query(max_length=100)] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    require_role(principal, *STAFF_ROLES_FOR_RESIDENTS)
    size = 50
    rows = queries.residents(ctx, principal, search=q, limit=size + 1, offset=(page - 1) * size)
    facilities = {f.id: f for f in queries.staff_facilities(ctx, principal)}
    return render(
        request,
        "residents.html",
        {
            "residents": rows[:size],
            "facilities": facilities,
            "q": q or "",
            "page": page,
            "more": len(rows) > size,
            "q_param": quote(q or ""),
        },
    )


@router.get("/staff/audit")
def staff_audit(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    require_role(principal, Role.FACILITY_ADMIN)
    entries = queries.audit_entries(ctx, principal, limit=100, before_seq=before)
    return render(request, "audit.html", {"entries": entries})


@router.get("/favicon.ico")
def favicon() -> Response:
    return RedirectResponse("/static/favicon.svg", status_code=301)
