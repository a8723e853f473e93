"""The scheduling API as a client uses it: JSON in, JSON out, one error format, both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import Visit
from openvisit.domain.enums import ConnectionStatus, Role
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    totp_now,
)
from tests.webutil import api_token

WED = date(2026, 3, 4)


def _krs(day: date, hh: int, mm: int = 0) -> str:
    return (datetime.combine(day, time(hh, mm), tzinfo=UTC) - timedelta(hours=7)).isoformat()


def _setup(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> tuple[dict[str, str], dict[str, str], int, int]:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx, tz="Europe/Moscow")
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    visitor = {"Authorization": f"Bearer {api_token(client, email)}"}
    staff_email, secret = make_staff(ctx, Role.SCHEDULER, facility_id=place.facility_id)
    assert secret
    staff = {"Authorization": f"Bearer {api_token(client, staff_email, totp=totp_now(secret, clock()))}"}
    return visitor, staff, resident_id, place.facility_id


def test_availability_shows_both_zones(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    visitor, _, resident_id, _ = _setup(client, ctx, clock)
    r = client.get(
        f"/api/v1/residents/{resident_id}/availability",
        params={"from": "2026-03-04", "days": 2},
        headers=visitor,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["facility_timezone"] == "Asia/Krasnoyarsk"
    assert body["viewer_timezone"] == "Europe/Moscow"
    assert [d["day"] for d in body["days"]] == ["2026-03-04", "2026-03-05"]
    first = body["days"][0]["times"][0]
    assert first["facility_time"] == "Mar 4, 2026 09:00 (Krasnoyarsk, UTC+7)"
    assert first["viewer_time"] == "Mar 4, 2026 05:00 (Moscow, UTC+3)"


def test_book_conflict_cancel_and_reschedule(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    visitor, staff, resident_id, _ = _setup(client, ctx, clock)
    r = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _krs(WED, 9)}, headers=visitor
    )
    assert r.status_code == 201, r.text
    visit = r.json()
    assert visit["status"] == "approved"
    assert visit["station_code"]
    again = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _krs(WED, 9)}, headers=visitor
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] in ("visit.resident_busy", "visit.visitor_busy", "visit.slot_taken")
    moved = client.post(
        f"/api/v1/visits/{visit['id']}/reschedule", json={"starts_at": _krs(WED, 9, 35)}, headers=visitor
    )
    assert moved.status_code == 201, moved.text
    new_id = moved.json()["id"]
    no_reason = client.post(f"/api/v1/visits/{new_id}/cancel", json={}, headers=staff)
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["code"] == "visit.invalid_reason"
    done = client.post(f"/api/v1/visits/{new_id}/cancel", json={}, headers=visitor)
    assert done.json()["status"] == "cancelled"
    assert done.json()["reason"] == "visitor_cancelled"


def test_bad_booking_input_is_a_clear_4xx(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    visitor, _, resident_id, _ = _setup(client, ctx, clock)
    cases = [
        ({"resident_id": resident_id, "starts_at": "2026-03-04T09:00:00"}, 422, "request.invalid"),
        ({"resident_id": resident_id, "starts_at": "not a time"}, 422, "request.invalid"),
        ({"resident_id": resident_id, "starts_at": _krs(WED, 9), "kind": "party"}, 422, "request.invalid"),
        (
            {"resident_id": resident_id, "starts_at": _krs(WED, 9), "station_id": 1},
            422,
            "request.unknown_field",
        ),
        ({"resident_id": resident_id, "starts_at": _krs(WED, 9, 10)}, 400, "visit.outside_template"),
        ({"resident_id": 0, "starts_at": _krs(WED, 9)}, 422, "request.invalid"),
        ({"resident_id": 999_999, "starts_at": _krs(WED, 9)}, 404, "resident.not_found"),
        ({"resident_id": resident_id, "starts_at": _krs(date(2026, 4, 30), 9)}, 400, "visit.too_far"),
    ]
    for body, status, code in cases:
        r = client.post("/api/v1/visits", json=body, headers=visitor)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Visit)).scalar_one() == 0


def test_staff_edit_templates_block_days_and_see_the_calendar(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    visitor, staff, resident_id, facility_id = _setup(client, ctx, clock)
    templates = client.get(f"/api/v1/facilities/{facility_id}/templates", headers=staff).json()
    assert len(templates) == 7
    group = templates[0]["group_id"]
    created = client.post(
        f"/api/v1/facilities/{facility_id}/templates",
        json={
            "group_id": group,
            "weekday": 2,
            "start_time": "18:00",
            "end_time": "19:00",
            "slot_minutes": 20,
        },
        headers=staff,
    )
    assert created.status_code == 201, created.text
    bad = client.post(
        f"/api/v1/facilities/{facility_id}/templates",
        json={
            "group_id": group,
            "weekday": 2,
            "start_time": "18:00",
            "end_time": "19:00",
            "slot_minutes": 90,
        },
        headers=staff,
    )
    assert bad.status_code == 422
    assert client.get(f"/api/v1/facilities/{facility_id}/templates", headers=visitor).status_code == 404
    booked = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _krs(WED, 18)}, headers=visitor
    )
    assert booked.status_code == 201, booked.text
    calendar = client.get(
        f"/api/v1/facilities/{facility_id}/calendar", params={"date": "2026-03-04"}, headers=staff
    ).json()
    assert any(v["visit"]["id"] == booked.json()["id"] for st in calendar["stations"] for v in st["visits"])
    block = client.post(
        f"/api/v1/facilities/{facility_id}/blocks",
        json={
            "starts_at": _krs(WED, 0),
            "ends_at": _krs(WED, 23, 59),
            "kind": "lockdown",
            "reason": "search",
        },
        headers=staff,
    )
    assert block.status_code == 201, block.text
    assert block.json()["cancelled_visits"] == 1
    assert client.get(f"/api/v1/visits/{booked.json()['id']}", headers=visitor).json()["reason"] == "lockdown"
    blocks = client.get(f"/api/v1/facilities/{facility_id}/blocks", headers=staff).json()
    assert [b["kind"] for b in blocks] == ["lockdown"]
    assert client.delete(f"/api/v1/blocks/{blocks[0]['id']}", headers=staff).status_code == 204
    assert client.delete(f"/api/v1/templates/{created.json()['id']}", headers=staff).status_code == 204
