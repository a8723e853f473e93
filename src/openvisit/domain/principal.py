"""Who is acting, and the pure rules of what they may see. The services apply these in access_*."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from openvisit.domain.enums import ActorKind, Role

FACILITY_STAFF_ROLES: frozenset[Role] = frozenset(
    {
        Role.VETTING_CLERK,
        Role.SCHEDULER,
        Role.MONITORING_OFFICER,
        Role.INVESTIGATOR,
        Role.FACILITY_ADMIN,
    }
)
"""Roles held for a facility; they see that facility's residents, visits and visitors who ask for it."""


@dataclass(frozen=True)
class Grant:
    """One role held by a staff member, for a facility, a link center, or (system admin) everything."""

    role: Role
    facility_id: int | None = None
    link_center_id: int | None = None


@dataclass(frozen=True)
class Principal:
    """Who is behind a request: a user account (visitor or staff), a resident at a station, or the system."""

    kind: ActorKind
    user_id: int | None = None
    visitor_id: int | None = None
    resident_id: int | None = None
    station_id: int | None = None
    grants: tuple[Grant, ...] = field(default_factory=tuple)
    label: str = ""
    language: str = "en"
    timezone: str = "UTC"
    second_factor_pending: bool = False
    """Staff who logged in with a password but have not yet enrolled or entered their TOTP code."""

    @property
    def is_system_admin(self) -> bool:
        return any(g.role is Role.SYSTEM_ADMIN for g in self.grants)

    @property
    def is_staff(self) -> bool:
        return bool(self.grants)

    @property
    def is_visitor(self) -> bool:
        return self.visitor_id is not None

    @property
    def is_resident(self) -> bool:
        return self.kind is ActorKind.RESIDENT

    def roles(self) -> frozenset[Role]:
        """Every role held, wherever it is held."""
        return frozenset(g.role for g in self.grants)

    def facilities_for(self, roles: Iterable[Role] = FACILITY_STAFF_ROLES) -> frozenset[int] | None:
        """Facilities where one of `roles` is held; None means every facility (system admin)."""
        if self.is_system_admin:
            return None
        wanted = frozenset(roles)
        return frozenset(g.facility_id for g in self.grants if g.role in wanted and g.facility_id is not None)

    def link_centers_for(self, roles: Iterable[Role] = (Role.LINK_OPERATOR,)) -> frozenset[int] | None:
        """Link centers where one of `roles` is held; None means every link center (system admin)."""
        if self.is_system_admin:
            return None
        wanted = frozenset(roles)
        return frozenset(
            g.link_center_id for g in self.grants if g.role in wanted and g.link_center_id is not None
        )

    def holds(self, role: Role, *, facility_id: int | None = None, link_center_id: int | None = None) -> bool:
        """True when `role` is held for that facility or link center (a system admin holds every role)."""
        if self.is_system_admin:
            return True
        for g in self.grants:
            if g.role is not role:
                continue
            if facility_id is not None and g.facility_id == facility_id:
                return True
            if link_center_id is not None and g.link_center_id == link_center_id:
                return True
            if facility_id is None and link_center_id is None:
                return True
        return False


SYSTEM = Principal(kind=ActorKind.SYSTEM, label="system")
"""The actor for scheduled work (auto-rejection, reminders) and for command-line maintenance."""


def can_see_facility(p: Principal, facility_id: int) -> bool:
    """Staff see their own facilities; a system admin sees all."""
    allowed = p.facilities_for()
    return allowed is None or facility_id in allowed


def can_see_resident(
    p: Principal, *, resident_id: int, facility_id: int, approved_visitor_ids: Iterable[int] = ()
) -> bool:
    """Staff of the resident's facility, the resident, and visitors with an approved connection."""
    if p.kind is ActorKind.SYSTEM:
        return True
    if p.is_resident:
        return p.resident_id == resident_id
    if p.is_staff and can_see_facility(p, facility_id):
        return True
    return p.visitor_id is not None and p.visitor_id in set(approved_visitor_ids)


def can_see_visit(
    p: Principal,
    *,
    facility_id: int,
    resident_id: int,
    link_center_id: int | None,
    visitor_ids: Iterable[int],
) -> bool:
    """Facility staff, the link center's operators, the resident, and the visit's own visitors."""
    if p.kind is ActorKind.SYSTEM:
        return True
    if p.is_resident:
        return p.resident_id == resident_id
    if p.is_staff:
        allowed = p.facilities_for()
        if allowed is None or facility_id in allowed:
            return True
        centers = p.link_centers_for()
        if link_center_id is not None and centers is not None and link_center_id in centers:
            return True
    return p.visitor_id is not None and p.visitor_id in set(visitor_ids)


def can_read_audit(p: Principal, facility_id: int | None) -> bool:
    """A system admin reads the whole log; a facility admin reads entries about their facility."""
    if p.is_system_admin:
        return True
    if facility_id is None:
        return False
    return p.holds(Role.FACILITY_ADMIN, facility_id=facility_id)
