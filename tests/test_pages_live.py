"""The pages of live visits, served and read as a browser would (the browser tests under tests/browser
drive the calls themselves): who sees which page, the privacy notice, Join inside the join window only,
the settings handed to the browser code, the wall, and Russian."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import AccessLog, AuditEntry, Recording, Station, Visit, VisitParticipant
from openvisit.domain.enums import (
    ConnectionStatus,
    ParticipantRole,
    RecordingStatus,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    connect,
    make_dependent,
    make_facility,
    make_link_center,
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
    assert "This visit cannot be joined." in page
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
    # Residents read Russian by default; the later visit of the day says when it opens (local time).
    assert "Подключиться можно с 18:50." in home

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


# --- the link center ----------------------------------------------------------------------------


def _center_visit(ctx: AppContext, clock: FrozenClock, starts_in: timedelta) -> tuple[Place, int, int, int]:
    """A link-center visit (booth B1 of a new center) with its lead visitor and a child; returns the
    place, the center, the booth and the visit."""
    place, resident_id, _, visitor_id, _ = _family(ctx)
    center_id = make_link_center(ctx)
    with ctx.db.write() as s:
        booth = Station(
            code=f"B-{center_id}", name="Booth 1", kind=StationKind.LINK_BOOTH, link_center_id=center_id
        )
        s.add(booth)
        s.flush()
        booth_id = booth.id
    visit_id = _visit_at(
        ctx,
        place,
        resident_id,
        visitor_id,
        clock.now + starts_in,
        mode=VisitMode.LINK_CENTER,
        link_center_id=center_id,
        booth_station_id=booth_id,
    )
    child = make_dependent(ctx, visitor_id, resident_id)
    with ctx.db.write() as s:
        s.add(VisitParticipant(visit_id=visit_id, dependent_id=child, role=ParticipantRole.DEPENDENT))
    return place, center_id, booth_id, visit_id


def test_operator_checks_the_party_in_then_the_booth_starts(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    _place, center_id, booth_id, visit_id = _center_visit(ctx, clock, timedelta(minutes=20))
    operator, secret = make_staff(ctx, Role.LINK_OPERATOR, link_center_id=center_id)
    assert secret is not None
    login(client, operator, totp=totp_now(secret, clock.now))

    page = client.get("/staff/checkin")
    assert page.status_code == 200
    assert "Иванова Анна" in page.text and "Иванова Дарья" in page.text
    assert "1980-01-01" in page.text, "the date of birth to check against the ID"
    assert "Check-in opens at" in page.text and f'action="/staff/checkin/{visit_id}"' not in page.text
    booth = client.get(f"/staff/booth?station_id={booth_id}").text
    assert "Waiting for the operator to check the party in." in booth

    clock.advance(minutes=11)
    page = client.get("/staff/checkin")
    assert f'action="/staff/checkin/{visit_id}"' in page.text
    # The box saying the IDs were checked is required, by the browser and by the server.
    refused = post_form(
        client, f"/staff/checkin/{visit_id}", {"link_center_id": str(center_id)}, page="/staff/checkin"
    )
    assert refused.status_code == 400
    assert "Check every adult&#39;s ID document in person first" in refused.text
    done = post_form(
        client,
        f"/staff/checkin/{visit_id}",
        {"link_center_id": str(center_id), "id_checked": "1"},
        page="/staff/checkin",
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/checkin?link_center_id={center_id}&done=checked_in"
    with ctx.db.read() as s:
        checked = (
            s.execute(sa.select(VisitParticipant.checked_in_at).where(VisitParticipant.visit_id == visit_id))
            .scalars()
            .all()
        )
    assert len(checked) == 2 and all(at == clock.now for at in checked)

    booth = client.get(f"/staff/booth?station_id={booth_id}").text
    assert f'href="/staff/booth/visits/{visit_id}"' in booth
    call = client.get(f"/staff/booth/visits/{visit_id}")
    assert call.status_code == 200
    config = _config(call.text)
    assert config["side"] == "visitor" and config["socket"] == f"/ws/visits/{visit_id}"
    assert 'class="live-call station"' in call.text


def test_booth_shows_itself_on_an_enrolled_screen_and_others_see_nothing(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    _place, center_id, _, visit_id = _center_visit(ctx, clock, timedelta(minutes=5))
    operator, secret = make_staff(ctx, Role.LINK_OPERATOR, link_center_id=center_id)
    assert secret is not None
    login(client, operator, totp=totp_now(secret, clock.now))
    assert "Choose the booth this screen stands in." in client.get("/staff/booth").text
    client.cookies.set("ov_station", f"B-{center_id}:some-key")
    assert f"/staff/booth/visits/{visit_id}" not in client.get("/staff/booth").text  # not checked in
    assert "Waiting for the operator" in client.get("/staff/booth").text

    elsewhere = make_link_center(ctx)
    other, other_secret = make_staff(ctx, Role.LINK_OPERATOR, link_center_id=elsewhere)
    assert other_secret is not None
    client.cookies.clear()
    login(client, other, totp=totp_now(other_secret, clock.now))
    assert client.get(f"/staff/checkin?link_center_id={center_id}").status_code == 404
    assert f"visit-{visit_id}" not in client.get("/staff/checkin").text
    assert client.get(f"/staff/booth/visits/{visit_id}").status_code == 404
    refused = post_form(client, f"/staff/checkin/{visit_id}", {"id_checked": "1"}, page="/staff/checkin")
    assert refused.status_code == 404


# --- recordings ---------------------------------------------------------------------------------


def _recording(ctx: AppContext, clock: FrozenClock, visit_id: int, path: Path) -> int:
    path.write_bytes(b"\x1aE\xdf\xa3" + bytes(2000))
    with ctx.db.write() as s:
        rec = Recording(
            visit_id=visit_id,
            visit_kind=VisitKind.SOCIAL,
            status=RecordingStatus.FINALISED,
            path=str(path),
            sha256="ab" * 32,
            bytes=2004,
            duration_seconds=754.0,
            started_at=clock.now,
            finalised_at=clock.now,
            retain_until=clock.now + timedelta(days=90),
        )
        s.add(rec)
        s.flush()
        return rec.id


def test_investigator_finds_plays_and_flags_a_recording(
    client: TestClient, ctx: AppContext, clock: FrozenClock, tmp_path: Path
) -> None:
    place, resident_id, _, visitor_id, number = _family(ctx)
    visit_id = _visit_at(
        ctx, place, resident_id, visitor_id, clock.now - timedelta(hours=1), status=VisitStatus.COMPLETED
    )
    recording_id = _recording(ctx, clock, visit_id, tmp_path / "visit.mkv")
    investigator, secret = make_staff(ctx, Role.INVESTIGATOR, facility_id=place.facility_id)
    assert secret is not None
    login(client, investigator, totp=totp_now(secret, clock.now))

    found = client.get(f"/staff/recordings?q={number}&from=2026-03-02")
    assert found.status_code == 200
    assert f'href="/staff/recordings/{recording_id}"' in found.text
    assert "0:12:34" in found.text
    assert (
        f'href="/staff/recordings/{recording_id}"'
        not in client.get("/staff/recordings?q=nobody-like-this").text
    )
    assert (
        f'href="/staff/recordings/{recording_id}"' not in client.get("/staff/recordings?from=2026-03-03").text
    )

    player = client.get(f"/staff/recordings/{recording_id}")
    assert player.status_code == 200
    match = re.search(r'<video class="player" controls preload="metadata" src="([^"]+)"', player.text)
    assert match and match.group(1).startswith(f"/api/v1/recordings/{recording_id}/media?playback=")
    assert "ab" * 32 in player.text
    # The player's requests belong to the playback its page opened: served in ranges, not logged again.
    media = client.get(html.unescape(match.group(1)), headers={"Range": "bytes=0-99"})
    assert media.status_code == 206 and len(media.content) == 100
    with ctx.db.read() as s:
        logged = s.execute(sa.select(AccessLog).where(AccessLog.recording_id == recording_id)).scalars().all()
        played = (
            s.execute(
                sa.select(AuditEntry).where(
                    AuditEntry.action == "recording.played", AuditEntry.object_id == str(recording_id)
                )
            )
            .scalars()
            .all()
        )
    assert len(logged) == 1 and logged[0].action == "playback"
    assert len(played) == 1

    flagged = post_form(
        client,
        f"/staff/recordings/{recording_id}/flag",
        {"flagged": "true", "note": "case 17/2026"},
        page="/staff/recordings",
    )
    assert flagged.status_code == 303
    assert "The recording is kept for the investigation." in client.get(flagged.headers["location"]).text
    with ctx.db.read() as s:
        rec = s.get(Recording, recording_id)
        assert rec is not None and rec.flagged_for_investigation


def test_recordings_are_for_investigators_of_the_facility(
    client: TestClient, ctx: AppContext, clock: FrozenClock, tmp_path: Path
) -> None:
    place, resident_id, _, visitor_id, _ = _family(ctx)
    visit_id = _visit_at(
        ctx, place, resident_id, visitor_id, clock.now - timedelta(hours=1), status=VisitStatus.COMPLETED
    )
    recording_id = _recording(ctx, clock, visit_id, tmp_path / "visit.mkv")
    officer, secret = make_staff(ctx, Role.MONITORING_OFFICER, facility_id=place.facility_id)
    assert secret is not None
    login(client, officer, totp=totp_now(secret, clock.now))
    assert client.get("/staff/recordings").status_code == 403
    assert client.get(f"/staff/recordings/{recording_id}").status_code == 403

    other = make_facility(ctx)
    stranger, stranger_secret = make_staff(ctx, Role.INVESTIGATOR, facility_id=other.facility_id)
    assert stranger_secret is not None
    client.cookies.clear()
    login(client, stranger, totp=totp_now(stranger_secret, clock.now))
    assert f"/staff/recordings/{recording_id}" not in client.get("/staff/recordings").text
    assert client.get(f"/staff/recordings/{recording_id}").status_code == 404
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(AccessLog)).scalar_one() == 0
