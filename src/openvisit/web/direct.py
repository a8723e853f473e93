"""The API's busiest call answered without FastAPI's routing, dependency solving and response layers.

Booking is the call families make all at once when a booking window opens. FastAPI spends about as much
CPU on a request (matching it against every route, solving its dependencies, wrapping its response)
as the booking's own database work, so `DirectRoutes` answers `POST /api/v1/visits` with a JSON body
itself, with the same model, handler and error format; the FastAPI route stays for the OpenAPI schema
and for any request this does not take (another content type, say). It sits inside the app's own
middleware (language, security headers, body limit), so those apply as before."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from openvisit.domain.errors import DomainError
from openvisit.web.errors import domain_error_response, validation_error_response


@dataclass(frozen=True)
class JsonRoute:
    """`method path` with a JSON body that `model` validates, answered by `handle(body, request)`."""

    method: str
    path: str
    model: type[BaseModel]
    handle: Callable[[Any, Request], Awaitable[Response]]

    async def answer(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = _parse(self.model, raw)
        except RequestValidationError as exc:
            return validation_error_response(request, exc)
        try:
            return await self.handle(body, request)
        except DomainError as exc:
            return domain_error_response(request, exc)


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    """The body as FastAPI would give it to the route, or the validation error FastAPI would raise."""
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required"}])
    try:
        # json.loads, not pydantic's own parser, as FastAPI does: the same bodies are refused the same way.
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        position = exc.pos if isinstance(exc, json.JSONDecodeError) else exc.start
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", position), "msg": "JSON decode error"}]
        ) from None
    try:
        return model.model_validate(data, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


def _is_json(scope: Scope) -> bool:
    """Whether the body is JSON by its content type (application/json or application/*+json), as
    FastAPI decides before it parses a body."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type: bytes = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            )
    return False


class DirectRoutes:
    """Pure ASGI: each of `routes` is answered here; everything else goes on to the app."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[JsonRoute]) -> None:
        self.app = app
        self.routes = {(route.method, route.path): route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if route is None or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        response = await route.answer(Request(scope, receive))
        await response(scope, receive, send)
