"""The one place that decides who may see what. Every fetch is `access_*_by_id` (404 when missing *or*
not yours, never telling the two apart); every list is `list_*`, scoped in the query itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    AuditEntry,
    Connection,
    Facility,
    LinkCenter,
    Resident,
    Station,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import ConnectionStatus, Role
from openvisit.domain.errors import N_, Forbidden, NotAuthenticated, NotFound
from openvisit.domain.principal import FACILITY_STAFF_ROLES, Principal, can_read_audit

MAX_PAGE = 200
M = TypeVar("M")


def require_active(p: Principal | None) -> Principal:
    """Refuse anonymous callers and staff who have not finished their second factor."""
    if p is None:
        raise NotAuthenticated()
    if p.second_factor_pending:
        raise Forbidden("auth.totp_enrolment_required", "Enrol an authenticator app before you continue.")
    return p


def require_role(p: Principal, *roles: Role) -> None:
    """Refuse unless `p` holds one of `roles` somewhere."""
    if p.is_system_admin or p.roles() & set(roles):
        return
    raise Forbidden()


def _page(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(limit, MAX_PAGE)), max(0, offset)


def _scoped(query: sa.Select[M], scope: sa.ColumnElement[bool] | None) -> sa.Select[M]:
    """The query limited to what the scope lets through; None means everything (system admin)."""
    return query if scope is None else query.where(scope)


def _one_or_404(session: Session, query: sa.Select[M], code: str, message: str) -> M:
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFound(code, message)
    return row


# --- facilities and places ----------------------------------------------------------------------


def list_facilities(session: Session, p: Principal) -> Sequence[Facility]:
    """The facility directory is public to every logged-in person (visitors pick where to visit)."""
    return session.execute(sa.select(Facility).order_by(Facility.name)).scalars().all()


def list_staff_facilities(
    session: Session, p: Principal, roles: Sequence[Role] = tuple(FACILITY_STAFF_ROLES)
) -> Sequence[Facility]:
    """Facilities where `p` holds one of `roles`."""
    allowed = p.facilities_for(roles)
    query = sa.select(Facility).order_by(Facility.name)
    if allowed is not None:
        query = query.where(Facility.id.in_(allowed))
    return session.execute(query).scalars().all()


def access_facility_by_id(session: Session, p: Principal, facility_id: int) -> Facility:
    """A facility's public record; any logged-in person may read it."""
    facility = session.get(Facility, facility_id)
    if facility is None:
        raise NotFound("facility.not_found", "No such facility.")
    return facility


def access_staff_facility_by_id(
    session: Session,
    p: Principal,
    facility_id: int,
    roles: Sequence[Role] = tuple(FACILITY_STAFF_ROLES),
) -> Facility:
    """A facility that `p` works in with one of `roles`."""
    allowed = p.facilities_for(roles)
    if allowed is not None and facility_id not in allowed:
        raise NotFound("facility.not_found", "No such facility.")
    return access_facility_by_id(session, p, facility_id)


def list_link_centers(session: Session, p: Principal) -> Sequence[LinkCenter]:
    """Link centers are public: families choose the nearest one."""
    return session.execute(sa.select(LinkCenter).order_by(LinkCenter.city, LinkCenter.name)).scalars().all()


def _station_scope(p: Principal) -> sa.ColumnElement[bool] | None:
    facilities = p.facilities_for()
    centers = p.link_centers_for()
    if facilities is None or centers is None:
        return None
    return sa.or_(Station.facility_id.in_(facilities), Station.link_center_id.in_(centers))


def list_stations(session: Session, p: Principal) -> Sequence[Station]:
    """Stations of the facilities and link centers where `p` works."""
    query = _scoped(sa.select(Station).order_by(Station.code), _station_scope(p))
    return session.execute(query).scalars().all()


def access_station_by_id(session: Session, p: Principal, station_id: int) -> Station:
    """A station of a facility or link center where `p` works."""
    query = _scoped(sa.select(Station).where(Station.id == station_id), _station_scope(p))
    return _one_or_404(session, query, "station.not_found", N_("No such station."))


# --- residents ------------------------------------------------------------------------------------


def _approved_resident_ids(p: Principal) -> sa.Select[int]:
    return sa.select(Connection.resident_id).where(
        Connection.visitor_id == p.visitor_id, Connection.status == ConnectionStatus.APPROVED
    )


def _resident_scope(p: Principal) -> sa.ColumnElement[bool] | None:
    if p.is_resident:
        return Resident.id == p.resident_id
    clauses: list[sa.ColumnElement[bool]] = []
    if p.is_staff:
        facilities = p.facilities_for()
        if facilities is None:
            return None
        clauses.append(Resident.facility_id.in_(facilities))
    if p.visitor_id is not None:
        clauses.append(Resident.id.in_(_approved_resident_ids(p)))
    return sa.or_(*clauses) if clauses else sa.false()


