"""Read-only use cases: each opens a read session, goes through access_*/list_*, returns detached rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from openvisit.db.models import (
    AuditEntry,
    Connection,
    Facility,
    LinkCenter,
    Notification,
    Resident,
    Station,
    Visit,
)
from openvisit.domain.enums import NotificationChannel
from openvisit.domain.principal import Principal
from openvisit.services import access
from openvisit.services.context import AppContext


def facilities(ctx: AppContext, p: Principal) -> Sequence[Facility]:
    """The facility directory."""
    with ctx.db.read() as s:
        return access.list_facilities(s, p)


def facility(ctx: AppContext, p: Principal, facility_id: int) -> Facility:
    """One facility of the directory."""
    with ctx.db.read() as s:
        return access.access_facility_by_id(s, p, facility_id)


def staff_facilities(ctx: AppContext, p: Principal) -> Sequence[Facility]:
    """Facilities where `p` works."""
    with ctx.db.read() as s:
        return access.list_staff_facilities(s, p)


def link_centers(ctx: AppContext, p: Principal) -> Sequence[LinkCenter]:
    """The link-center directory."""
    with ctx.db.read() as s:
        return access.list_link_centers(s, p)


def stations(ctx: AppContext, p: Principal) -> Sequence[Station]:
    """Stations where `p` works."""
    with ctx.db.read() as s:
        return access.list_stations(s, p)


def residents(
    ctx: AppContext,
    p: Principal,
    *,
    facility_id: int | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Resident]:
    """Residents `p` may see."""
    with ctx.db.read() as s:
        return access.list_residents(s, p, facility_id=facility_id, search=search, limit=limit, offset=offset)


def resident(ctx: AppContext, p: Principal, resident_id: int) -> Resident:
    """One resident `p` may see."""
    with ctx.db.read() as s:
        return access.access_resident_by_id(s, p, resident_id)


def visits(
    ctx: AppContext,
    p: Principal,
    *,
    facility_id: int | None = None,
    resident_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Visit]:
    """Visits `p` may see, newest first."""
    with ctx.db.read() as s:
        return access.list_visits(
            s, p, facility_id=facility_id, resident_id=resident_id, limit=limit, offset=offset
        )


def visit(ctx: AppContext, p: Principal, visit_id: int) -> Visit:
    """One visit `p` may see."""
    with ctx.db.read() as s:
        return access.access_visit_by_id(s, p, visit_id)


def audit_entries(
    ctx: AppContext,
    p: Principal,
    *,
    facility_id: int | None = None,
    action: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> Sequence[AuditEntry]:
    """Audit entries `p` may read, newest first."""
    with ctx.db.read() as s:
        return access.list_audit_entries(
            s, p, facility_id=facility_id, action=action, limit=limit, before_seq=before_seq
        )


@dataclass(frozen=True)
class ConnectionRow:
    """A visitor's link to a resident, with the resident's name and facility for display."""

    connection: Connection
    resident_name: str
    facility_name: str
    facility_timezone: str


def my_connections(ctx: AppContext, p: Principal) -> list[ConnectionRow]:
    """The visitor's own links to residents, whatever their status."""
    if p.visitor_id is None:
        return []
    with ctx.db.read() as s:
        rows = s.execute(
            sa.select(Connection, Resident, Facility)
            .join(Resident, Resident.id == Connection.resident_id)
            .join(Facility, Facility.id == Resident.facility_id)
            .where(Connection.visitor_id == p.visitor_id, Connection.dependent_id.is_(None))
            .order_by(Resident.last_name, Resident.first_name)
        ).all()
        return [
            ConnectionRow(c, f"{r.last_name} {r.first_name} {r.middle_name}".strip(), f.name, f.timezone)
            for c, r, f in rows
        ]


def station_inbox(ctx: AppContext, p: Principal, *, limit: int = 20) -> Sequence[Notification]:
    """Messages to the resident at a station (booked, cancelled, why), newest first."""
    if p.resident_id is None:
        return []
    with ctx.db.read() as s:
        return (
            s.execute(
                sa.select(Notification)
                .where(
                    Notification.resident_id == p.resident_id,
                    Notification.channel == NotificationChannel.STATION,
                )
                .order_by(Notification.created_at.desc(), Notification.id.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )
