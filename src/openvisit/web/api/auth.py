"""Bearer tokens for API clients and stations; who am I."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from openvisit.services import auth
from openvisit.web.deps import CtxDep, MetaDep, PendingPrincipal
from openvisit.web.schemas import GrantRead, MeRead, StationTokenCreate, TokenCreate, TokenRead

router = APIRouter(tags=["auth"])


@router.post("/auth/token", response_model=TokenRead, status_code=201)
def create_token(body: TokenCreate, ctx: CtxDep, meta: MetaDep) -> TokenRead:
    """Exchange an email, password (and TOTP code for staff) for a bearer token."""
    result = auth.login(ctx, body.email, body.password, meta, totp_code=body.totp, channel="token")
    return TokenRead(access_token=result.token, expires_at=result.expires_at)


@router.post("/auth/station-token", response_model=TokenRead, status_code=201)
def create_station_token(body: StationTokenCreate, ctx: CtxDep, meta: MetaDep) -> TokenRead:
    """A resident at an enrolled station: number and PIN for a short-lived token."""
    result = auth.station_login(
        ctx, body.station_code, body.station_key, body.number, body.pin, meta, channel="token"
    )
    return TokenRead(access_token=result.token, expires_at=result.expires_at)


@router.post("/auth/logout", status_code=204)
def revoke_token(request: Request, principal: PendingPrincipal, ctx: CtxDep, meta: MetaDep) -> Response:
    """Revoke the bearer token this request carries."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        auth.logout(ctx, token.strip(), meta)
    return Response(status_code=204)


@router.get("/me", response_model=MeRead)
def me(principal: PendingPrincipal) -> MeRead:
    """Who the caller is and which roles they hold where."""
    return MeRead(
        kind=principal.kind.value,
        user_id=principal.user_id,
        visitor_id=principal.visitor_id,
        resident_id=principal.resident_id,
        station_id=principal.station_id,
        label=principal.label,
        language=principal.language,
        timezone=principal.timezone,
        roles=[
            GrantRead(role=g.role.value, facility_id=g.facility_id, link_center_id=g.link_center_id)
            for g in principal.grants
        ],
        second_factor_pending=principal.second_factor_pending,
    )
