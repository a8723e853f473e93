"""The pages of live visits, served and read as a browser would (the browser tests under tests/browser
drive the calls themselves): who sees which page, the privacy notice, Join inside the join window only,
the settings handed to the browser code, the wall, and Russian."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import Visit
from openvisit.domain.enums import ConnectionStatus, Role, VisitKind, VisitStatus
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_staff,
    make_visit,
    make_visitor,
    totp_now,
)
from tests.webutil import login, post_form

_CONFIG = re.compile(r'<script type="application/json" id="(?:live|wall)-config">(.*?)</script>', re.S)


def _config(page: str) -> dict[str, object]:
    match = _CONFIG.search(page)
    assert match, "the page hands no settings to its browser code"
    loaded: dict[str, object] = json.loads(match.group(1))
    return loaded


def _family(ctx: AppContext) -> tuple[Place, int, str, int, str]:
    """A facility, a resident (PIN 2468) and an approved visitor; the resident's number last."""
    place = make_facility(ctx)
    resident_id, number = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return place, resident_id, email, visitor_id, number


def _visit_at(
    ctx: AppContext, place: Place, resident_id: int, visitor_id: int, starts_at: datetime, **changes: object
) -> int:
    visit_id = make_visit(ctx, place, resident_id, visitor_id, starts_at=starts_at)
    if changes:
        with ctx.db.write() as s:
            s.execute(sa.update(Visit).where(Visit.id == visit_id).values(**changes))
    return visit_id


def _station_login(client: TestClient, place: Place, number: str) -> None:
    post_form(
        client,
        "/station/enrol",
        {"station_code": place.station_code, "station_key": place.station_key},
        page="/station/login",
    )
    r = post_form(client, "/station/login", {"number": number, "pin": "2468"}, page="/station/login")
    assert r.status_code == 303, r.text


# --- the visitor --------------------------------------------------------------------------------


