"""Read-only use cases: each opens a read session, goes through access_*/list_*, returns detached rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from openvisit.db.models import (
    AuditEntry,
    Connection,
    Dependent,
    Facility,
    HousingUnit,
    KeepApart,
    LinkCenter,
    Resident,
    ResidentAlert,
    Station,
    StationGroup,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import ConnectionStatus, ParticipantRole, Role
from openvisit.domain.errors import N_, NotFound
from openvisit.domain.principal import FACILITY_STAFF_ROLES, Principal
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


@dataclass(frozen=True)
class FacilityLayout:
    """A facility's station groups, housing units and stations, for the scheduling forms."""

    facility: Facility
    groups: Sequence[StationGroup]
    units: Sequence[HousingUnit]
    stations: Sequence[Station]


def facility_layout(ctx: AppContext, p: Principal, facility_id: int) -> FacilityLayout:
    """The shape of a facility where `p` works (404 elsewhere)."""
    with ctx.db.read() as s:
        facility = access.access_staff_facility_by_id(s, p, facility_id)
        groups = (
            s.execute(
                sa.select(StationGroup)
                .where(StationGroup.facility_id == facility.id)
                .order_by(StationGroup.name)
            )
            .scalars()
            .all()
        )
        units = (
            s.execute(
                sa.select(HousingUnit)
                .where(HousingUnit.facility_id == facility.id)
                .order_by(HousingUnit.code)
            )
            .scalars()
            .all()
        )
        stations = (
            s.execute(sa.select(Station).where(Station.facility_id == facility.id).order_by(Station.code))
            .scalars()
            .all()
        )
        return FacilityLayout(facility, groups, units, stations)


def my_dependents_for(ctx: AppContext, p: Principal, resident_id: int) -> Sequence[Dependent]:
    """The visitor's own children approved to visit `resident_id` (booking checks the party rules)."""
    if p.visitor_id is None:
        return []
    with ctx.db.read() as s:
        return (
            s.execute(
                sa.select(Dependent)
                .join(Connection, Connection.dependent_id == Dependent.id)
                .where(
                    Dependent.visitor_id == p.visitor_id,
                    Connection.visitor_id == p.visitor_id,
                    Connection.resident_id == resident_id,
                    Connection.status == ConnectionStatus.APPROVED,
                )
                .order_by(Dependent.first_name, Dependent.id)
            )
            .scalars()
            .all()
        )


@dataclass(frozen=True)
class VisitDetails:
    """One visit with the names a page shows beside it."""

    visit: Visit
    resident_name: str
    facility_name: str
    facility_timezone: str
    link_center_name: str | None
    people: list[tuple[ParticipantRole, str]]


def visit_details(ctx: AppContext, p: Principal, visit_id: int) -> VisitDetails:
    """A visit `p` may see, with the resident, the place and who takes part (lead first)."""
    with ctx.db.read() as s:
        visit = access.access_visit_by_id(s, p, visit_id)
        resident = s.get(Resident, visit.resident_id)
        facility = s.get(Facility, visit.facility_id)
        assert resident is not None
        assert facility is not None
        center = s.get(LinkCenter, visit.link_center_id) if visit.link_center_id is not None else None
        rows = s.execute(
            sa.select(
                VisitParticipant.role,
                Visitor.first_name,
                Visitor.last_name,
                Dependent.first_name,
                Dependent.last_name,
            )
            .outerjoin(Visitor, Visitor.id == VisitParticipant.visitor_id)
            .outerjoin(Dependent, Dependent.id == VisitParticipant.dependent_id)
            .where(VisitParticipant.visit_id == visit.id)
            .order_by(VisitParticipant.id)
        ).all()
        order = {ParticipantRole.LEAD: 0, ParticipantRole.VISITOR: 1, ParticipantRole.DEPENDENT: 2}
        people = sorted(
            (
                (role, f"{v_first or d_first or ''} {v_last or d_last or ''}".strip())
                for role, v_first, v_last, d_first, d_last in rows
            ),
            key=lambda person: order[person[0]],
        )
        return VisitDetails(
            visit,
            f"{resident.last_name} {resident.first_name} {resident.middle_name}".strip(),
            facility.name,
            facility.timezone,
            center.name if center is not None else None,
            people,
        )


# --- vetting: residents by number, keep-apart orders, alerts ---------------------------------------


def resident_by_number(
    ctx: AppContext,
    p: Principal,
    facility_id: int,
    number: str,
    roles: Sequence[Role] = tuple(FACILITY_STAFF_ROLES),
) -> Resident:
    """The resident with `number` at a facility where `p` works with one of `roles` (404 otherwise)."""
    with ctx.db.read() as s:
        access.access_staff_facility_by_id(s, p, facility_id, roles)
        resident = s.execute(
            sa.select(Resident).where(
                Resident.facility_id == facility_id, Resident.number == number.strip().upper()
            )
        ).scalar_one_or_none()
        if resident is None:
            raise NotFound("resident.not_found", N_("No such resident."))
        return resident


@dataclass(frozen=True)
class KeepApartRow:
    """A keep-apart order with the two residents it names."""

    order: KeepApart
    first: Resident
    second: Resident


def keep_apart_orders(
    ctx: AppContext, p: Principal, facility_id: int, roles: Sequence[Role] = tuple(FACILITY_STAFF_ROLES)
) -> list[KeepApartRow]:
    """Keep-apart orders among the residents of a facility where `p` works, newest first."""
    first, second = aliased(Resident), aliased(Resident)
    with ctx.db.read() as s:
        access.access_staff_facility_by_id(s, p, facility_id, roles)
        rows = s.execute(
            sa.select(KeepApart, first, second)
            .join(first, first.id == KeepApart.resident_a_id)
            .join(second, second.id == KeepApart.resident_b_id)
            .where(sa.or_(first.facility_id == facility_id, second.facility_id == facility_id))
            .order_by(KeepApart.created_at.desc(), KeepApart.id.desc())
            .limit(200)
        ).all()
        return [KeepApartRow(order, a, b) for order, a, b in rows]


def resident_alerts(
    ctx: AppContext, p: Principal, facility_id: int, roles: Sequence[Role] = tuple(FACILITY_STAFF_ROLES)
) -> list[tuple[ResidentAlert, Resident]]:
    """Active alerts on the residents of a facility where `p` works, newest first."""
    with ctx.db.read() as s:
        access.access_staff_facility_by_id(s, p, facility_id, roles)
        return [
            (alert, resident)
            for alert, resident in s.execute(
                sa.select(ResidentAlert, Resident)
                .join(Resident, Resident.id == ResidentAlert.resident_id)
                .where(Resident.facility_id == facility_id, ResidentAlert.active.is_(True))
                .order_by(ResidentAlert.created_at.desc(), ResidentAlert.id.desc())
                .limit(200)
            ).all()
        ]
