"""Visits, as far as the caller may see them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from openvisit.services import queries
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath, IdQuery
from openvisit.web.schemas import Page, VisitRead

router = APIRouter(tags=["visits"])


@router.get("/visits", response_model=Page[VisitRead])
def list_visits(
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    resident_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[VisitRead]:
    """Visits the caller takes part in or oversees, newest first."""
    rows = queries.visits(
        ctx, principal, facility_id=facility_id, resident_id=resident_id, limit=limit, offset=offset
    )
    return Page[VisitRead](items=[VisitRead.model_validate(v) for v in rows], limit=limit, offset=offset)


@router.get("/visits/{visit_id}", response_model=VisitRead)
def get_visit(visit_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> VisitRead:
    """One visit; 404 whether missing or not the caller's to see."""
    return VisitRead.model_validate(queries.visit(ctx, principal, visit_id))
