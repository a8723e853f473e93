"""From a stranger to an approved visitor, through the API, on both databases: registration, email
confirmation, password reset, identity documents, link requests without enumeration, the clerk's
queue and decisions, suspensions, restrictions, attorneys and the do-not-record registry."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qs, urlparse

import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import Image

from openvisit.db.models import (
    AuditEntry,
    Connection,
    IdentityDocument,
    Notification,
    Resident,
    UserAccount,
    Visit,
    Visitor,
)
from openvisit.domain.enums import ConnectionKind, Role, VerificationStatus
from openvisit.services import vetting
from openvisit.services.context import AppContext, RequestMeta
from tests.conftest import FrozenClock
from tests.factories import (
    Place,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    principal_of,
    totp_now,
)
from tests.webutil import api_token

PASSWORD = "a long family password"


def _register(client: TestClient, email: str, **extra: object) -> None:
    body = {
        "email": email,
        "password": PASSWORD,
        "last_name": "Смирнова",
        "first_name": "Мария",
        "middle_name": "Алексеевна",
        "birth_date": "1987-03-21",
        "language": "ru",
        "timezone": "Europe/Moscow",
        **extra,
    }
    r = client.post("/api/v1/register", json=body)
    assert r.status_code == 202, r.text
    assert r.json() == {"status": "check_email"}


def _last_mail(ctx: AppContext, email: str, template: str) -> Notification:
    with ctx.db.read() as s:
        return s.execute(
            sa.select(Notification)
            .where(Notification.address == email, Notification.template == template)
            .order_by(Notification.id.desc())
            .limit(1)
        ).scalar_one()


def _token(ctx: AppContext, email: str, template: str) -> str:
    url = str(_last_mail(ctx, email, template).payload["url"])
    return parse_qs(urlparse(url).query)["token"][0]


def _new_visitor(client: TestClient, ctx: AppContext, email: str) -> dict[str, str]:
    _register(client, email)
    assert (
        client.post(
            "/api/v1/register/confirm", json={"token": _token(ctx, email, "confirm_email")}
        ).status_code
        == 200
    )
    return {"Authorization": f"Bearer {api_token(client, email, password=PASSWORD)}"}


def _photo(*, gps: bool = True, size: tuple[int, int] = (640, 480)) -> bytes:
    image = Image.new("RGB", size, (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # camera maker
    if gps:
        exif[0x8825] = {2: (55.0, 45.0, 0.0), 1: "N"}  # GPS position
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def _clerk(
    client: TestClient, ctx: AppContext, clock: FrozenClock, facility_id: int, role: Role = Role.VETTING_CLERK
) -> dict[str, str]:
    email, secret = make_staff(ctx, role, facility_id=facility_id)
    assert secret
    return {"Authorization": f"Bearer {api_token(client, email, totp=totp_now(secret, clock()))}"}


# --- registration, confirmation, reset ------------------------------------------------------------


def test_registration_confirmation_and_no_enumeration(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    _register(client, "maria@example.org")
    mail = _last_mail(ctx, "maria@example.org", "confirm_email")
    assert mail.language == "ru"
    token = _token(ctx, "maria@example.org", "confirm_email")
    assert (
        client.post("/api/v1/register/confirm", json={"token": token + "x"}).json()["error"]["code"]
        == "token.invalid"
    )
    assert client.post("/api/v1/register/confirm", json={"token": token}).status_code == 200
    with ctx.db.read() as s:
        user = s.execute(sa.select(UserAccount).where(UserAccount.email == "maria@example.org")).scalar_one()
        assert user.email_verified_at is not None
    # The same address again: the same answer, no second account, a note to the owner instead.
    _register(client, "Maria@Example.org")
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(UserAccount)).scalar_one() == 1
    assert _last_mail(ctx, "maria@example.org", "account_exists")


def test_confirmation_links_expire(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    _register(client, "late@example.org")
    token = _token(ctx, "late@example.org", "confirm_email")
    clock.advance(days=4)
    r = client.post("/api/v1/register/confirm", json={"token": token})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "token.expired"


def test_bad_registrations_write_nothing(client: TestClient, ctx: AppContext) -> None:
    cases = [
        ({"password": "short"}, 400, "auth.password_too_short"),
        ({"email": "not-an-address"}, 400, "user.invalid_email"),
        ({"birth_date": "2030-01-01"}, 400, "user.invalid_birth_date"),
        ({"birth_date": "2001-02-30"}, 422, "request.invalid"),
        ({"timezone": "Mars/Olympus"}, 400, "user.invalid_timezone"),
        ({"role": "system_admin"}, 422, "request.unknown_field"),
    ]
    for extra, status, code in cases:
        body = {
            "email": "x@example.org",
            "password": PASSWORD,
            "last_name": "A",
            "first_name": "B",
            "birth_date": "1990-01-01",
            **extra,
        }
        r = client.post("/api/v1/register", json=body)
        assert r.status_code == status, (extra, r.text)
        assert r.json()["error"]["code"] == code
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(UserAccount)).scalar_one() == 0


def test_password_reset(client: TestClient, ctx: AppContext) -> None:
    _new_visitor(client, ctx, "olga@example.org")
    assert client.post("/api/v1/password/forgot", json={"email": "nobody@example.org"}).status_code == 202
    assert client.post("/api/v1/password/forgot", json={"email": "olga@example.org"}).status_code == 202
    token = _token(ctx, "olga@example.org", "password_reset")
    r = client.post("/api/v1/password/reset", json={"token": token, "password": "a brand new password"})
    assert r.status_code == 204
    assert (
        client.post(
            "/api/v1/auth/token", json={"email": "olga@example.org", "password": PASSWORD}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/api/v1/auth/token", json={"email": "olga@example.org", "password": "a brand new password"}
        ).status_code
        == 201
    )
    again = client.post("/api/v1/password/reset", json={"token": token, "password": "yet another password"})
    assert again.json()["error"]["code"] == "token.invalid", "a reset link works once"


# --- identity documents ---------------------------------------------------------------------------


def test_documents_are_reencoded_without_metadata(client: TestClient, ctx: AppContext) -> None:
    headers = _new_visitor(client, ctx, "doc@example.org")
    raw = _photo()
    assert b"SpyCam" in raw
    r = client.post(
        "/api/v1/me/documents?kind=id_front", content=raw, headers={**headers, "content-type": "image/jpeg"}
    )
    assert r.status_code == 201, r.text
    doc = r.json()
    with ctx.db.read() as s:
        row = s.get(IdentityDocument, doc["id"])
        assert row is not None
    stored = (ctx.settings.uploads_path / row.storage_name).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == doc["sha256"] == row.sha256
    assert b"SpyCam" not in stored
    assert not Image.open(io.BytesIO(stored)).getexif()
    assert row.storage_name not in ("id_front.jpg",) and len(row.storage_name) == 36
    got = client.get(f"/api/v1/documents/{doc['id']}", headers=headers)
    assert got.status_code == 200
    assert got.content == stored


def test_what_is_not_an_image_is_refused(client: TestClient, ctx: AppContext) -> None:
    headers = _new_visitor(client, ctx, "fake@example.org")
    for body in (b"%PDF-1.4 not an image", b"GIF89a" + b"\x00" * 20, _photo()[:200], b""):
        r = client.post("/api/v1/me/documents?kind=selfie", content=body, headers=headers)
        assert r.status_code == 400, body[:10]
        assert r.json()["error"]["code"] in ("document.not_an_image", "document.empty")
    big = b"\xff\xd8" + b"0" * (10 * 1024 * 1024 + 10)
    r = client.post("/api/v1/me/documents?kind=selfie", content=big, headers=headers)
    assert r.json()["error"]["code"] == "document.too_large"
    r = client.post("/api/v1/me/documents?kind=passport", content=_photo(), headers=headers)
    assert r.status_code == 422
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(IdentityDocument)).scalar_one() == 0
    assert not list(ctx.settings.uploads_path.glob("*")) if ctx.settings.uploads_path.exists() else True


# --- links and the clerk's queue ------------------------------------------------------------------


def test_from_registration_to_an_approved_link(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    other_place = make_facility(ctx)
    resident_id, number = make_resident(ctx, place)
    headers = _new_visitor(client, ctx, "family@example.org")
    ask = {
        "facility_id": place.facility_id,
        "number": number,
        "last_name": "петров",
        "birth_date": "1985-05-05",
        "relationship": "spouse",
    }
    wrong_name = client.post("/api/v1/links", json={**ask, "last_name": "Сидоров"}, headers=headers)
    nobody = client.post("/api/v1/links", json={**ask, "number": "R-999999"}, headers=headers)
    assert wrong_name.status_code == nobody.status_code == 400
    assert wrong_name.json() == nobody.json(), "a wrong detail and a missing person answer alike"
    made = client.post("/api/v1/links", json=ask, headers=headers)
    assert made.status_code == 201, made.text
    link = made.json()
    assert (link["status"], link["kind"]) == ("requested", "social")
    assert client.post("/api/v1/links", json=ask, headers=headers).json()["error"]["code"] == "link.exists"
    clerk = _clerk(client, ctx, clock, place.facility_id)
    queue = client.get(f"/api/v1/facilities/{place.facility_id}/link-requests", headers=clerk).json()
    assert [q["link"]["id"] for q in queue] == [link["id"]]
    assert queue[0]["visitor_name"] == "Смирнова Мария Алексеевна"
    early = client.post(f"/api/v1/links/{link['id']}/decision", json={"approve": True}, headers=clerk)
    assert early.json()["error"]["code"] == "link.documents_missing"
    for kind in ("id_front", "selfie"):
        client.post(f"/api/v1/me/documents?kind={kind}", content=_photo(), headers=headers)
    queue = client.get(f"/api/v1/facilities/{place.facility_id}/link-requests", headers=clerk).json()
    doc_id = queue[0]["documents"][0]["id"]
    assert client.get(f"/api/v1/documents/{doc_id}", headers=clerk).status_code == 200
    outsider = _clerk(client, ctx, clock, other_place.facility_id)
    officer = _clerk(client, ctx, clock, place.facility_id, Role.MONITORING_OFFICER)
    assert client.get(f"/api/v1/documents/{doc_id}", headers=outsider).status_code == 404
    assert client.get(f"/api/v1/documents/{doc_id}", headers=officer).status_code == 404
    assert (
        client.get(f"/api/v1/facilities/{place.facility_id}/link-requests", headers=outsider).status_code
        == 404
    )
    approved = client.post(f"/api/v1/links/{link['id']}/decision", json={"approve": True}, headers=clerk)
    assert approved.json()["status"] == "approved"
    with ctx.db.read() as s:
        visitor = s.execute(sa.select(Visitor).where(Visitor.id == link["visitor_id"])).scalar_one()
        viewed = s.execute(
            sa.select(sa.func.count()).where(AuditEntry.action == "document.viewed")
        ).scalar_one()
    assert visitor.verification is VerificationStatus.VERIFIED
    assert viewed == 1
    assert (
        _last_mail(ctx, "family@example.org", "link_approved").payload["resident_name"].startswith("Петров")
    )
    assert client.get(f"/api/v1/residents/{resident_id}", headers=headers).status_code == 200
    assert [x["status"] for x in client.get("/api/v1/me/links", headers=headers).json()] == ["approved"]


def test_link_requests_are_throttled(client: TestClient, ctx: AppContext) -> None:
    place = make_facility(ctx)
    headers = _new_visitor(client, ctx, "guesser@example.org")
    ask = {
        "facility_id": place.facility_id,
        "last_name": "X",
        "birth_date": "1985-05-05",
        "relationship": "friend",
    }
    for i in range(5):
        assert (
            client.post("/api/v1/links", json={**ask, "number": f"N{i}"}, headers=headers).status_code == 400
        )
    r = client.post("/api/v1/links", json={**ask, "number": "N9"}, headers=headers)
    assert r.status_code == 429


def test_unconfirmed_visitors_cannot_ask(client: TestClient, ctx: AppContext) -> None:
    place = make_facility(ctx)
    _, number = make_resident(ctx, place)
    _register(client, "hasty@example.org")
    headers = {"Authorization": f"Bearer {api_token(client, 'hasty@example.org', password=PASSWORD)}"}
    r = client.post(
        "/api/v1/links",
        json={
            "facility_id": place.facility_id,
            "number": number,
            "last_name": "Петров",
            "birth_date": "1985-05-05",
            "relationship": "friend",
        },
        headers=headers,
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "visitor.email_unconfirmed"


def _approved_family(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> tuple[dict[str, str], dict[str, str], int, int, int]:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, number = make_resident(ctx, place)
    headers = _new_visitor(client, ctx, "fam@example.org")
    link = client.post(
        "/api/v1/links",
        json={
            "facility_id": place.facility_id,
            "number": number,
            "last_name": "Петров",
            "birth_date": "1985-05-05",
            "relationship": "parent",
        },
        headers=headers,
    ).json()
    for kind in ("id_front", "selfie"):
        client.post(f"/api/v1/me/documents?kind={kind}", content=_photo(), headers=headers)
    clerk = _clerk(client, ctx, clock, place.facility_id)
    client.post(f"/api/v1/links/{link['id']}/decision", json={"approve": True}, headers=clerk)
    return headers, clerk, resident_id, link["id"], place.facility_id


def _wednesday_nine() -> str:
    return (datetime.combine(date(2026, 3, 4), time(9), tzinfo=UTC) - timedelta(hours=7)).isoformat()


def test_suspending_a_link_cancels_its_visits(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    headers, clerk, resident_id, link_id, _ = _approved_family(client, ctx, clock)
    visit = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _wednesday_nine()}, headers=headers
    )
    assert visit.status_code == 201, visit.text
    bad = client.post(
        f"/api/v1/links/{link_id}/status", json={"status": "suspended", "reason": "nope"}, headers=clerk
    )
    assert bad.json()["error"]["code"] == "link.invalid_reason"
    r = client.post(
        f"/api/v1/links/{link_id}/status", json={"status": "suspended", "reason": "security"}, headers=clerk
    )
    assert r.json()["status"] == "suspended"
    assert (
        client.get(f"/api/v1/visits/{visit.json()['id']}", headers=headers).json()["reason"]
        == "link_suspended"
    )
    again = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _wednesday_nine()}, headers=headers
    )
    assert again.json()["error"]["code"] == "visit.visitor_not_approved"
    back = client.post(f"/api/v1/links/{link_id}/status", json={"status": "approved"}, headers=clerk)
    assert back.json()["status"] == "approved"


def test_a_ban_refuses_bookings_until_it_ends(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    headers, clerk, resident_id, link_id, facility_id = _approved_family(client, ctx, clock)
    with ctx.db.read() as s:
        visitor_id = s.get(Connection, link_id).visitor_id  # type: ignore[union-attr]
    ends = (clock() + timedelta(days=5)).isoformat()
    r = client.post(
        f"/api/v1/facilities/{facility_id}/restrictions",
        json={"visitor_id": visitor_id, "kind": "ban", "reason": "contraband", "ends_at": ends},
        headers=clerk,
    )
    assert r.status_code == 201, r.text
    mine = client.get("/api/v1/me/restrictions", headers=headers).json()
    assert [(m["kind"], m["reason"]) for m in mine] == [("ban", "contraband")]
    assert mine[0]["ends_at"].startswith("2026-03-07")
    refused = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _wednesday_nine()}, headers=headers
    )
    assert refused.json()["error"]["code"] == "visit.visitor_restricted"
    assert client.delete(f"/api/v1/restrictions/{r.json()['id']}", headers=clerk).status_code == 204
    ok = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _wednesday_nine()}, headers=headers
    )
    assert ok.status_code == 201


def test_suspensions_escalate(ctx: AppContext, clock: FrozenClock) -> None:
    place = make_facility(ctx)
    _, visitor_id = make_visitor(ctx)
    email, _ = make_staff(ctx, Role.MONITORING_OFFICER, facility_id=place.facility_id)
    officer = principal_of(ctx, email)
    lengths = []
    for _ in range(4):
        with ctx.db.write() as s:
            row = vetting.suspend_after_termination(
                s,
                officer,
                visitor_id,
                place.facility_id,
                None,
                clock(),
                RequestMeta(),
                reason="recording device",
            )
            lengths.append((row.ends_at - row.starts_at).days)  # type: ignore[operator]
    assert lengths == [7, 30, 90, 90]


def test_attorneys_are_verified_into_the_registry(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, number = make_resident(ctx, place)
    _register(
        client, "lawyer@example.org", attorney={"licence_number": "77/1234", "organisation": "Moscow Bar"}
    )
    client.post(
        "/api/v1/register/confirm", json={"token": _token(ctx, "lawyer@example.org", "confirm_email")}
    )
    lawyer = {"Authorization": f"Bearer {api_token(client, 'lawyer@example.org', password=PASSWORD)}"}
    link = client.post(
        "/api/v1/links",
        json={
            "facility_id": place.facility_id,
            "number": number,
            "last_name": "Петров",
            "birth_date": "1985-05-05",
            "relationship": "attorney",
        },
        headers=lawyer,
    ).json()
    assert link["kind"] == "social", "not privileged before the licence is verified"
    for kind in ("id_front", "selfie"):
        client.post(f"/api/v1/me/documents?kind={kind}", content=_photo(), headers=lawyer)
    clerk = _clerk(client, ctx, clock, place.facility_id)
    pending = client.get("/api/v1/attorneys/pending", headers=clerk).json()
    assert [p["licence_number"] for p in pending] == ["77/1234"]
    assert (
        client.post(
            f"/api/v1/attorneys/{link['visitor_id']}/verification", json={"approve": True}, headers=lawyer
        ).status_code
        == 403
    )
    verified = client.post(
        f"/api/v1/attorneys/{link['visitor_id']}/verification", json={"approve": True}, headers=clerk
    )
    assert verified.json()["status"] == "verified"
    client.post(f"/api/v1/links/{link['id']}/decision", json={"approve": True}, headers=clerk)
    with ctx.db.read() as s:
        assert s.get(Connection, link["id"]).kind is ConnectionKind.LEGAL  # type: ignore[union-attr]
    registry = client.get("/api/v1/attorneys/registry", headers=clerk).json()
    assert registry[0]["licence_number"] == "77/1234"
    assert registry[0]["clients"] == [f"Петров Иван Сергеевич ({number})"]
    assert client.get("/api/v1/attorneys/registry", headers=lawyer).status_code == 403
    legal = client.post(
        "/api/v1/visits",
        json={"resident_id": resident_id, "starts_at": _wednesday_nine(), "kind": "legal"},
        headers=lawyer,
    )
    assert legal.status_code == 201, legal.text
    with ctx.db.read() as s:
        assert s.get(Visit, legal.json()["id"]).kind.value == "legal"  # type: ignore[union-attr]


def test_alerts_and_keep_apart_orders(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    headers, clerk, resident_id, _, facility_id = _approved_family(client, ctx, clock)
    assert (
        client.put(
            f"/api/v1/residents/{resident_id}/alert", json={"note": "gang affiliation"}, headers=clerk
        ).status_code
        == 204
    )
    booked = client.post(
        "/api/v1/visits", json={"resident_id": resident_id, "starts_at": _wednesday_nine()}, headers=headers
    )
    assert booked.json()["status"] == "requested"
    assert (
        client.put(f"/api/v1/residents/{resident_id}/alert", json={"note": None}, headers=clerk).status_code
        == 204
    )
    other_place_resident, _ = make_resident(ctx, make_facility(ctx))
    with ctx.db.read() as s:
        unit_id = s.get(Resident, resident_id).unit_id  # type: ignore[union-attr]
    place_resident, _ = make_resident(ctx, Place(facility_id, unit_id or 0, 0, "", ""))
    r = client.post(
        "/api/v1/keep-apart",
        json={"resident_a_id": resident_id, "resident_b_id": place_resident, "reason": "threats"},
        headers=clerk,
    )
    assert r.status_code == 201
    r = client.post(
        "/api/v1/keep-apart",
        json={"resident_a_id": resident_id, "resident_b_id": other_place_resident, "reason": "threats"},
        headers=clerk,
    )
    assert r.status_code == 404
    assert (
        client.post(
            "/api/v1/keep-apart",
            json={"resident_a_id": resident_id, "resident_b_id": resident_id, "reason": "x"},
            headers=clerk,
        ).status_code
        == 400
    )
