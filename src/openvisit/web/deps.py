"""FastAPI dependencies as named types: the context, who is asking, and the CSRF check."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

import sqlalchemy as sa
from fastapi import Depends, Path, Query, Request

from openvisit.domain.errors import Forbidden, NotAuthenticated
from openvisit.domain.principal import Principal
from openvisit.services import auth
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, Caller, RequestMeta
from openvisit.services.live_rooms import LiveRooms
from openvisit.web.i18n import pick_language
from openvisit.web.templating import CSRF_COOKIE, LANGUAGE_COOKIE, SESSION_COOKIE, ctx_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


# Dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in the thread
# pool, a hop to another thread and back for every one of them on every request.


async def get_ctx(request: Request) -> AppContext:
    return ctx_of(request)


def request_meta(request: Request) -> RequestMeta:
    """Where a request comes from, for the audit log."""
    host = request.client.host if request.client else "unknown"
    return RequestMeta(ip=host, user_agent=request.headers.get("user-agent", "")[:300])


async def get_meta(request: Request) -> RequestMeta:
    return request_meta(request)


def live_rooms_of(request: Request) -> LiveRooms:
    """The live rooms of this server process (app.state.live)."""
    rooms: LiveRooms = request.app.state.live
    return rooms


T = TypeVar("T")


async def off_loop(work: Callable[[], T]) -> T:
    """Run blocking work (the database) in asyncio's default thread pool: one hop, and a light one.

    FastAPI runs a plain `def` route, and each of its plain `def` dependencies, through anyio's thread
    pool: a hop each, and anyio's bookkeeping costs a booking about as much CPU as its statements'
    round trips. The busiest routes (booking, availability) are `async def` and do all their blocking
    work here, finding out who asks included (`active_principal`)."""
    return await asyncio.get_running_loop().run_in_executor(None, work)


CtxDep = Annotated[AppContext, Depends(get_ctx)]
MetaDep = Annotated[RequestMeta, Depends(get_meta)]


def _check_csrf_header(request: Request, ctx: AppContext) -> None:
    # A cookie-authenticated change through the API needs the page's token in a header, so another
    # site cannot ride on the browser's cookie.
    if request.method in SAFE_METHODS:
        return
    if not auth.csrf_valid(ctx, request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)):
        raise Forbidden("auth.csrf_invalid", "This page has expired. Please reload it and try again.")


def get_optional_principal(request: Request, ctx: CtxDep) -> Principal | None:
    """The caller from a bearer token or the session cookie; None when anonymous.

    A forged, expired or revoked bearer token is an error (the client meant to authenticate);
    a stale cookie just means the browser is logged out."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    token = _bearer_token(request)
    if token is not None:
        principal = _known(auth.principal_from_api_token(ctx, token))
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            principal = auth.principal_from_session(ctx, cookie)
            if principal is not None and request.url.path.startswith("/api/"):
                _check_csrf_header(request, ctx)
    _remember(request, principal)
    return principal


def _bearer_token(request: Request) -> str | None:
    """The bearer token the request carries; None without an Authorization header."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("auth.unsupported_scheme", "Use a bearer token.")
    return token.strip()


def _known(principal: Principal | None) -> Principal:
    if principal is None:
        raise NotAuthenticated("auth.invalid_token", "The access token is not valid or has expired.")
    return principal


def _remember(request: Request, principal: Principal | None) -> None:
    """The request's caller, and the language it is answered in from now on."""
    request.state.principal = principal
    request.state.language = pick_language(
        request.cookies.get(LANGUAGE_COOKIE),
        principal.language if principal else None,
        accept_language=request.headers.get("accept-language"),
    )


def active_caller(request: Request, ctx: AppContext) -> Caller:
    """For a use case that takes a Caller, run in the caller's own thread (see `off_loop`): with a
    bearer token, how to find the caller on the use case's own connection, as the first statement of
    its transaction (one pooled connection for the request instead of two); otherwise the caller, as
    `active_principal` finds them."""
    token = None if hasattr(request.state, "principal") else _bearer_token(request)
    if token is None:
        return active_principal(request, ctx)

    def find(connection: sa.Connection) -> Principal:
        principal = _known(auth.principal_from_api_token(ctx, token, connection=connection))
        _remember(request, principal)
        return require_active(principal)

    return find


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


def active_principal(request: Request, ctx: AppContext) -> Principal:
    """What CurrentPrincipal gives a route, found in the caller's own thread (see `off_loop`)."""
    return require_active(get_optional_principal(request, ctx))


async def get_principal(principal: OptionalPrincipal) -> Principal:
    """A logged-in caller who has completed the second factor."""
    return require_active(principal)


async def get_pending_principal(principal: OptionalPrincipal) -> Principal:
    """A logged-in caller, second factor done or not (for enrolling it)."""
    if principal is None:
        raise NotAuthenticated()
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
PendingPrincipal = Annotated[Principal, Depends(get_pending_principal)]


async def check_form_csrf(request: Request) -> None:
    """Every form post carries the token that matches the browser's CSRF cookie."""
    form = await request.form()
    submitted = form.get("csrf_token")
    if not auth.csrf_valid(
        ctx_of(request), request.cookies.get(CSRF_COOKIE), submitted if isinstance(submitted, str) else None
    ):
        raise Forbidden("auth.csrf_invalid", "This form has expired. Please reload the page and try again.")


CsrfChecked = Depends(check_form_csrf)

MAX_ID = 2**31 - 1
"""Ids are 32-bit on PostgreSQL; anything larger is refused as bad input, not sent to the database."""
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
