"""What every staff page for one facility needs: the facilities to choose from and the one chosen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fastapi import Request
from fastapi.responses import Response

from openvisit.db.models import Facility
from openvisit.domain.enums import Role
from openvisit.domain.errors import N_, NotFound
from openvisit.domain.principal import Principal
from openvisit.i18n import zone
from openvisit.services import queries
from openvisit.services.access import require_role
from openvisit.services.context import AppContext
from openvisit.web.templating import render


def facility_choice(
    ctx: AppContext, p: Principal, roles: Sequence[Role], facility_id: int | None
) -> tuple[list[Facility], Facility | None]:
    """The facilities where `p` holds one of `roles` (for the chooser) and the one asked for, or the
    first. Someone without the roles is refused here; the services check the facility again."""
    require_role(p, *roles)
    allowed = p.facilities_for(roles)
    facilities = [f for f in queries.staff_facilities(ctx, p) if allowed is None or f.id in allowed]
    if facility_id is None:
        return facilities, facilities[0] if facilities else None
    chosen = next((f for f in facilities if f.id == facility_id), None)
    if chosen is None:
        raise NotFound("facility.not_found", N_("No such facility."))
    return facilities, chosen


def no_facility_page(request: Request, title: str) -> Response:
    """The page for staff who work at no facility where this page applies."""
    return render(request, "staff_no_facility.html", {"title": title})


def local_today(ctx: AppContext, facility: Facility) -> date:
    """Today in the facility's own time zone."""
    return ctx.clock().astimezone(zone(facility.timezone)).date()
