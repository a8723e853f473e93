"""Pages for becoming a visitor and staying one: registration (as family or as an attorney), the
emailed confirmation, a forgotten password; the visitor's own profile, children, identity documents
and restrictions; links to the people they visit. Each change calls one service and redirects
(post/redirect/get); a refusal is shown beside its field, in the reader's language, with its 4xx.

What could tell whether an address has an account (registration, a forgotten password) always ends on
the same "check your email" page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from openvisit.domain.enums import ConnectionStatus, DocumentKind, Relationship
from openvisit.domain.errors import N_, DomainError, InvalidInput
from openvisit.domain.principal import Principal
from openvisit.services import documents, queries, registry, vetting
from openvisit.services.context import AppContext
from openvisit.services.registry import AttorneyClaim, Registration
from openvisit.services.users import VisitorProfile
from openvisit.services.vetting import LinkRequest
from openvisit.web.deps import (
    MAX_ID,
    CsrfChecked,
    CtxDep,
    CurrentPrincipal,
    IdPath,
    MetaDep,
    OptionalPrincipal,
)
from openvisit.web.forms import error_status, language_of, see_other
from openvisit.web.i18n import translate
from openvisit.web.labels import medium_date, reason_label, zone_label
from openvisit.web.templating import render

router = APIRouter(include_in_schema=False)

FormId = Annotated[int, Field(ge=1, le=MAX_ID)]

RUSSIAN_ZONES = (
    "Europe/Kaliningrad",
    "Europe/Moscow",
    "Europe/Samara",
    "Asia/Yekaterinburg",
    "Asia/Omsk",
    "Asia/Novosibirsk",
    "Asia/Krasnoyarsk",
    "Asia/Irkutsk",
    "Asia/Yakutsk",
    "Asia/Vladivostok",
    "Asia/Magadan",
    "Asia/Kamchatka",
)
"""Russia's zones west to east: most families and most facilities are in one of these."""

OTHER_ZONES = (
    "Europe/Minsk",
    "Europe/Kyiv",
    "Asia/Almaty",
    "Asia/Tashkent",
    "Asia/Bishkek",
    "Asia/Yerevan",
    "Asia/Tbilisi",
    "Asia/Baku",
    "Europe/Istanbul",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "UTC",
)
"""Zones of neighbours and of the diaspora, after Russia's own."""

LANGUAGE_ZONES: dict[str, str] = {"ru": "Europe/Moscow"}
"""The zone offered first to a new visitor by the language of their browser."""

CHILD_FIELDS = ("last_name", "first_name", "birth_date")
LINK_FIELDS = ("facility_id", "number", "last_name", "birth_date", "relationship", "dependent_id")

ME_DONE: dict[str, str] = {
    "saved": N_("Your profile is saved."),
    "sent": N_("We have sent you a new confirmation link."),
    "child_added": N_("The child is added."),
    "child_removed": N_("The child is removed."),
    "uploaded": N_("The photo is uploaded. Staff will look at it when they decide your request."),
}
LINKS_DONE: dict[str, str] = {
    "requested": N_("Your request is sent. Staff will check it and you will be told their decision."),
}


# --- helpers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormError:
    """A refusal as a page shows it: beside `field` of the form called `form`, or above it."""

    form: str
    code: str
    message: str
    field: str | None


def _error(request: Request, form: str, exc: DomainError, fields: Sequence[str] = ()) -> FormError:
    return FormError(
        form,
        exc.code,
        translate(language_of(request), exc.message, exc.params),
        exc.field if exc.field in fields else None,
    )


def _zones(language: str, ctx: AppContext, current: str | None = None) -> list[tuple[str, str]]:
    """The zones to choose from, named as people say them ("Krasnoyarsk, UTC+7"), Russia's first; a
    zone set elsewhere (through the API) is kept at the top so that saving does not change it."""
    now = ctx.clock()
    names = list(RUSSIAN_ZONES + OTHER_ZONES)
    if current and current not in names:
        names.insert(0, current)
    return [(name, zone_label(now, language, name)) for name in names]


def _default_zone(language: str, ctx: AppContext) -> str:
    return LANGUAGE_ZONES.get(language, ctx.settings.default_timezone)


# --- the profile form, shared by registration and the profile page -------------------------------

PROFILE_FIELDS = (
    "last_name",
    "first_name",
    "middle_name",
    "birth_date",
    "phone",
    "home_city",
    "language",
    "timezone",
)