def list_residents(
    session: Session,
    p: Principal,
    *,
    facility_id: int | None = None,
    search: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Resident]:
    """Residents `p` may see: staff their facilities', visitors those they are approved for."""
    limit, offset = _page(limit, offset)
    query = _scoped(
        sa.select(Resident).order_by(Resident.last_name, Resident.first_name, Resident.id), _resident_scope(p)
    )
    if facility_id is not None:
        query = query.where(Resident.facility_id == facility_id)
    if search:
        pattern = f"%{search.strip().lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(Resident.last_name).like(pattern),
                sa.func.lower(Resident.first_name).like(pattern),
                sa.func.lower(Resident.number).like(pattern),
            )
        )
    return session.execute(query.limit(limit).offset(offset)).scalars().all()


def access_resident_by_id(session: Session, p: Principal, resident_id: int) -> Resident:
    """A resident `p` may see, or NotFound."""
    query = _scoped(sa.select(Resident).where(Resident.id == resident_id), _resident_scope(p))
    return _one_or_404(session, query, "resident.not_found", N_("No such resident."))


# --- visitors -------------------------------------------------------------------------------------


def _visitor_scope(p: Principal) -> sa.ColumnElement[bool] | None:
    clauses: list[sa.ColumnElement[bool]] = []
    if p.is_staff:
        facilities = p.facilities_for()
        if facilities is None:
            return None
        # Staff see visitors who asked to visit someone in their facility.
        clauses.append(
            Visitor.id.in_(
                sa.select(Connection.visitor_id)
                .join(Resident, Resident.id == Connection.resident_id)
                .where(Resident.facility_id.in_(facilities))
            )
        )
    if p.visitor_id is not None:
        clauses.append(Visitor.id == p.visitor_id)
    return sa.or_(*clauses) if clauses else sa.false()


def list_visitors(session: Session, p: Principal, *, limit: int = 50, offset: int = 0) -> Sequence[Visitor]:
    """Visitors `p` may see."""
    limit, offset = _page(limit, offset)
    query = _scoped(
        sa.select(Visitor).order_by(Visitor.last_name, Visitor.first_name, Visitor.id), _visitor_scope(p)
    )
    return session.execute(query.limit(limit).offset(offset)).scalars().all()


def access_visitor_by_id(session: Session, p: Principal, visitor_id: int) -> Visitor:
    """A visitor `p` may see (themself, or staff where the visitor asked to visit), or NotFound."""
    query = _scoped(sa.select(Visitor).where(Visitor.id == visitor_id), _visitor_scope(p))
    return _one_or_404(session, query, "visitor.not_found", N_("No such visitor."))


# --- visits ---------------------------------------------------------------------------------------


def _visit_scope(p: Principal) -> sa.ColumnElement[bool] | None:
    if p.is_resident:
        return Visit.resident_id == p.resident_id
    clauses: list[sa.ColumnElement[bool]] = []
    if p.is_staff:
        facilities = p.facilities_for()
        centers = p.link_centers_for()
        if facilities is None or centers is None:
            return None
        clauses.append(Visit.facility_id.in_(facilities))
        clauses.append(Visit.link_center_id.in_(centers))
    if p.visitor_id is not None:
        clauses.append(
            Visit.id.in_(
                sa.select(VisitParticipant.visit_id).where(VisitParticipant.visitor_id == p.visitor_id)
            )
        )
    return sa.or_(*clauses) if clauses else sa.false()


def list_visits(
    session: Session,
    p: Principal,
    *,
    facility_id: int | None = None,
    resident_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Visit]:
    """Visits `p` may see, newest first."""
    limit, offset = _page(limit, offset)
    query = _scoped(sa.select(Visit).order_by(Visit.starts_at.desc(), Visit.id.desc()), _visit_scope(p))
    if facility_id is not None:
        query = query.where(Visit.facility_id == facility_id)
    if resident_id is not None:
        query = query.where(Visit.resident_id == resident_id)
    return session.execute(query.limit(limit).offset(offset)).scalars().all()


def access_visit_by_id(session: Session, p: Principal, visit_id: int) -> Visit:
    """A visit `p` may see, or NotFound."""
    query = _scoped(sa.select(Visit).where(Visit.id == visit_id), _visit_scope(p))
    return _one_or_404(session, query, "visit.not_found", N_("No such visit."))


# --- audit ----------------------------------------------------------------------------------------


def list_audit_entries(
    session: Session,
    p: Principal,
    *,
    facility_id: int | None = None,
    action: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> Sequence[AuditEntry]:
    """Audit entries, newest first: a system admin reads all, a facility admin their facility's."""
    if not (p.is_system_admin or Role.FACILITY_ADMIN in p.roles()):
        raise Forbidden()
    limit, _ = _page(limit, 0)
    query = sa.select(AuditEntry).order_by(AuditEntry.seq.desc())
    if not p.is_system_admin:
        allowed = p.facilities_for([Role.FACILITY_ADMIN]) or frozenset()
        query = query.where(AuditEntry.facility_id.in_(allowed))
    if facility_id is not None:
        if not can_read_audit(p, facility_id):
            raise NotFound("facility.not_found", "No such facility.")
        query = query.where(AuditEntry.facility_id == facility_id)
    if action:
        query = query.where(AuditEntry.action == action)
    if before_seq is not None:
        query = query.where(AuditEntry.seq < before_seq)
    return session.execute(query.limit(limit)).scalars().all()
