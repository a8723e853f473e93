"""Who may see what: the pure rules of domain/principal.py, for every role."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openvisit.domain.enums import ActorKind, Role
from openvisit.domain.principal import (
    FACILITY_STAFF_ROLES,
    SYSTEM,
    Grant,
    Principal,
    can_read_audit,
    can_see_facility,
    can_see_resident,
    can_see_visit,
)

HOME = 1  # the facility the staff below work in
OTHER = 2  # a facility they do not
CENTER = 10  # the link center the operator works in
OTHER_CENTER = 11


def staff(*grants: Grant) -> Principal:
    return Principal(kind=ActorKind.USER, user_id=100, grants=grants, label="staff@example.org")


def facility_staff(role: Role, facility_id: int = HOME) -> Principal:
    return staff(Grant(role, facility_id=facility_id))


VISITOR = Principal(kind=ActorKind.USER, user_id=200, visitor_id=20, label="visitor@example.org")
ATTORNEY = Principal(kind=ActorKind.USER, user_id=201, visitor_id=21, label="attorney@example.org")
RESIDENT = Principal(kind=ActorKind.RESIDENT, resident_id=30, station_id=5, label="resident A-1")
OPERATOR = staff(Grant(Role.LINK_OPERATOR, link_center_id=CENTER))
SYSTEM_ADMIN = staff(Grant(Role.SYSTEM_ADMIN))
ANONYMOUS_USER = Principal(kind=ActorKind.USER, user_id=300)
"""A user account with neither a visitor profile nor a grant."""

FACILITY_ROLES = sorted(FACILITY_STAFF_ROLES)


# --- what a principal is --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "visitor", "staff_member", "resident", "system_admin"),
    [
        (VISITOR, True, False, False, False),
        (ATTORNEY, True, False, False, False),
        (RESIDENT, False, False, True, False),
        (OPERATOR, False, True, False, False),
        (SYSTEM_ADMIN, False, True, False, True),
        (SYSTEM, False, False, False, False),
        (ANONYMOUS_USER, False, False, False, False),
    ],
)
def test_kinds_of_principal(
    p: Principal, visitor: bool, staff_member: bool, resident: bool, system_admin: bool
) -> None:
    assert (p.is_visitor, p.is_staff, p.is_resident, p.is_system_admin) == (
        visitor,
        staff_member,
        resident,
        system_admin,
    )


def test_roles_are_every_role_held_anywhere() -> None:
    p = staff(Grant(Role.SCHEDULER, facility_id=HOME), Grant(Role.INVESTIGATOR, facility_id=OTHER))
    assert p.roles() == {Role.SCHEDULER, Role.INVESTIGATOR}
    assert VISITOR.roles() == frozenset()


# --- facilities_for / link_centers_for ------------------------------------------------------------


@pytest.mark.parametrize("role", FACILITY_ROLES)
def test_facility_staff_work_in_their_facility_only(role: Role) -> None:
    p = facility_staff(role)
    assert p.facilities_for() == frozenset({HOME})
    assert p.facilities_for([role]) == frozenset({HOME})
    assert p.link_centers_for() == frozenset()


def test_facilities_for_filters_by_role() -> None:
    p = staff(Grant(Role.SCHEDULER, facility_id=HOME), Grant(Role.INVESTIGATOR, facility_id=OTHER))
    assert p.facilities_for() == frozenset({HOME, OTHER})
    assert p.facilities_for([Role.SCHEDULER]) == frozenset({HOME})
    assert p.facilities_for([Role.INVESTIGATOR]) == frozenset({OTHER})
    assert p.facilities_for([Role.MONITORING_OFFICER]) == frozenset()


def test_link_operator_works_in_a_link_center_not_a_facility() -> None:
    assert OPERATOR.facilities_for() == frozenset()
    assert OPERATOR.link_centers_for() == frozenset({CENTER})
    assert OPERATOR.facilities_for([Role.LINK_OPERATOR]) == frozenset()


def test_system_admin_works_everywhere() -> None:
    assert SYSTEM_ADMIN.facilities_for() is None
    assert SYSTEM_ADMIN.facilities_for([Role.SCHEDULER]) is None
    assert SYSTEM_ADMIN.link_centers_for() is None


@pytest.mark.parametrize("p", [VISITOR, ATTORNEY, RESIDENT, ANONYMOUS_USER, SYSTEM])
def test_people_without_grants_work_nowhere(p: Principal) -> None:
    assert p.facilities_for() == frozenset()
    assert p.link_centers_for() == frozenset()


# --- holds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", FACILITY_ROLES)
def test_holds_a_facility_role_where_granted(role: Role) -> None:
    p = facility_staff(role)
    assert p.holds(role)
    assert p.holds(role, facility_id=HOME)
    assert not p.holds(role, facility_id=OTHER)
    assert not p.holds(role, link_center_id=CENTER)
    for other in Role:
        if other is not role:
            assert not p.holds(other)
            assert not p.holds(other, facility_id=HOME)


def test_holds_link_operator_at_its_center() -> None:
    assert OPERATOR.holds(Role.LINK_OPERATOR)
    assert OPERATOR.holds(Role.LINK_OPERATOR, link_center_id=CENTER)
    assert not OPERATOR.holds(Role.LINK_OPERATOR, link_center_id=OTHER_CENTER)
    assert not OPERATOR.holds(Role.LINK_OPERATOR, facility_id=HOME)


@pytest.mark.parametrize("role", list(Role))
def test_system_admin_holds_every_role_everywhere(role: Role) -> None:
    assert SYSTEM_ADMIN.holds(role)
    assert SYSTEM_ADMIN.holds(role, facility_id=OTHER)
    assert SYSTEM_ADMIN.holds(role, link_center_id=OTHER_CENTER)


@pytest.mark.parametrize("p", [VISITOR, ATTORNEY, RESIDENT, ANONYMOUS_USER, SYSTEM])
@pytest.mark.parametrize("role", list(Role))
def test_people_without_grants_hold_nothing(p: Principal, role: Role) -> None:
    assert not p.holds(role)
    assert not p.holds(role, facility_id=HOME)


# --- can_see_facility ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", FACILITY_ROLES)
def test_staff_see_their_own_facility(role: Role) -> None:
    p = facility_staff(role)
    assert can_see_facility(p, HOME)
    assert not can_see_facility(p, OTHER)


def test_who_sees_a_facility_as_staff() -> None:
    assert can_see_facility(SYSTEM_ADMIN, HOME)
    assert can_see_facility(SYSTEM_ADMIN, OTHER)
    for p in (OPERATOR, VISITOR, ATTORNEY, RESIDENT, ANONYMOUS_USER):
        assert not can_see_facility(p, HOME)


# --- can_see_resident ---------------------------------------------------------------------------


def _sees_resident(p: Principal, facility_id: int = HOME, approved: tuple[int, ...] = ()) -> bool:
    return can_see_resident(p, resident_id=30, facility_id=facility_id, approved_visitor_ids=approved)


@pytest.mark.parametrize("role", FACILITY_ROLES)
def test_staff_see_residents_of_their_facility_only(role: Role) -> None:
    p = facility_staff(role)
    assert _sees_resident(p, HOME)
    assert not _sees_resident(p, OTHER)


def test_resident_sees_themself_only() -> None:
    assert _sees_resident(RESIDENT)
    assert not can_see_resident(RESIDENT, resident_id=31, facility_id=HOME)
    # Even a connection list naming the resident's own id as a visitor id changes nothing.
    assert not can_see_resident(RESIDENT, resident_id=31, facility_id=HOME, approved_visitor_ids=[30])


@pytest.mark.parametrize("visitor", [VISITOR, ATTORNEY])
def test_visitors_see_residents_they_are_approved_for(visitor: Principal) -> None:
    assert visitor.visitor_id is not None
    assert _sees_resident(visitor, approved=(visitor.visitor_id,))
    assert _sees_resident(visitor, OTHER, approved=(99, visitor.visitor_id))
    assert not _sees_resident(visitor, approved=())
    assert not _sees_resident(visitor, approved=(99,))


def test_operator_and_strangers_do_not_see_residents() -> None:
    for p in (OPERATOR, ANONYMOUS_USER):
        assert not _sees_resident(p)
        assert not _sees_resident(p, approved=(20, 21))


def test_system_and_system_admin_see_every_resident() -> None:
    for p in (SYSTEM, SYSTEM_ADMIN):
        assert _sees_resident(p, HOME)
        assert _sees_resident(p, OTHER)


# --- can_see_visit ------------------------------------------------------------------------------


def _sees_visit(
    p: Principal,
    *,
    facility_id: int = HOME,
    resident_id: int = 30,
    link_center_id: int | None = None,
    visitor_ids: tuple[int, ...] = (),
) -> bool:
    return can_see_visit(
        p,
        facility_id=facility_id,
        resident_id=resident_id,
        link_center_id=link_center_id,
        visitor_ids=visitor_ids,
    )


@pytest.mark.parametrize("role", FACILITY_ROLES)
def test_staff_see_visits_of_their_facility_only(role: Role) -> None:
    p = facility_staff(role)
    assert _sees_visit(p, facility_id=HOME)
    assert not _sees_visit(p, facility_id=OTHER)
    assert not _sees_visit(p, facility_id=OTHER, link_center_id=CENTER)


def test_operator_sees_visits_held_at_their_link_center() -> None:
    assert _sees_visit(OPERATOR, facility_id=OTHER, link_center_id=CENTER)
    assert not _sees_visit(OPERATOR, facility_id=OTHER, link_center_id=OTHER_CENTER)
    assert not _sees_visit(OPERATOR, facility_id=HOME, link_center_id=None)


def test_resident_sees_their_own_visits_only() -> None:
    assert _sees_visit(RESIDENT, resident_id=30)
    assert not _sees_visit(RESIDENT, resident_id=31)
    assert not _sees_visit(RESIDENT, resident_id=31, visitor_ids=(30,))


@pytest.mark.parametrize("visitor", [VISITOR, ATTORNEY])
def test_visitors_see_visits_they_take_part_in(visitor: Principal) -> None:
    assert visitor.visitor_id is not None
    assert _sees_visit(visitor, visitor_ids=(99, visitor.visitor_id))
    assert not _sees_visit(visitor, visitor_ids=(99,))
    assert not _sees_visit(visitor, link_center_id=CENTER)


def test_system_and_system_admin_see_every_visit() -> None:
    for p in (SYSTEM, SYSTEM_ADMIN):
        assert _sees_visit(p, facility_id=OTHER, link_center_id=OTHER_CENTER)


def test_stranger_sees_no_visit() -> None:
    assert not _sees_visit(ANONYMOUS_USER, link_center_id=CENTER, visitor_ids=(20,))


def test_staff_who_are_also_visitors_see_their_own_visits_elsewhere() -> None:
    p = Principal(
        kind=ActorKind.USER, user_id=400, visitor_id=40, grants=(Grant(Role.SCHEDULER, facility_id=HOME),)
    )
    assert _sees_visit(p, facility_id=OTHER, visitor_ids=(40,))
    assert not _sees_visit(p, facility_id=OTHER, visitor_ids=(41,))


# --- can_read_audit -------------------------------------------------------------------------------


def test_audit_is_read_by_system_admin_everywhere() -> None:
    assert can_read_audit(SYSTEM_ADMIN, None)
    assert can_read_audit(SYSTEM_ADMIN, OTHER)


def test_facility_admin_reads_their_facility_audit_only() -> None:
    p = facility_staff(Role.FACILITY_ADMIN)
    assert can_read_audit(p, HOME)
    assert not can_read_audit(p, OTHER)
    assert not can_read_audit(p, None)


@pytest.mark.parametrize("role", sorted(FACILITY_STAFF_ROLES - {Role.FACILITY_ADMIN}))
def test_other_staff_do_not_read_the_audit(role: Role) -> None:
    assert not can_read_audit(facility_staff(role), HOME)


@pytest.mark.parametrize("p", [OPERATOR, VISITOR, ATTORNEY, RESIDENT, ANONYMOUS_USER, SYSTEM])
def test_nobody_else_reads_the_audit(p: Principal) -> None:
    assert not can_read_audit(p, HOME)
    assert not can_read_audit(p, None)


# --- properties over any set of grants -------------------------------------------------------------

FACILITY_IDS = st.integers(min_value=1, max_value=6)
facility_grants = st.builds(
    Grant, role=st.sampled_from(FACILITY_ROLES), facility_id=FACILITY_IDS, link_center_id=st.none()
)
operator_grants = st.builds(
    Grant, role=st.just(Role.LINK_OPERATOR), facility_id=st.none(), link_center_id=FACILITY_IDS
)
non_admin_grants = st.lists(st.one_of(facility_grants, operator_grants), max_size=6).map(tuple)


@given(grants=non_admin_grants, facility_id=FACILITY_IDS)
def test_a_facility_is_seen_exactly_where_a_facility_role_is_held(
    grants: tuple[Grant, ...], facility_id: int
) -> None:
    p = staff(*grants)
    held_here = any(g.facility_id == facility_id and g.role in FACILITY_STAFF_ROLES for g in grants)
    assert can_see_facility(p, facility_id) is held_here
    assert _sees_resident(p, facility_id) is held_here
    assert (facility_id in (p.facilities_for() or ())) is held_here


@given(grants=non_admin_grants, role=st.sampled_from(list(Role)), place=FACILITY_IDS)
def test_holds_means_that_grant_exists(grants: tuple[Grant, ...], role: Role, place: int) -> None:
    p = staff(*grants)
    assert p.holds(role, facility_id=place) is any(g.role is role and g.facility_id == place for g in grants)
    assert p.holds(role, link_center_id=place) is any(
        g.role is role and g.link_center_id == place for g in grants
    )
    assert p.holds(role) is any(g.role is role for g in grants)


@given(grants=non_admin_grants, facility_id=FACILITY_IDS, center=FACILITY_IDS)
def test_a_grant_for_a_system_admin_overrides_every_scope(
    grants: tuple[Grant, ...], facility_id: int, center: int
) -> None:
    p = staff(*grants, Grant(Role.SYSTEM_ADMIN))
    assert p.facilities_for() is None
    assert can_see_facility(p, facility_id)
    assert _sees_visit(p, facility_id=facility_id, link_center_id=center)
    assert can_read_audit(p, facility_id)