@dataclass(frozen=True)
class ProfileFormData:
    """The person's details as posted; the services check them (browsers check required fields too)."""

    last_name: str
    first_name: str
    middle_name: str
    birth_date: date | None
    phone: str
    home_city: str
    language: str
    timezone: str

    def profile(self) -> VisitorProfile:
        if self.birth_date is None:
            raise InvalidInput(
                "user.invalid_birth_date", N_("Please check the date of birth."), field="birth_date"
            )
        return VisitorProfile(
            self.last_name,
            self.first_name,
            self.birth_date,
            self.middle_name,
            self.phone.strip() or None,
            self.home_city,
        )

    def values(self) -> dict[str, Any]:
        return {**self.__dict__, "birth_date": self.birth_date.isoformat() if self.birth_date else ""}


def profile_form_data(
    last_name: Annotated[str, Form(max_length=120)] = "",
    first_name: Annotated[str, Form(max_length=120)] = "",
    middle_name: Annotated[str, Form(max_length=120)] = "",
    birth_date: Annotated[date | None, Form()] = None,
    phone: Annotated[str, Form(max_length=32)] = "",
    home_city: Annotated[str, Form(max_length=120)] = "",
    language: Annotated[str, Form(max_length=8)] = "",
    timezone: Annotated[str, Form(max_length=64)] = "",
) -> ProfileFormData:
    return ProfileFormData(
        last_name, first_name, middle_name, birth_date, phone, home_city, language, timezone
    )


ProfileForm = Annotated[ProfileFormData, Depends(profile_form_data)]


# --- registration -------------------------------------------------------------------------------

REGISTER_FIELDS = ("email", "password", "licence_number", "organisation", *PROFILE_FIELDS)


def _register_page(
    request: Request,
    ctx: CtxDep,
    values: dict[str, Any],
    *,
    error: DomainError | None = None,
) -> Response:
    language = language_of(request)
    return render(
        request,
        "registry_register.html",
        {
            "form": values,
            "zones": _zones(language, ctx),
            "error": _error(request, "register", error, REGISTER_FIELDS) if error else None,
        },
        status=error_status(error),
    )


@router.get("/register")
def register_page(request: Request, ctx: CtxDep, principal: OptionalPrincipal) -> Response:
    if principal is not None and not principal.second_factor_pending:
        return see_other("/")
    language = language_of(request)
    return _register_page(
        request,
        ctx,
        {
            "role": "family",
            "email": "",
            "licence_number": "",
            "organisation": "",
            **ProfileFormData("", "", "", None, "", "", language, _default_zone(language, ctx)).values(),
        },
    )


