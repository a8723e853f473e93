"""Registration and vetting through the pages, driven as a browser would, on both databases: a newcomer
registers, confirms, uploads photos and asks for links; a clerk decides the queue; attorneys are verified
into the do-not-record registry; bans reach the visitor's profile; refusals beside their fields; CSRF;
Russian."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from httpx2 import Response
from PIL import Image

from openvisit.db.models import (
    AttorneyProfile,
    Connection,
    IdentityDocument,
    KeepApart,
    Notification,
    ResidentAlert,
    Restriction,
    UserAccount,
)
from openvisit.domain.enums import ConnectionStatus, Role, VerificationStatus
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import PASSWORD as FACTORY_PASSWORD
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    totp_now,
)
from tests.webutil import csrf_from, login

PASSWORD = "a long family password"
Data = dict[str, str | list[str]]


def _jpeg(size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(out, format="JPEG")
    return out.getvalue()


def _post(client: TestClient, page: str, path: str, data: Data, **kwargs: object) -> Response:
    """GET `page` for its CSRF token, then post the form as a browser would."""
    token = csrf_from(client.get(page))
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False, **kwargs)  # type: ignore[arg-type]


def _registration(email: str, **changes: str) -> Data:
    form: Data = {
        "role": "family",
        "email": email,
        "password": PASSWORD,
        "last_name": "Смирнова",
        "first_name": "Мария",
        "middle_name": "Алексеевна",
        "birth_date": "1987-03-21",
        "phone": "+7 912 345-67-89",
        "home_city": "Москва",
        "language": "en",
        "timezone": "Europe/Moscow",
        "licence_number": "",
        "organisation": "",
    }
    form.update(changes)
    return form


def _register(client: TestClient, email: str, **changes: str) -> None:
    r = _post(client, "/register", "/register", _registration(email, **changes))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/register/sent"


def _confirmation_path(ctx: AppContext, email: str, template: str = "confirm_email") -> str:
    """The emailed link, read from the outbox, as a path the test client can open."""
    with ctx.db.read() as s:
        mail = s.execute(
            sa.select(Notification)
            .where(Notification.address == email, Notification.template == template)
            .order_by(Notification.id.desc())
            .limit(1)
        ).scalar_one()
    url = urlparse(str(mail.payload["url"]))
    return f"{url.path}?{url.query}"


def _newcomer(client: TestClient, ctx: AppContext, email: str, **changes: str) -> None:
    """Registered, confirmed and logged in, through the pages."""
    _register(client, email, **changes)
    confirmed = client.get(_confirmation_path(ctx, email))
    assert confirmed.status_code == 200
    r = login(client, email, password=PASSWORD)
    assert r.status_code == 303, r.text


def _upload(client: TestClient, kind: str, content: bytes, filename: str = "photo.jpg") -> Response:
    return _post(
        client, "/me", "/me/documents", {"kind": kind}, files={"file": (filename, content, "image/jpeg")}
    )


def _ask(client: TestClient, place: Place, number: str, **changes: str) -> Response:
    form: Data = {
        "facility_id": str(place.facility_id),
        "number": number,
        "last_name": "петров",
        "birth_date": "1985-05-05",
        "relationship": "spouse",
        "dependent_id": "",
    }
    form.update(changes)
    return _post(client, "/me/links", "/me/links", form)


@pytest.fixture
def second_browser(client: TestClient) -> Iterator[TestClient]:
    """Another browser on the same server: its own cookies, so a clerk and a visitor work side by side."""
    with TestClient(client.app, base_url="http://testserver") as other:
        yield other


def _clerk(
    browser: TestClient, ctx: AppContext, clock: FrozenClock, place: Place, role: Role = Role.VETTING_CLERK
) -> str:
    email, secret = make_staff(ctx, role, facility_id=place.facility_id)
    assert secret
    r = login(browser, email, totp=totp_now(secret, clock()))
    assert r.status_code == 303, r.text
    return email


def _link_id(ctx: AppContext, resident_id: int) -> int:
    with ctx.db.read() as s:
        return s.execute(sa.select(Connection.id).where(Connection.resident_id == resident_id)).scalar_one()


# --- the whole way, from a stranger to an approved link -------------------------------------------


def test_a_newcomer_registers_and_a_clerk_decides_the_queue(
    client: TestClient, second_browser: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    spouse_id, spouse_number = make_resident(ctx, place)
    friend_id, friend_number = make_resident(ctx, place)

    home = client.get("/")
    assert 'href="/register"' in home.text and 'href="/password/forgot"' in home.text
    page = client.get("/register")
    assert page.status_code == 200
    assert '<option value="Europe/Moscow" selected>' in page.text
    assert page.text.index("Europe/Kaliningrad") < page.text.index("Europe/Berlin"), "Russia's zones first"
    assert "<legend>You are</legend>" in page.text

    _register(client, "maria@example.org")
    sent = client.get("/register/sent")
    assert "Check your email" in sent.text
    # The same address again: the very same answer, and still one account.
    _register(client, "Maria@Example.org")
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(UserAccount)).scalar_one() == 1

    confirmed = client.get(_confirmation_path(ctx, "maria@example.org"))
    assert confirmed.status_code == 200
    assert "Your email address is confirmed" in confirmed.text and "maria@example.org" in confirmed.text
    assert login(client, "maria@example.org", password=PASSWORD).status_code == 303

    me = client.get("/me")
    assert me.status_code == 200
    assert "Please confirm your email address" not in me.text
    assert "Not checked yet" in me.text and 'value="Смирнова"' in me.text
    assert 'href="/me/links"' in me.text and 'href="/me"' in me.text, "the visitor's nav"

    for kind in ("id_front", "selfie"):
        r = _upload(client, kind, _jpeg())
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/me?done=uploaded"
    with ctx.db.read() as s:
        doc_ids = list(s.execute(sa.select(IdentityDocument.id).order_by(IdentityDocument.id)).scalars())
    assert len(doc_ids) == 2
    me = client.get("/me")
    assert "Waiting for staff to check" in me.text
    for doc_id in doc_ids:
        assert f'<img src="/api/v1/documents/{doc_id}"' in me.text
    image = client.get(f"/api/v1/documents/{doc_ids[0]}")
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"

    # A wrong detail gets the service's one answer, which names nobody; what was typed stays.
    wrong = _ask(client, place, spouse_number, last_name="Сидоров")
    assert wrong.status_code == 400
    assert "We could not find a person with these details." in wrong.text
    assert f'value="{spouse_number}"' in wrong.text and 'value="Сидоров"' in wrong.text
    assert _ask(client, place, spouse_number).status_code == 303
    asked = _ask(client, place, friend_number, relationship="friend")
    assert asked.status_code == 303 and asked.headers["location"] == "/me/links?done=requested"
    mine = client.get("/me/links?done=requested")
    assert "Your request is sent." in mine.text
    assert mine.text.count("Awaiting approval") == 2

    _clerk(second_browser, ctx, clock, place)
    queue = second_browser.get("/staff/links")
    assert queue.status_code == 200
    text = queue.text
    for expected in (
        spouse_number,
        friend_number,
        "Смирнова Мария Алексеевна",
        "maria@example.org",
        "Mar 21, 1987 · 38 years old",
        "Waiting for staff to check",
        "Husband or wife",
        "Friend",
    ):
        assert expected in text, expected
    for doc_id in doc_ids:
        # Each card shows the visitor's two photos, each a link to the full image.
        assert text.count(f'<a href="/api/v1/documents/{doc_id}"><img src="/api/v1/documents/{doc_id}"') == 2
    assert second_browser.get(f"/api/v1/documents/{doc_ids[1]}").status_code == 200
    assert 'href="/staff/links"' in text and 'href="/staff/attorneys"' in text, "the clerk's nav"

    spouse_link, friend_link = _link_id(ctx, spouse_id), _link_id(ctx, friend_id)
    no_reason = _post(
        second_browser,
        "/staff/links",
        f"/staff/links/{friend_link}/decision",
        {"decision": "reject", "facility_id": str(place.facility_id), "reason": ""},
    )
    assert no_reason.status_code == 400
    assert (
        f'<p class="field-error" id="error-decide-{friend_link}-reason">'
        "Please choose one of the listed reasons.</p>" in no_reason.text
    )
    assert f'aria-describedby="error-decide-{friend_link}-reason"' in no_reason.text
    rejected = _post(
        second_browser,
        "/staff/links",
        f"/staff/links/{friend_link}/decision",
        {
            "decision": "reject",
            "facility_id": str(place.facility_id),
            "reason": "not_a_relative",
            "note": "Please ask him to add you to his list.",
        },
    )
    assert rejected.status_code == 303, rejected.text
    approved = _post(
        second_browser,
        "/staff/links",
        f"/staff/links/{spouse_link}/decision",
        {"decision": "approve", "facility_id": str(place.facility_id)},
    )
    assert approved.status_code == 303, approved.text
    after = second_browser.get(approved.headers["location"])
    assert "The link is approved" in after.text and "No requests are waiting." in after.text
    links = second_browser.get("/staff/links?view=approved").text
    assert spouse_number in links and "Suspend" in links and "Revoke" in links

    mine = client.get("/me/links")
    assert "Approved" in mine.text and "Rejected" in mine.text
    assert "Reason: The relationship could not be confirmed" in mine.text
    assert "Please ask him to add you to his list." in mine.text
    assert f'href="/visits/book?resident_id={spouse_id}"' in mine.text
    assert "Verified" in client.get("/me").text
    book = client.get(f"/visits/book?resident_id={spouse_id}")
    assert book.status_code == 200
    assert f'<option value="{spouse_id}" selected>' in book.text
    assert 'name="starts_at"' in book.text, "free times to choose from"


def test_a_confirmation_link_that_does_not_work_says_how_to_get_another(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    _register(client, "late@example.org")
    path = _confirmation_path(ctx, "late@example.org")
    bad = client.get(path + "x")
    assert bad.status_code == 400
    assert "This link is not valid. Please ask for a new one." in bad.text
    assert 'href="/login?next=%2Fme"' in bad.text
    clock.advance(days=4)
    expired = client.get(path)
    assert expired.status_code == 400 and "This link has expired." in expired.text

    # Logged in but unconfirmed: the banner, a new link, and no link requests until confirmed.
    assert login(client, "late@example.org", password=PASSWORD).status_code == 303
    me = client.get("/me")
    assert "Please confirm your email address" in me.text
    sent = _post(client, "/me", "/me/confirmation", {})
    assert sent.status_code == 303 and sent.headers["location"] == "/me?done=sent"
    place = make_facility(ctx)
    _, number = make_resident(ctx, place)
    refused = _ask(client, place, number)
    assert refused.status_code == 403
    assert "Please confirm your email address first." in refused.text
    assert client.get(_confirmation_path(ctx, "late@example.org")).status_code == 200
    assert "Please confirm your email address" not in client.get("/me").text


def test_a_forgotten_password_is_replaced_through_the_pages(client: TestClient, ctx: AppContext) -> None:
    _newcomer(client, ctx, "olga@example.org")
    client.cookies.clear()
    assert 'href="/password/forgot"' in client.get("/login").text
    for address in ("nobody@example.org", "olga@example.org"):
        r = _post(client, "/password/forgot", "/password/forgot", {"email": address})
        assert r.status_code == 303 and r.headers["location"] == "/password/sent", "the same for both"
    assert "If an account uses this address" in client.get("/password/sent").text
    path = _confirmation_path(ctx, "olga@example.org", "password_reset")
    form = client.get(path)
    assert form.status_code == 200 and 'name="token"' in form.text
    token = path.split("token=", 1)[1]
    short = _post(client, path, "/password/reset", {"token": token, "password": "short"})
    assert short.status_code == 400
    assert '<p class="field-error" id="error-reset-password">' in short.text
    done = _post(client, path, "/password/reset", {"token": token, "password": "a brand new password"})
    assert done.status_code == 303 and done.headers["location"] == "/password/changed"
    assert login(client, "olga@example.org", password="a brand new password").status_code == 303
    client.cookies.clear()
    again = _post(client, path, "/password/reset", {"token": token, "password": "yet another password"})
    assert again.status_code == 400 and "This link is not valid." in again.text
    assert 'href="/password/forgot"' in again.text


# --- the profile: details, children, photos -------------------------------------------------------


def test_the_profile_page_saves_details_and_children(client: TestClient, ctx: AppContext) -> None:
    _newcomer(client, ctx, "anna@example.org")
    bad = _post(
        client,
        "/me",
        "/me/profile",
        {**_registration("x")} | {"phone": "call me", "timezone": "Asia/Krasnoyarsk"},
    )
    assert bad.status_code == 400
    assert '<p class="field-error" id="error-profile-phone">This is not a phone number.</p>' in bad.text
    assert 'value="call me"' in bad.text
    saved = _post(
        client, "/me", "/me/profile", _registration("x", home_city="Красноярск", timezone="Asia/Krasnoyarsk")
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/me?done=saved"
    me = client.get("/me?done=saved").text
    assert "Your profile is saved." in me
    assert 'value="Красноярск"' in me and '<option value="Asia/Krasnoyarsk" selected>' in me

    adult = _post(
        client,
        "/me",
        "/me/children",
        {"last_name": "Смирнов", "first_name": "Пётр", "birth_date": "2001-01-01"},
    )
    assert adult.status_code == 400
    assert 'id="error-child-birth_date"' in adult.text and "A child must be under 18" in adult.text
    added = _post(
        client,
        "/me",
        "/me/children",
        {"last_name": "Смирнов", "first_name": "Пётр", "birth_date": "2016-06-01"},
    )
    assert added.status_code == 303
    me = client.get("/me").text
    assert "Пётр Смирнов" in me
    child_id = int(re.search(r'action="/me/children/(\d+)/remove"', me).group(1))  # type: ignore[union-attr]
    links = client.get("/me/links").text
    assert f'value="{child_id}"' in links and "My child: Пётр Смирнов" in links
    removed = _post(client, "/me", f"/me/children/{child_id}/remove", {})
    assert removed.status_code == 303
    assert "Пётр Смирнов" not in client.get("/me").text


def test_what_is_not_a_photo_is_refused_beside_the_field(client: TestClient, ctx: AppContext) -> None:
    _newcomer(client, ctx, "pdf@example.org")
    r = _upload(client, "selfie", b"%PDF-1.4 not an image", filename="scan.pdf")
    assert r.status_code == 400
    assert (
        '<p class="field-error" id="error-document-file">Please upload a photo (JPEG, PNG or WebP).</p>'
        in r.text
    )
    assert re.search(
        r'id="file"[^>]*aria-invalid="true" aria-describedby="error-document-file file-hint"', r.text
    )
    assert '<option value="selfie" selected>' in r.text, "the chosen kind stays chosen"
    empty = _upload(client, "id_front", b"")
    assert empty.status_code == 400 and "The file is empty." in empty.text
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(IdentityDocument)).scalar_one() == 0


# --- attorneys --------------------------------------------------------------------------------------


def test_an_attorney_registers_and_a_clerk_verifies_them_into_the_registry(
    client: TestClient, second_browser: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    missing = _post(
        client,
        "/register",
        "/register",
        _registration("lawyer@example.org", role="attorney", organisation="Bar"),
    )
    assert missing.status_code == 400
    assert (
        '<p class="field-error" id="error-register-licence_number">'
        "Please give your licence or bar number.</p>" in missing.text
    )
    assert 'value="attorney" checked' in missing.text, "the choice stays made"
    _newcomer(
        client,
        ctx,
        "lawyer@example.org",
        role="attorney",
        last_name="Адвокатов",
        first_name="Павел",
        licence_number="77/1234",
        organisation="Moscow Bar",
    )
    me = client.get("/me").text
    assert "77/1234" in me and "Moscow Bar" in me and "Waiting for staff to check" in me

    _clerk(second_browser, ctx, clock, place)
    page = second_browser.get("/staff/attorneys")
    assert page.status_code == 200
    assert "77/1234" in page.text and "Адвокатов Павел" in page.text
    assert "Privileged: never recorded, never watched" in page.text
    assert "No attorney is verified yet." in page.text
    with ctx.db.read() as s:
        visitor_id = s.execute(sa.select(AttorneyProfile.visitor_id)).scalar_one()
    r = _post(
        second_browser,
        "/staff/attorneys",
        f"/staff/attorneys/{visitor_id}/verification",
        {"decision": "verify", "note": "Checked with the bar"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/staff/attorneys?done=verified"
    verified = second_browser.get(r.headers["location"]).text
    assert "No claims are waiting." in verified
    registry = verified.split("Privileged: never recorded, never watched", 1)[1]
    assert "Адвокатов Павел" in registry and "77/1234" in registry and "Moscow Bar" in registry
    with ctx.db.read() as s:
        assert s.execute(sa.select(AttorneyProfile.status)).scalar_one() is VerificationStatus.VERIFIED
    assert "Verified" in client.get("/me").text


# --- restrictions -----------------------------------------------------------------------------------


def _approved_visitor(ctx: AppContext, place: Place) -> tuple[str, int, int]:
    resident_id, _number = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return email, visitor_id, _link_id(ctx, resident_id)


def test_a_ban_added_by_a_clerk_shows_on_the_visitors_profile_until_lifted(
    client: TestClient, second_browser: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)  # Krasnoyarsk, UTC+7
    email, visitor_id, link_id = _approved_visitor(ctx, place)
    _clerk(second_browser, ctx, clock, place)
    page = f"/staff/links?facility_id={place.facility_id}&view=approved"
    assert "Ban or suspend this visitor" in second_browser.get(page).text
    form: Data = {
        "visitor_id": str(visitor_id),
        "facility_id": str(place.facility_id),
        "view": "approved",
        "kind": "ban",
        "ends_on": "",
        "reason": "Contraband in a parcel",
    }
    no_end = _post(second_browser, page, f"/staff/links/{link_id}/restriction", form)
    assert no_end.status_code == 400
    assert f'id="error-restrict-{link_id}-ends_at"' in no_end.text
    assert "Please give the day it ends, or choose no end." in no_end.text
    assert '<details class="restrict" open>' in no_end.text
    r = _post(second_browser, page, f"/staff/links/{link_id}/restriction", {**form, "ends_on": "2026-03-10"})
    assert r.status_code == 303, r.text
    assert "The restriction is in force" in second_browser.get(r.headers["location"]).text
    card = second_browser.get(page).text
    assert "Restrictions in force" in card and "Contraband in a parcel" in card
    with ctx.db.read() as s:
        ban = s.execute(sa.select(Restriction)).scalar_one()
    assert ban.ends_at is not None and ban.ends_at.isoformat().startswith("2026-03-09T17:00")

    assert login(client, email, password=FACTORY_PASSWORD).status_code == 303
    me = client.get("/me").text
    assert "Restrictions on your visits" in me and "Ban" in me and "Contraband in a parcel" in me
    assert "You may not visit until Mar 10, 2026 00:00 (Krasnoyarsk, UTC+7)" in me
    assert "Mar 9, 2026 20:00 (Moscow, UTC+3)" in me, "and in the visitor's own time"

    listing = second_browser.get("/staff/restrictions").text
    assert "Contraband in a parcel" in listing and "Иванова Анна" in listing
    lifted = _post(
        second_browser,
        "/staff/restrictions",
        f"/staff/restrictions/{ban.id}/lift",
        {"facility_id": str(place.facility_id)},
    )
    assert lifted.status_code == 303
    assert "No visitor is banned or suspended here." in second_browser.get("/staff/restrictions").text
    assert "Restrictions on your visits" not in client.get("/me").text


def test_links_are_suspended_and_reinstated(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place = make_facility(ctx)
    _email, _visitor_id, link_id = _approved_visitor(ctx, place)
    _clerk(client, ctx, clock, place)
    page = "/staff/links?view=approved"
    base: Data = {"facility_id": str(place.facility_id), "note": "Until the inquiry ends"}
    no_reason = _post(client, page, f"/staff/links/{link_id}/status", {**base, "status": "suspended"})
    assert no_reason.status_code == 400 and f'id="error-status-{link_id}-reason"' in no_reason.text
    r = _post(
        client, page, f"/staff/links/{link_id}/status", {**base, "status": "suspended", "reason": "security"}
    )
    assert r.status_code == 303
    text = client.get(r.headers["location"]).text
    assert "The link is suspended" in text and "Suspended: Security" in text and "Reinstate" in text
    r = _post(
        client,
        page,
        f"/staff/links/{link_id}/status",
        {"facility_id": str(place.facility_id), "status": "approved"},
    )
    assert r.status_code == 303
    with ctx.db.read() as s:
        assert s.get(Connection, link_id).status is ConnectionStatus.APPROVED  # type: ignore[union-attr]


def test_keep_apart_orders_and_alerts_by_resident_number(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    other = make_facility(ctx)
    _, first = make_resident(ctx, place)
    _, second = make_resident(ctx, place)
    _, elsewhere = make_resident(ctx, other)
    _clerk(client, ctx, clock, place)
    page = "/staff/restrictions"
    facility = {"facility_id": str(place.facility_id)}
    foreign = _post(
        client,
        page,
        "/staff/keep-apart",
        {**facility, "number_a": first, "number_b": elsewhere, "reason": "threats"},
    )
    assert foreign.status_code == 404
    assert '<p class="field-error" id="error-keep_apart-number_b">No such resident.</p>' in foreign.text
    same = _post(
        client, page, "/staff/keep-apart", {**facility, "number_a": first, "number_b": first, "reason": "x"}
    )
    assert same.status_code == 400 and 'id="error-keep_apart-number_b"' in same.text
    ok = _post(
        client,
        page,
        "/staff/keep-apart",
        {**facility, "number_a": first.lower(), "number_b": second, "reason": "threats"},
    )
    assert ok.status_code == 303
    text = client.get(ok.headers["location"]).text
    assert "never share a visiting room" in text and first in text and second in text and "threats" in text

    no_note = _post(
        client, page, "/staff/alerts", {**facility, "number": second, "note": "", "action": "set"}
    )
    assert no_note.status_code == 400 and 'id="error-alert-note"' in no_note.text
    r = _post(
        client, page, "/staff/alerts", {**facility, "number": second, "note": "Gang ties", "action": "set"}
    )
    assert r.status_code == 303
    assert "Gang ties" in client.get(page).text
    r = _post(client, page, "/staff/alerts", {**facility, "number": second, "note": "", "action": "clear"})
    assert r.status_code == 303
    assert "No resident has an alert." in client.get(page).text
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(KeepApart)).scalar_one() == 1
        assert not s.execute(sa.select(ResidentAlert.active)).scalar_one()


# --- who may, CSRF, language -------------------------------------------------------------------------


def test_only_clerks_of_the_facility_use_the_vetting_pages(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    other = make_facility(ctx)
    _clerk(client, ctx, clock, place, Role.SCHEDULER)
    for path in ("/staff/links", "/staff/restrictions", "/staff/attorneys"):
        assert client.get(path).status_code == 403, path
    assert 'href="/staff/links"' not in client.get("/").text
    client.cookies.clear()
    _clerk(client, ctx, clock, place)
    assert client.get(f"/staff/links?facility_id={other.facility_id}").status_code == 404
    assert client.get(f"/staff/restrictions?facility_id={other.facility_id}").status_code == 404
    visitor_email, _ = make_visitor(ctx)
    client.cookies.clear()
    assert login(client, visitor_email, password=FACTORY_PASSWORD).status_code == 303
    assert client.get("/staff/links").status_code == 403
    anonymous = TestClient(client.app, base_url="http://testserver")
    r = anonymous.get("/me", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


def test_form_posts_without_the_csrf_token_are_refused(client: TestClient, ctx: AppContext) -> None:
    client.get("/register")
    r = client.post("/register", data=_registration("x@example.org"), follow_redirects=False)
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(UserAccount)).scalar_one() == 0
    _newcomer(client, ctx, "csrf@example.org")
    r = client.post(
        "/me/documents", data={"kind": "selfie"}, files={"file": ("a.jpg", _jpeg(), "image/jpeg")}
    )
    assert r.status_code == 403
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(IdentityDocument)).scalar_one() == 0


def test_the_pages_speak_russian(client: TestClient, ctx: AppContext) -> None:
    ru = {"Accept-Language": "ru"}
    page = client.get("/register", headers=ru).text
    for russian in ("Регистрация", "Фамилия", "Дата рождения", "Я адвокат", "Москва, UTC+3"):
        assert russian in page, russian
    for english in ("Last name", "Date of birth", "I am an attorney", "Your time zone"):
        assert english not in page, english
    assert '<option value="Europe/Moscow" selected>' in page
    token = csrf_from(client.get("/register", headers=ru))
    r = client.post(
        "/register",
        data={
            **_registration("ivan@example.org", language="ru", birth_date="2030-01-01"),
            "csrf_token": token,
        },
        headers=ru,
    )
    assert r.status_code == 400 and "Проверьте дату рождения." in r.text
    _newcomer(client, ctx, "ivan@example.org", language="ru")
    me = client.get("/me").text
    assert "Мой профиль" in me and "Подтверждение личности" in me and "My profile" not in me
    links = client.get("/me/links").text
    assert "Люди, которых я навещаю" in links and "Муж или жена" in links and "People I visit" not in links