def test_visitor_join_page_of_a_social_visit(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place, resident_id, email, visitor_id, _ = _family(ctx)
    visit_id = _visit_at(ctx, place, resident_id, visitor_id, clock.now + timedelta(minutes=5))
    login(client, email)
    listing = client.get("/visits").text
    assert f'href="/visits/{visit_id}/join"' in listing, "Join is offered inside the join window"

    page = client.get(f"/visits/{visit_id}/join")
    assert page.status_code == 200
    assert "This visit is monitored and recorded" in page.text
    assert "not recorded, not monitored" not in page.text
    assert 'id="rules-accept"' in page.text
    assert '<script type="module" src="/static/live/call.js"></script>' in page.text
    config = _config(page.text)
    assert config["socket"] == f"/ws/visits/{visit_id}"
    assert config["side"] == "visitor"
    assert config["kind"] == "social"
    assert config["opensAt"] == (clock.now + timedelta(minutes=5) - timedelta(minutes=10)).isoformat()
    assert config["iceServers"] == []
    text = config["text"]
    assert isinstance(text, dict) and text["fiveLeft"] == "5 minutes left."
    # The browser code and its styles are served, with the page's strict CSP allowing them.
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("call.js", "channel.js", "rtc.js", "wall.js", "live.css"):
        assert client.get(f"/static/live/{asset}").status_code == 200


def test_join_is_offered_only_inside_the_window(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, resident_id, email, visitor_id, _ = _family(ctx)
    later = _visit_at(ctx, place, resident_id, visitor_id, clock.now + timedelta(minutes=11))
    login(client, email)
    assert f"/visits/{later}/join" not in client.get("/visits").text
    # The page itself still opens (from a reminder's link) and says when joining opens.
    page = client.get(f"/visits/{later}/join")
    assert page.status_code == 200
    assert _config(page.text)["opensAtLabel"] == "12:01"  # Moscow, where the visitor lives
    clock.advance(minutes=1)
    assert f"/visits/{later}/join" in client.get("/visits").text


def test_legal_visit_says_it_is_privileged_in_russian(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, resident_id, email, visitor_id, _ = _family(ctx)
    visit_id = _visit_at(
        ctx, place, resident_id, visitor_id, clock.now + timedelta(minutes=2), kind=VisitKind.LEGAL
    )
    login(client, email)
    client.cookies.set("ov_lang", "ru")
    page = client.get(f"/visits/{visit_id}/join").text
    assert "Привилегированное свидание с адвокатом: без записи и без наблюдения" in page
    assert "наблюдается и записывается" not in page
    config = _config(page)
    assert config["kind"] == "legal"
    text = config["text"]
    assert isinstance(text, dict) and text["oneLeft"].startswith("Осталась 1 минута")


def test_a_finished_visit_cannot_be_joined(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place, resident_id, email, visitor_id, _ = _family(ctx)
    visit_id = _visit_at(
        ctx,
        place,
        resident_id,
        visitor_id,
        clock.now - timedelta(minutes=5),
        status=VisitStatus.TERMINATED,
        reason="conduct",
    )
    login(client, email)
    assert f"/visits/{visit_id}/join" not in client.get("/visits").text
    page = client.get(f"/visits/{visit_id}/join").text
    assert "This visit can no longer be joined." in page
    assert "Conduct" in page
    assert "live-config" not in page and "call.js" not in page


def test_only_the_visits_own_lead_visitor_gets_the_call(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, resident_id, _, visitor_id, _ = _family(ctx)
    visit_id = _visit_at(ctx, place, resident_id, visitor_id, clock.now)
    stranger, _ = make_visitor(ctx)
    login(client, stranger)
    assert client.get(f"/visits/{visit_id}/join").status_code == 404
    officer, secret = make_staff(ctx, Role.MONITORING_OFFICER, facility_id=place.facility_id)
    assert secret is not None
    client.cookies.clear()
    login(client, officer, totp=totp_now(secret, clock.now))
    assert client.get(f"/visits/{visit_id}/join").status_code == 403


# --- the station --------------------------------------------------------------------------------


def test_station_lists_the_open_visit_with_join(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, resident_id, _, visitor_id, number = _family(ctx)
    now_visit = _visit_at(ctx, place, resident_id, visitor_id, clock.now + timedelta(minutes=3))
    later = _visit_at(ctx, place, resident_id, visitor_id, clock.now + timedelta(hours=3))
    _station_login(client, place, number)
    home = client.get("/station").text
    assert f'href="/station/visits/{now_visit}"' in home
    assert f"/station/visits/{later}" not in home

    page = client.get(f"/station/visits/{now_visit}")
    assert page.status_code == 200
    assert 'class="live-call station"' in page.text, "large touch targets"
    # Residents read Russian by default.
    assert "Это свидание наблюдается и записывается" in page.text
    config = _config(page.text)
    assert config["side"] == "resident"
    assert config["socket"] == f"/ws/visits/{now_visit}"


def test_station_cannot_open_another_residents_visit(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place, _, _, visitor_id, number = _family(ctx)
    other_id, _ = make_resident(ctx, place)
    connect(ctx, other_id, visitor_id, ConnectionStatus.APPROVED)
    theirs = _visit_at(ctx, place, other_id, visitor_id, clock.now)
    _station_login(client, place, number)
    assert client.get(f"/station/visits/{theirs}").status_code == 404


# --- the wall -----------------------------------------------------------------------------------


def test_monitoring_wall_for_officers_only(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place, *_ = _family(ctx)
    officer, secret = make_staff(ctx, Role.MONITORING_OFFICER, facility_id=place.facility_id)
    assert secret is not None
    login(client, officer, totp=totp_now(secret, clock.now))
    page = client.get("/staff/monitor")
    assert page.status_code == 200
    config = _config(page.text)
    assert config["socket"] == f"/ws/monitor?facility_id={place.facility_id}"
    text = config["text"]
    assert isinstance(text, dict)
    assert set(text["reasons"]) >= {
        "third_party",
        "recording_device",
        "conduct",
        "unapproved_visitor",
        "security",
        "technical",
    }
    assert 'id="tile-privileged"' in page.text
    assert "Privileged legal visit: not recorded, not monitored" in page.text
    assert '<script type="module" src="/static/live/wall.js"></script>' in page.text

    other = make_facility(ctx)
    assert client.get(f"/staff/monitor?facility_id={other.facility_id}").status_code == 404

    clerk, clerk_secret = make_staff(ctx, Role.VETTING_CLERK, facility_id=place.facility_id)
    assert clerk_secret is not None
    client.cookies.clear()
    login(client, clerk, totp=totp_now(clerk_secret, clock.now))
    assert client.get("/staff/monitor").status_code == 403
