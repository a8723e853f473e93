"""Facilities, link centers and stations."""

from __future__ import annotations

from fastapi import APIRouter

from openvisit.services import queries
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath
from openvisit.web.schemas import FacilityDetail, FacilityRead, FacilityRules, LinkCenterRead, StationRead

router = APIRouter(tags=["directory"])


@router.get("/facilities", response_model=list[FacilityRead])
def list_facilities(ctx: CtxDep, principal: CurrentPrincipal) -> list[FacilityRead]:
    """Every facility, with its city and time zone."""
    return [FacilityRead.model_validate(f) for f in queries.facilities(ctx, principal)]


@router.get("/facilities/{facility_id}", response_model=FacilityDetail)
def get_facility(facility_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal) -> FacilityDetail:
    """One facility and the visiting rules it has set."""
    f = queries.facility(ctx, principal, facility_id)
    return FacilityDetail(
        **FacilityRead.model_validate(f).model_dump(), rules=FacilityRules.model_validate(f)
    )


@router.get("/link-centers", response_model=list[LinkCenterRead])
def list_link_centers(ctx: CtxDep, principal: CurrentPrincipal) -> list[LinkCenterRead]:
    """Every link center, by city."""
    return [LinkCenterRead.model_validate(c) for c in queries.link_centers(ctx, principal)]


@router.get("/stations", response_model=list[StationRead])
def list_stations(ctx: CtxDep, principal: CurrentPrincipal) -> list[StationRead]:
    """Stations of the facilities and link centers where the caller works."""
    return [StationRead.model_validate(s) for s in queries.stations(ctx, principal)]
