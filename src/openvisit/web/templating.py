"""Jinja2 pages in the reader's language, each carrying its CSRF token."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from openvisit.domain.principal import Principal
from openvisit.services.auth import csrf_token_for
from openvisit.services.context import AppContext
from openvisit.web.i18n import LANGUAGES, format_both, format_when, translations
from openvisit.web.labels import label_of, reason_label

CSRF_COOKIE = "ov_csrf"
SESSION_COOKIE = "ov_session"
LANGUAGE_COOKIE = "ov_lang"
STATION_COOKIE = "ov_station"
_SEED = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("openvisit.web", "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    return env


def ctx_of(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def csrf_seed(request: Request) -> str:
    """The browser's CSRF seed, or a new one that the response will set."""
    seed = request.cookies.get(CSRF_COOKIE, "")
    if _SEED.match(seed):
        return seed
    fresh: str | None = getattr(request.state, "new_csrf_seed", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.new_csrf_seed = fresh
    return fresh


def csrf_token(request: Request) -> str:
    return csrf_token_for(ctx_of(request), csrf_seed(request))


def set_cookie(
    request: Request, response: Any, name: str, value: str, *, max_age: int | None, samesite: str = "lax"
) -> None:
    """Cookies are HttpOnly always and Secure whenever the site is served over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=ctx_of(request).settings.secure_cookies,
        samesite=samesite,
        path="/",
    )


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page in the request's language with the helpers every page uses."""
    language = str(getattr(request.state, "language", "en"))
    principal: Principal | None = getattr(request.state, "principal", None)
    catalog = translations(language)

    # Translations are ours and trusted; parameters are escaped by Markup's % operator.
    def gettext(message: str, **params: Any) -> Markup:
        text = Markup(catalog.gettext(message))  # noqa: S704 - our own catalog
        return text % params if params else text

    def ngettext(singular: str, plural: str, n: int, **params: Any) -> Markup:
        text = Markup(catalog.ngettext(singular, plural, n))  # noqa: S704 - our own catalog
        return text % {"num": n, **params}

    viewer_tz = principal.timezone if principal else ctx_of(request).settings.default_timezone
    values: dict[str, Any] = {
        "request": request,
        "language": language,
        "languages": LANGUAGES,
        "principal": principal,
        "csrf_token": csrf_token(request),
        "gettext": gettext,
        "ngettext": ngettext,
        "_": gettext,
        "when": lambda value, tz=viewer_tz: format_when(value, language, tz),
        "when_both": lambda value, facility_tz: format_both(value, language, facility_tz, viewer_tz),
        "viewer_tz": viewer_tz,
        "now": ctx_of(request).clock(),
        "label": lambda value: catalog.gettext(label_of(value)),
        # A reason is a preset's code (a termination's, say) or words staff wrote, shown as they are.
        "reason_text": lambda code: catalog.gettext(reason_label(code)) if code else "",
    }
    values.update(context or {})
    html = environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    fresh = getattr(request.state, "new_csrf_seed", None)
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, fresh, max_age=None, samesite="strict")
    return response


def render_error_page(
    request: Request, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {"status": status, "code": code, "message": message},
        status=status,
        headers=headers,
    )
