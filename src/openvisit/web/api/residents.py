"""Residents, as far as the caller may see them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openvisit.services import queries
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath, IdQuery
from openvisit.web.schemas import Page, ResidentRead

router = APIRouter(tags=["residents"])


@router.get("/residents", response_model=Page[ResidentRead])
def list_residents(
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[ResidentRead]:
    """Residents of the caller's facilities (staff) or those they are approved to visit (visitors)."""
    rows = queries.residents(ctx, principal, facility_id=facility_id, search=q, limit=limit, offset=offset)
    return Page[ResidentRead](
        items=[ResidentRead.model_validate(r) for r in rows], limit=limit, offset=offset
    )


@router.get("/residents/{resident_id}", response_model=ResidentRead)
def get_resident(resident_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> ResidentRead:
    """One resident; 404 whether missing or not the caller's to see."""
    return ResidentRead.model_validate(queries.resident(ctx, principal, resident_id))
