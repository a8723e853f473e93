"""A facility with the people of a live visit, and visits placed where a test needs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from openvisit.db.models import ApiToken, AuditEntry, Resident, Station, Visit, VisitEvent
from openvisit.domain.enums import (
    ConnectionStatus,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.principal import Principal
from openvisit.services.auth import new_token, principal_for_resident, token_digest
from openvisit.services.context import AppContext
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_link_center,
    make_resident,
    make_staff,
    make_visit,
    make_visitor,
    principal_of,
)


@dataclass(frozen=True)
class Scene:
    place: Place
    resident_id: int
    resident_number: str
    visitor_id: int
    visitor: Principal
    resident: Principal
    officer: Principal
    investigator: Principal
    admin: Principal


def resident_principal(ctx: AppContext, resident_id: int, station_id: int) -> Principal:
    with ctx.db.read() as s:
        resident = s.get(Resident, resident_id)
        assert resident is not None
        return principal_for_resident(resident, station_id, "Asia/Krasnoyarsk")


def staff(
    ctx: AppContext, role: Role, *, facility_id: int | None = None, link_center_id: int | None = None
) -> Principal:
    email, _ = make_staff(ctx, role, facility_id=facility_id, link_center_id=link_center_id)
    return principal_of(ctx, email)


def build(ctx: AppContext, *, language: str = "en") -> Scene:
    place = make_facility(ctx)
    resident_id, number = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx, language=language)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return Scene(
        place=place,
        resident_id=resident_id,
        resident_number=number,
        visitor_id=visitor_id,
        visitor=principal_of(ctx, email),
        resident=resident_principal(ctx, resident_id, place.station_id),
        officer=staff(ctx, Role.MONITORING_OFFICER, facility_id=place.facility_id),
        investigator=staff(ctx, Role.INVESTIGATOR, facility_id=place.facility_id),
        admin=staff(ctx, Role.FACILITY_ADMIN, facility_id=place.facility_id),
    )


def visit(
    ctx: AppContext,
    scene: Scene,
    *,
    starts_at: datetime,
    length: timedelta = timedelta(minutes=30),
    kind: VisitKind = VisitKind.SOCIAL,
    status: VisitStatus = VisitStatus.APPROVED,
    visitor_id: int | None = None,
) -> int:
    """A home visit of the scene's resident at the scene's kiosk (factories.make_visit, then shaped)."""
    visit_id = make_visit(
        ctx, scene.place, scene.resident_id, visitor_id or scene.visitor_id, starts_at=starts_at
    )
    with ctx.db.write() as s:
        row = s.get(Visit, visit_id)
        assert row is not None
        row.ends_at = starts_at + length
        row.kind = kind
        row.status = status
        if status is VisitStatus.IN_PROGRESS:
            row.started_at = starts_at
    return visit_id


def at_link_center(ctx: AppContext, visit_id: int) -> tuple[int, int]:
    """Moves a visit to a new link center's booth; returns the link center and the booth."""
    center = make_link_center(ctx)
    with ctx.db.write() as s:
        booth = Station(
            code=f"B{center}-{visit_id}", name="Booth 1", kind=StationKind.LINK_BOOTH, link_center_id=center
        )
        s.add(booth)
        s.flush()
        row = s.get(Visit, visit_id)
        assert row is not None
        row.mode = VisitMode.LINK_CENTER
        row.link_center_id = center
        row.booth_station_id = booth.id
        return center, booth.id


def load(ctx: AppContext, visit_id: int) -> Visit:
    with ctx.db.read() as s:
        row = s.get(Visit, visit_id)
        assert row is not None
        return row


def audit_actions(ctx: AppContext, object_type: str, object_id: int) -> list[str]:
    with ctx.db.read() as s:
        return list(
            s.execute(
                sa.select(AuditEntry.action)
                .where(AuditEntry.object_type == object_type, AuditEntry.object_id == str(object_id))
                .order_by(AuditEntry.seq)
            ).scalars()
        )


def event_kinds(ctx: AppContext, visit_id: int) -> list[str]:
    with ctx.db.read() as s:
        return list(
            s.execute(
                sa.select(VisitEvent.kind).where(VisitEvent.visit_id == visit_id).order_by(VisitEvent.id)
            ).scalars()
        )


def token_for(ctx: AppContext, p: Principal, *, hours: int = 8) -> str:
    """A real bearer token of `p` (a user, or a resident at their station), as an API client holds one."""
    token = new_token()
    with ctx.db.write() as s:
        s.add(
            ApiToken(
                token_hash=token_digest(token),
                user_id=p.user_id,
                resident_id=None if p.user_id is not None else p.resident_id,
                station_id=p.station_id,
                name="test",
                expires_at=ctx.clock() + timedelta(hours=hours),
            )
        )
    return token