@router.post("/register", dependencies=[CsrfChecked])
def register(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    form: ProfileForm,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    role: Annotated[str, Form(pattern="^(family|attorney)$")] = "family",
    licence_number: Annotated[str, Form(max_length=64)] = "",
    organisation: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    values = {
        **form.values(),
        "role": role,
        "email": email,
        "licence_number": licence_number,
        "organisation": organisation,
    }
    try:
        registry.register(
            ctx,
            Registration(
                email=email,
                password=password,
                profile=form.profile(),
                language=form.language,
                timezone=form.timezone,
                attorney=AttorneyClaim(licence_number, organisation) if role == "attorney" else None,
            ),
            meta,
        )
    except DomainError as exc:
        return _register_page(request, ctx, values, error=exc)
    # The same page whether the address was new or already had an account (it is told so by email).
    return see_other("/register/sent")


@router.get("/register/sent")
def register_sent(request: Request) -> Response:
    return render(request, "registry_check_email.html", {"what": "register"})


@router.get("/register/confirm")
def confirm_email(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    principal: OptionalPrincipal,
    token: Annotated[str, Query(max_length=2000)] = "",
) -> Response:
    # Opening the emailed link is the confirmation: it proves the mailbox, and doing it twice is harmless.
    try:
        email = registry.confirm_email(ctx, token, meta)
    except DomainError as exc:
        return render(
            request,
            "registry_confirmed.html",
            {"error": _error(request, "confirm", exc), "email": None},
            status=error_status(exc),
        )
    return render(request, "registry_confirmed.html", {"email": email, "error": None})


# --- a forgotten password -----------------------------------------------------------------------


@router.get("/password/forgot")
def forgot_page(request: Request) -> Response:
    return render(request, "registry_forgot.html", {"email": "", "error": None})


@router.post("/password/forgot", dependencies=[CsrfChecked])
def forgot(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    email: Annotated[str, Form(max_length=254)] = "",
) -> Response:
    try:
        registry.request_password_reset(ctx, email, meta)
    except DomainError as exc:
        return render(
            request,
            "registry_forgot.html",
            {"email": email, "error": _error(request, "forgot", exc, ("email",))},
            status=error_status(exc),
        )
    return see_other("/password/sent")


@router.get("/password/sent")
def forgot_sent(request: Request) -> Response:
    return render(request, "registry_check_email.html", {"what": "reset"})


@router.get("/password/reset")
def reset_page(request: Request, token: Annotated[str, Query(max_length=2000)] = "") -> Response:
    return render(request, "registry_reset.html", {"token": token, "error": None})


@router.post("/password/reset", dependencies=[CsrfChecked])
def reset(
    request: Request,
    ctx: CtxDep,
    meta: MetaDep,
    token: Annotated[str, Form(max_length=2000)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    try:
        registry.reset_password(ctx, token, password, meta)
    except DomainError as exc:
        return render(
            request,
            "registry_reset.html",
            {"token": token, "error": _error(request, "reset", exc, ("password", "token"))},
            status=error_status(exc),
        )
    return see_other("/password/changed")


@router.get("/password/changed")
def reset_done(request: Request) -> Response:
    return render(request, "registry_password_changed.html")


# --- my profile ---------------------------------------------------------------------------------


@dataclass
class MeForms:
    """What the profile page's forms hold when one of them comes back with an error."""

    profile: dict[str, Any] | None = None
    child: dict[str, Any] = field(
        default_factory=lambda: {"last_name": "", "first_name": "", "birth_date": ""}
    )
    kind: str = DocumentKind.ID_FRONT.value


def _me_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    *,
    done: str | None = None,
    error: FormError | None = None,
    status: int = 200,
    forms: MeForms | None = None,
) -> Response:
    me = registry.profile(ctx, principal)
    forms = forms or MeForms()
    language = language_of(request)
    profile_values = forms.profile or {
        "last_name": me.visitor.last_name,
        "first_name": me.visitor.first_name,
        "middle_name": me.visitor.middle_name,
        "birth_date": me.visitor.birth_date.isoformat(),
        "phone": me.visitor.phone or "",
        "home_city": me.visitor.home_city,
        "language": me.user.language,
        "timezone": me.user.timezone,
    }
    zones = {f.id: f.timezone for f in queries.facilities(ctx, principal)}
    restrictions = [
        (r, name, zones.get(r.facility_id or 0)) for r, name in vetting.my_restrictions(ctx, principal)
    ]
    return render(
        request,
        "registry_me.html",
        {
            "me": me,
            "form": profile_values,
            "child": forms.child,
            "kind": forms.kind,
            "zones": _zones(language, ctx, me.user.timezone),
            "documents": documents.documents_of(ctx, principal.visitor_id or 0),
            "document_kinds": [k.value for k in DocumentKind],
            "restrictions": restrictions,
            "done_message": ME_DONE.get(done or ""),
            "error": error,
            "max_mb": documents.MAX_UPLOAD_BYTES // (1024 * 1024),
            "date_text": lambda day: medium_date(day, language),
        },
        status=status,
    )


@router.get("/me")
def me_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _me_page(request, ctx, principal, done=done)


@router.post("/me/profile", dependencies=[CsrfChecked])
def save_profile(
    request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep, form: ProfileForm
) -> Response:
    try:
        registry.update_profile(
            ctx, principal, form.profile(), language=form.language, timezone=form.timezone, meta=meta
        )
    except DomainError as exc:
        return _me_page(
            request,
            ctx,
            principal,
            error=_error(request, "profile", exc, PROFILE_FIELDS),
            status=error_status(exc),
            forms=MeForms(profile=form.values()),
        )
    return see_other("/me?done=saved")


@router.post("/me/confirmation", dependencies=[CsrfChecked])
def resend_confirmation(request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    try:
        registry.resend_confirmation(ctx, principal)
    except DomainError as exc:
        return _me_page(
            request, ctx, principal, error=_error(request, "confirmation", exc), status=error_status(exc)
        )
    return see_other("/me?done=sent")


@router.post("/me/children", dependencies=[CsrfChecked])
def add_child(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    last_name: Annotated[str, Form(max_length=120)] = "",
    first_name: Annotated[str, Form(max_length=120)] = "",
    birth_date: Annotated[date | None, Form()] = None,
) -> Response:
    try:
        if birth_date is None:
            raise InvalidInput(
                "user.invalid_birth_date", N_("Please check the date of birth."), field="birth_date"
            )
        registry.add_dependent(ctx, principal, last_name, first_name, birth_date, meta)
    except DomainError as exc:
        child = {
            "last_name": last_name,
            "first_name": first_name,
            "birth_date": birth_date.isoformat() if birth_date else "",
        }
        return _me_page(
            request,
            ctx,
            principal,
            error=_error(request, "child", exc, CHILD_FIELDS),
            status=error_status(exc),
            forms=MeForms(child=child),
        )
    return see_other("/me?done=child_added")


@router.post("/me/children/{dependent_id}/remove", dependencies=[CsrfChecked])
def remove_child(
    dependent_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    try:
        registry.remove_dependent(ctx, principal, dependent_id, meta)
    except DomainError as exc:
        return _me_page(
            request, ctx, principal, error=_error(request, "children", exc), status=error_status(exc)
        )
    return see_other("/me?done=child_removed")


@router.post("/me/documents", dependencies=[CsrfChecked])
async def upload_document(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    kind: Annotated[DocumentKind, Form()],
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    # One byte more than allowed is enough for the service to say the file is too large.
    raw = await file.read(documents.MAX_UPLOAD_BYTES + 1) if file is not None else b""
    try:
        await run_in_threadpool(documents.upload, ctx, principal, kind, raw, meta)
    except DomainError as exc:
        error = _error(request, "document", exc, ("file", "kind"))
        response: Response = await run_in_threadpool(
            _me_page,
            request,
            ctx,
            principal,
            error=error,
            status=error_status(exc),
            forms=MeForms(kind=kind.value),
        )
        return response
    return see_other("/me?done=uploaded")


# --- the people I visit -------------------------------------------------------------------------


def _links_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    *,
    done: str | None = None,
    error: FormError | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
) -> Response:
    me = registry.profile(ctx, principal)
    rows = vetting.my_links(ctx, principal)
    language = language_of(request)
    return render(
        request,
        "registry_links.html",
        {
            "rows": rows,
            "refused": {ConnectionStatus.REJECTED, ConnectionStatus.SUSPENDED, ConnectionStatus.REVOKED},
            "reason": lambda code: translate(language, reason_label(code)),
            "facilities": queries.facilities(ctx, principal),
            "relationships": [r.value for r in Relationship],
            "children": me.dependents,
            "email_confirmed": me.user.email_verified_at is not None,
            "form": values
            or {
                "facility_id": None,
                "number": "",
                "last_name": "",
                "birth_date": "",
                "relationship": "",
                "dependent_id": None,
            },
            "done_message": LINKS_DONE.get(done or ""),
            "error": error,
        },
        status=status,
    )


@router.get("/me/links")
def links_page(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    return _links_page(request, ctx, principal, done=done)


@router.post("/me/links", dependencies=[CsrfChecked])
def ask_for_link(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    facility_id: Annotated[FormId | None, Form()] = None,
    number: Annotated[str, Form(max_length=32)] = "",
    last_name: Annotated[str, Form(max_length=120)] = "",
    birth_date: Annotated[date | None, Form()] = None,
    relationship: Annotated[Relationship | None, Form()] = None,
    dependent_id: Annotated[FormId | None, Form()] = None,
) -> Response:
    values = {
        "facility_id": facility_id,
        "number": number,
        "last_name": last_name,
        "birth_date": birth_date.isoformat() if birth_date else "",
        "relationship": relationship.value if relationship else "",
        "dependent_id": dependent_id,
    }
    try:
        vetting.request_link(
            ctx, principal, _link_request(values, facility_id, birth_date, relationship), meta
        )
    except DomainError as exc:
        return _links_page(
            request,
            ctx,
            principal,
            error=_error(request, "link", exc, LINK_FIELDS),
            status=error_status(exc),
            values=values,
        )
    return see_other("/me/links?done=requested")


def _link_request(
    values: dict[str, Any],
    facility_id: int | None,
    birth_date: date | None,
    relationship: Relationship | None,
) -> LinkRequest:
    """The request as the service takes it; a missing choice is said beside its field."""
    if facility_id is None:
        raise InvalidInput("link.facility_required", N_("Please choose the facility."), field="facility_id")
    if birth_date is None:
        raise InvalidInput(
            "user.invalid_birth_date", N_("Please check the date of birth."), field="birth_date"
        )
    if relationship is None:
        raise InvalidInput(
            "link.relationship_required", N_("Please say how you are related."), field="relationship"
        )
    return LinkRequest(
        facility_id,
        str(values["number"]),
        str(values["last_name"]),
        birth_date,
        relationship,
        values["dependent_id"],
    )
