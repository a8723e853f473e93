"""Every failure leaves as {"error": {"code", "message"}} (JSON) or a page saying the same, in one place."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from openvisit.domain.errors import N_, DomainError, NotAuthenticated, TooManyRequests
from openvisit.web.i18n import translate
from openvisit.web.templating import render_error_page

log = logging.getLogger("openvisit.web")

STATUS_BY_KIND: dict[str, int] = {
    "invalid": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "throttled": 429,
}

HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("request.invalid", N_("The request is not valid.")),
    401: ("auth.required", N_("Please log in.")),
    403: ("auth.forbidden", N_("You are not allowed to do this.")),
    404: ("not_found", N_("Not found.")),
    405: ("request.method_not_allowed", N_("This method is not allowed here.")),
    406: ("request.not_acceptable", N_("This format cannot be produced.")),
    413: ("request.too_large", N_("The request is too large.")),
    415: ("request.unsupported_media_type", N_("This content type is not accepted.")),
    422: ("request.invalid", N_("The request is not valid.")),
    429: ("rate_limited", N_("Too many attempts. Please wait and try again.")),
}


def wants_json(request: Request) -> bool:
    """API paths and clients that ask for JSON get JSON; browsers get a page."""
    if request.url.path.startswith("/api/") or request.url.path in ("/healthz", "/readyz"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def language_of(request: Request) -> str:
    return str(getattr(request.state, "language", "en"))


def error_body(
    code: str, message: str, *, field: str | None = None, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    if details:
        error["details"] = details
    return {"error": error}


def render_error(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The same error as JSON for API clients or as a page for people."""
    if wants_json(request):
        return JSONResponse(error_body(code, message, field=field, details=details), status, headers=headers)
    return render_error_page(request, status, code, message, headers=headers)


def login_redirect(request: Request) -> Response:
    if request.url.path.startswith("/station"):
        return RedirectResponse("/station/login", status_code=303)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _validation_details(exc: RequestValidationError, language: str) -> tuple[str, str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    code, message = "request.invalid", "The request is not valid."
    for err in exc.errors()[:20]:
        kind = str(err.get("type", ""))
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body",)]
        if kind == "json_invalid":
            code, message = "request.malformed_json", N_("The request body is not valid JSON.")
        elif kind == "extra_forbidden":
            code, message = "request.unknown_field", N_("The request has a field that is not allowed.")
        details.append({"field": ".".join(loc), "type": kind, "message": str(err.get("msg", ""))[:200]})
    return code, translate(language, message), details


def domain_error_response(request: Request, exc: DomainError) -> Response:
    """A refusal from the services, in the caller's language."""
    if not wants_json(request):
        # People are sent where they can fix it: to the login form, or to enrol their second factor.
        if isinstance(exc, NotAuthenticated) and exc.code == "auth.required":
            return login_redirect(request)
        if exc.code == "auth.totp_enrolment_required":
            return RedirectResponse("/account/security", status_code=303)
    status = STATUS_BY_KIND.get(exc.kind, 400)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
    message = translate(language_of(request), exc.message, exc.params)
    return render_error(request, status, exc.code, message, field=exc.field, headers=headers)


def validation_error_response(request: Request, exc: RequestValidationError) -> Response:
    """A body or parameter that does not fit: 400 for malformed JSON, 422 for the rest, field by field."""
    code, message, details = _validation_details(exc, language_of(request))
    status = 400 if code == "request.malformed_json" else 422
    return render_error(request, status, code, message, details=details)


def install(app: FastAPI) -> None:
    """Map the DomainError tree, validation errors, HTTP errors and crashes to one format."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return domain_error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return validation_error_response(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code, message = HTTP_CODES.get(exc.status_code, ("error", N_("Something went wrong.")))
        headers = dict(exc.headers) if exc.headers else None
        return render_error(
            request, exc.status_code, code, translate(language_of(request), message), headers=headers
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = translate(language_of(request), "Something went wrong on our side. Please try again.")
        return render_error(request, 500, "internal", message)
