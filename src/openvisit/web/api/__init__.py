"""The JSON API under /api/v1."""

from __future__ import annotations

from fastapi import APIRouter

from openvisit.web.api import (
    audit,
    auth,
    directory,
    registry,
    residents,
    residents_import,
    scheduling,
    visits,
)
from openvisit.web.schemas import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 409, 413, 422, 429)
}


def router() -> APIRouter:
    api = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
    for module in (auth, directory, residents_import, residents, visits, scheduling, registry, audit):
        api.include_router(module.router)
    return api
