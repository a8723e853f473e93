"""Booking over the API is answered by openvisit.web.direct, outside FastAPI's routing: it must answer
every request exactly as the FastAPI route would, and keep the app's own layers (language, headers,
body limit)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openvisit.db.models import Visit
from openvisit.domain.enums import ConnectionStatus
from openvisit.services.context import AppContext
from openvisit.web.app import create_app
from openvisit.web.direct import DirectRoutes
from tests.factories import connect, make_facility, make_resident, make_schedule, make_visitor
from tests.webutil import api_token

WED = date(2026, 3, 4)


def _krs(day: date, hh: int, mm: int = 0) -> str:
    return (datetime.combine(day, time(hh, mm), tzinfo=UTC) - timedelta(hours=7)).isoformat()


def _without_direct_routes(ctx: AppContext) -> FastAPI:
    """The same app with every request left to FastAPI's routes (the stack is built at the first call)."""
    app = create_app(ctx.settings, ctx=ctx)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectRoutes]  # type: ignore[comparison-overlap]
    return app


@pytest.fixture
def plain(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(_without_direct_routes(ctx), base_url="http://testserver") as test_client:
        yield test_client


def _visitor(client: TestClient, ctx: AppContext) -> tuple[dict[str, str], int]:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return {"Authorization": f"Bearer {api_token(client, email)}"}, resident_id


def _visits(ctx: AppContext) -> int:
    with ctx.db.read() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(Visit)).scalar_one())


def _answer(client: TestClient, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    r = client.post("/api/v1/visits", content=body, headers={"content-type": "application/json", **headers})
    return r.status_code, r.json()


def test_refusals_are_the_fastapi_routes_own(client: TestClient, plain: TestClient, ctx: AppContext) -> None:
    visitor, resident_id = _visitor(client, ctx)
    good = f'"resident_id": {resident_id}, "starts_at": "{_krs(WED, 9)}"'
    bodies = [
        b"{not json",
        b"",
        b"[]",
        b"null",
        b'{"resident_id": "x", "starts_at": []}',
        b'{"resident_id": 0}',
        ("{" + good + ', "station_id": 1}').encode(),
        ("{" + good + ', "kind": "party"}').encode(),
        ("{" + good + ', "visitor_ids": [' + ", ".join(["1"] * 11) + "]}").encode(),
        ("{" + good + ', "notes": "\udcff"}').encode("utf-8", "surrogatepass"),
        f'{{"resident_id": {resident_id}, "starts_at": "{_krs(WED, 9, 10)}"}}'.encode(),
        f'{{"resident_id": 999999, "starts_at": "{_krs(WED, 9)}"}}'.encode(),
        b'{"resident_id": 1, "starts_at": "2026-03-04T09:00:00"}',
    ]
    for headers in (visitor, {**visitor, "accept-language": "ru"}, {}, {"authorization": "Bearer nope"}):
        for body in bodies:
            direct = _answer(client, body, headers)
            assert direct == _answer(plain, body, headers), body
            assert 400 <= direct[0] < 500, (body, direct)
    assert _visits(ctx) == 0
    assert _answer(client, b"{not json", {"accept-language": "ru"})[1]["error"] == {
        "code": "request.malformed_json",
        "message": "Тело запроса — некорректный JSON.",
        "details": [{"field": "1", "type": "json_invalid", "message": "JSON decode error"}],
    }


def test_a_booking_is_answered_as_the_fastapi_route_answers_it(
    client: TestClient, plain: TestClient, ctx: AppContext
) -> None:
    visitor, resident_id = _visitor(client, ctx)
    answers = []
    for app, hh_mm in ((client, (9, 0)), (plain, (9, 35))):
        body = {"resident_id": resident_id, "starts_at": _krs(WED, *hh_mm), "notes": "first time"}
        r = app.post("/api/v1/visits", json=body, headers=visitor)
        assert r.status_code == 201, r.text
        assert r.headers["content-type"] == "application/json"
        answers.append(r.json())
    direct, routed = answers
    assert direct.keys() == routed.keys()
    assert {k for k in direct if direct[k] != routed[k]} == {"id", "starts_at", "ends_at"}
    taken = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _krs(WED, 9)}, headers=visitor
    )
    assert taken.status_code == 409
    assert _visits(ctx) == 2


def test_the_apps_own_layers_still_apply(client: TestClient, ctx: AppContext) -> None:
    visitor, resident_id = _visitor(client, ctx)
    r = client.post("/api/v1/visits", content=b"{not json", headers={"content-type": "application/json"})
    assert r.headers["x-frame-options"] == "DENY"
    assert "content-security-policy" in r.headers
    huge = b'{"notes": "' + b"x" * (ctx.settings.max_body_bytes + 1) + b'"}'
    too_large = client.post("/api/v1/visits", content=huge, headers={"content-type": "application/json"})
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "request.too_large"
    # Another content type is left to the FastAPI route, which refuses it the usual way.
    form = client.post(
        "/api/v1/visits",
        content=f"resident_id={resident_id}",
        headers={"content-type": "text/plain", **visitor},
    )
    assert form.status_code == 422
    assert form.json()["error"]["code"] == "request.invalid"
    assert "post" in client.get("/openapi.json").json()["paths"]["/api/v1/visits"]
    assert _visits(ctx) == 0
