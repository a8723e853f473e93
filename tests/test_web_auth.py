"""Logging in and out: cookie sessions with CSRF, bearer tokens, staff TOTP, throttling, stations."""

from __future__ import annotations

import re

import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import AuditEntry, AuthSession, LoginAttempt, UserAccount
from openvisit.domain.enums import Role
from openvisit.services.context import AppContext
from tests.conftest import FrozenClock
from tests.factories import PASSWORD, make_facility, make_resident, make_staff, make_visitor, totp_now
from tests.webutil import api_token, csrf_from, login, post_form


def _count(ctx: AppContext, model: type) -> int:
    with ctx.db.read() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(model)).scalar_one())


def test_visitor_logs_in_sees_home_and_logs_out(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    r = login(client, email)
    assert r.status_code == 303
    cookie = r.cookies.get("ov_session") or client.cookies.get("ov_session")
    assert cookie
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie
    home = client.get("/")
    assert "People you visit" in home.text
    assert client.get("/api/v1/me").json()["visitor_id"] is not None
    out = client.post("/logout", data={"csrf_token": csrf_from(home)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/api/v1/me").status_code == 401
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(AuthSession)).scalar_one() == 0


def test_session_cookie_holds_no_secret_we_store(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    login(client, email)
    token = client.cookies.get("ov_session")
    with ctx.db.read() as s:
        stored = s.execute(sa.select(AuthSession.token_hash)).scalar_one()
    assert token and stored != token and len(stored) == 64


def test_wrong_password_is_refused_and_counted(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    r = login(client, email, password="not the password")
    assert r.status_code == 401
    assert "The email, password or code is not right." in r.text
    with ctx.db.read() as s:
        attempt = s.execute(sa.select(LoginAttempt)).scalar_one()
    assert attempt.subject == email and attempt.success is False


def test_five_failures_slow_the_account_down_and_are_audited(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    email, _ = make_visitor(ctx)
    for _ in range(5):
        assert client.post("/api/v1/auth/token", json={"email": email, "password": "bad"}).status_code == 401
    r = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "auth.throttled"
    assert int(r.headers["retry-after"]) >= 1
    with ctx.db.read() as s:
        actions = s.execute(sa.select(AuditEntry.action, AuditEntry.object_id)).all()
    assert ("auth.throttled", email) in actions
    clock.advance(seconds=31)
    assert client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).status_code == 201


def test_the_address_is_slowed_down_across_accounts(client: TestClient, ctx: AppContext) -> None:
    emails = [make_visitor(ctx)[0] for _ in range(5)]
    for email in emails:
        client.post("/api/v1/auth/token", json={"email": email, "password": "bad"})
    fresh, _ = make_visitor(ctx)
    r = client.post("/api/v1/auth/token", json={"email": fresh, "password": PASSWORD})
    assert r.status_code == 429


def test_throttled_page_login_says_so(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    for _ in range(5):
        login(client, email, password="bad")
    r = login(client, email)
    assert r.status_code == 429
    assert "Too many failed logins" in r.text


def test_staff_must_enrol_totp_before_doing_anything(
    client: TestClient, ctx: AppContext, clock: FrozenClock
) -> None:
    place = make_facility(ctx)
    email, _ = make_staff(ctx, Role.VETTING_CLERK, facility_id=place.facility_id, totp=False)
    r = login(client, email)
    assert r.headers["location"] == "/account/security"
    assert client.get("/staff/residents", follow_redirects=False).headers["location"] == "/account/security"
    assert client.get("/api/v1/residents").json()["error"]["code"] == "auth.totp_enrolment_required"
    # The API refuses a token until the second factor exists.
    api = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert api.status_code == 403
    page = client.get("/account/security")
    assert page.status_code == 200
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text)
    assert secret
    bad = client.post("/account/security", data={"code": "000000", "csrf_token": csrf_from(page)})
    assert bad.status_code == 400
    page = client.get("/account/security")
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', page.text)
    assert secret
    ok = client.post(
        "/account/security",
        data={"code": totp_now(secret.group(1), clock()), "csrf_token": csrf_from(page)},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert client.get("/staff/residents").status_code == 200
    # From now on the code is asked at every login.
    client.cookies.clear()
    r = login(client, email)
    assert r.status_code == 400 and "authenticator" in r.text
    r = login(client, email, totp=totp_now(secret.group(1), clock()))
    assert r.status_code == 303 and r.headers["location"] == "/"
    with ctx.db.read() as s:
        assert s.execute(sa.select(UserAccount.totp_enrolled_at)).scalar_one() is not None
        assert "auth.totp_enrolled" in s.execute(sa.select(AuditEntry.action)).scalars().all()


def test_staff_with_totp_get_an_api_token(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    place = make_facility(ctx)
    email, secret = make_staff(ctx, Role.FACILITY_ADMIN, facility_id=place.facility_id)
    assert secret
    r = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
    assert r.status_code == 400 and r.json()["error"]["code"] == "auth.totp_required"
    r = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD, "totp": "123456"})
    assert r.status_code == 401
    token = api_token(client, email, totp=totp_now(secret, clock()))
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["roles"] == [
        {"role": "facility_admin", "facility_id": place.facility_id, "link_center_id": None}
    ]
    out = client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    again = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401 and again.json()["error"]["code"] == "auth.invalid_token"


def test_sessions_expire(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    email, _ = make_visitor(ctx)
    login(client, email)
    assert client.get("/api/v1/me").status_code == 200
    clock.advance(hours=ctx.settings.session_hours + 1)
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 200  # a logged-out home page


def test_sessions_slide_while_in_use(client: TestClient, ctx: AppContext, clock: FrozenClock) -> None:
    email, _ = make_visitor(ctx)
    login(client, email)
    for _ in range(4):
        clock.advance(hours=ctx.settings.session_hours - 1)
        assert client.get("/api/v1/me").status_code == 200


def test_resident_logs_in_at_an_enrolled_station(client: TestClient, ctx: AppContext) -> None:
    place = make_facility(ctx)
    _, number = make_resident(ctx, place, pin="1357")
    page = client.get("/station/login")
    assert "Set up this station" in page.text
    bad = post_form(
        client,
        "/station/enrol",
        {"station_code": place.station_code, "station_key": "wrong"},
        page="/station/login",
    )
    assert bad.status_code == 401
    r = post_form(
        client,
        "/station/enrol",
        {"station_code": place.station_code, "station_key": place.station_key},
        page="/station/login",
    )
    assert r.status_code == 303
    assert "Log in to see your visits" in client.get("/station/login").text
    wrong = post_form(client, "/station/login", {"number": number, "pin": "0000"}, page="/station/login")
    assert wrong.status_code == 401
    ok = post_form(client, "/station/login", {"number": number.lower(), "pin": "1357"}, page="/station/login")
    assert ok.status_code == 303 and ok.headers["location"] == "/station"
    home = client.get("/station")
    assert home.status_code == 200 and "Иван" in home.text
    me = client.get("/api/v1/me").json()
    assert me["kind"] == "resident" and me["station_id"] == place.station_id


def test_resident_cannot_log_in_at_another_facilitys_station(client: TestClient, ctx: AppContext) -> None:
    home_place = make_facility(ctx)
    other = make_facility(ctx)
    _, number = make_resident(ctx, home_place, pin="1357")
    r = client.post(
        "/api/v1/auth/station-token",
        json={
            "station_code": other.station_code,
            "station_key": other.station_key,
            "number": number,
            "pin": "1357",
        },
    )
    assert r.status_code == 401
    r = client.post(
        "/api/v1/auth/station-token",
        json={
            "station_code": home_place.station_code,
            "station_key": home_place.station_key,
            "number": number,
            "pin": "1357",
        },
    )
    assert r.status_code == 201
