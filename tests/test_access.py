"""One place decides who sees what: staff their facility, visitors their approved residents."""

from __future__ import annotations

from fastapi.testclient import TestClient

from openvisit.domain.enums import ConnectionStatus, Role
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    connect,
    make_facility,
    make_link_center,
    make_resident,
    make_staff,
    make_visit,
    make_visitor,
    totp_now,
)
from tests.webutil import api_token


def _bearer(
    client: TestClient, ctx: AppContext, clock: FrozenClock, role: Role, **scope: int
) -> dict[str, str]:
    email, secret = make_staff(ctx, role, **scope)  # type: ignore[arg-type]
    token = api_token(client, email, totp=totp_now(secret, clock()) if secret else None)
    return {"Authorization": f"Bearer {token}"}


def _visitor_bearer(client: TestClient, ctx: AppContext) -> tuple[dict[str, str], int]:
    email, visitor_id = make_visitor(ctx)
    return {"Authorization": f"Bearer {api_token(client, email)}"}, visitor_id


def test_staff_see_only_their_facility(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    mine, theirs = make_facility(ctx), make_facility(ctx)
    my_resident, _ = make_resident(ctx, mine)
    their_resident, _ = make_resident(ctx, theirs)
    headers = _bearer(client, ctx, clock, Role.VETTING_CLERK, facility_id=mine.facility_id)
    listed = client.get("/api/v1/residents", headers=headers).json()["items"]
    assert [r["id"] for r in listed] == [my_resident]
    assert client.get(f"/api/v1/residents/{my_resident}", headers=headers).status_code == 200
    hidden = client.get(f"/api/v1/residents/{their_resident}", headers=headers)
    missing = client.get("/api/v1/residents/999999", headers=headers)
    # Not yours and not there look exactly alike.
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json() == missing.json()
    assert (
        client.get(f"/api/v1/residents?facility_id={theirs.facility_id}", headers=headers).json()["items"]
        == []
    )


def test_system_admin_sees_everything(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    a, b = make_facility(ctx), make_facility(ctx)
    make_resident(ctx, a)
    make_resident(ctx, b)
    headers = _bearer(client, ctx, clock, Role.SYSTEM_ADMIN)
    assert len(client.get("/api/v1/residents", headers=headers).json()["items"]) == 2
    assert len(client.get("/api/v1/stations", headers=headers).json()) == 2


def test_visitors_see_only_residents_they_are_approved_for(client: TestClient, ctx: AppContext) -> None:
    place = make_facility(ctx)
    approved, _ = make_resident(ctx, place)
    pending, _ = make_resident(ctx, place)
    stranger, _ = make_resident(ctx, place)
    headers, visitor_id = _visitor_bearer(client, ctx)
    connect(ctx, approved, visitor_id, ConnectionStatus.APPROVED)
    connect(ctx, pending, visitor_id, ConnectionStatus.REQUESTED)
    listed = client.get("/api/v1/residents", headers=headers).json()["items"]
    assert [r["id"] for r in listed] == [approved]
    for other in (pending, stranger):
        assert client.get(f"/api/v1/residents/{other}", headers=headers).status_code == 404
    assert client.get("/api/v1/stations", headers=headers).json() == []


def test_visits_are_seen_by_their_people_only(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, elsewhere = make_facility(ctx), make_facility(ctx)
    resident, _ = make_resident(ctx, place)
    headers, visitor_id = _visitor_bearer(client, ctx)
    other_headers, _ = _visitor_bearer(client, ctx)
    connect(ctx, resident, visitor_id, ConnectionStatus.APPROVED)
    visit_id = make_visit(ctx, place, resident, visitor_id)
    assert client.get(f"/api/v1/visits/{visit_id}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/visits/{visit_id}", headers=other_headers).status_code == 404
    assert client.get("/api/v1/visits", headers=other_headers).json()["items"] == []
    officer = _bearer(client, ctx, clock, Role.MONITORING_OFFICER, facility_id=place.facility_id)
    outsider = _bearer(client, ctx, clock, Role.MONITORING_OFFICER, facility_id=elsewhere.facility_id)
    operator = _bearer(client, ctx, clock, Role.LINK_OPERATOR, link_center_id=make_link_center(ctx))
    assert client.get(f"/api/v1/visits/{visit_id}", headers=officer).status_code == 200
    assert client.get(f"/api/v1/visits/{visit_id}", headers=outsider).status_code == 404
    assert client.get(f"/api/v1/visits/{visit_id}", headers=operator).status_code == 404


def test_audit_log_is_for_admins_of_the_facility(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, elsewhere = make_facility(ctx), make_facility(ctx)
    clerk = _bearer(client, ctx, clock, Role.VETTING_CLERK, facility_id=place.facility_id)
    assert client.get("/api/v1/audit", headers=clerk).status_code == 403
    admin = _bearer(client, ctx, clock, Role.FACILITY_ADMIN, facility_id=place.facility_id)
    assert client.get("/api/v1/audit", headers=admin).status_code == 200
    assert client.get(f"/api/v1/audit?facility_id={elsewhere.facility_id}", headers=admin).status_code == 404
    root = _bearer(client, ctx, clock, Role.SYSTEM_ADMIN)
    entries = client.get("/api/v1/audit", headers=root).json()
    assert entries and all(e["action"] == "auth.login" for e in entries)
    assert [e["seq"] for e in entries] == sorted((e["seq"] for e in entries), reverse=True)


def test_staff_pages_are_refused_to_visitors(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    from tests.webutil import login

    login(client, email)
    assert client.get("/staff/residents").status_code == 403
    assert client.get("/staff/audit").status_code == 403
    assert client.get("/station").status_code == 403
