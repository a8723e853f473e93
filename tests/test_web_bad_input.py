"""Bad input gets a 4xx in the one error format, never a 500 or a stack trace, and writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from openvisit.db.models import AuditEntry, AuthSession, LoginAttempt
from openvisit.services.context import AppContext
from tests.factories import PASSWORD, make_visitor
from tests.webutil import csrf_from


def _writes(ctx: AppContext) -> tuple[int, int, int]:
    with ctx.db.read() as s:
        return tuple(  # type: ignore[return-value]
            int(s.execute(sa.select(sa.func.count()).select_from(m)).scalar_one())
            for m in (AuditEntry, AuthSession, LoginAttempt)
        )


def _assert_error(response: object, status: int, code: str) -> None:
    r = response
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    body = r.json()  # type: ignore[attr-defined]
    assert body["error"]["code"] == code
    assert "Traceback" not in r.text  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "request.malformed_json"),
        (b"", 422, "request.invalid"),
        (b"[]", 422, "request.invalid"),
        (b'{"email": 5, "password": []}', 422, "request.invalid"),
        (b'{"email": "a@b.org"}', 422, "request.invalid"),
        (b'{"email": "a@b.org", "password": "x", "admin": true}', 422, "request.unknown_field"),
        (b'{"email": "' + b"a" * 5000 + b'", "password": "x"}', 422, "request.invalid"),
        ('{"email": "\udcff", "password": "x"}'.encode("utf-8", "surrogatepass"), 422, "request.invalid"),
    ],
)
def test_malformed_api_bodies(
    client: TestClient, ctx: AppContext, body: bytes, status: int, code: str
) -> None:
    before = _writes(ctx)
    r = client.post("/api/v1/auth/token", content=body, headers={"content-type": "application/json"})
    _assert_error(r, status, code)
    assert _writes(ctx) == before


def test_wrong_types_in_query(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    _assert_error(client.get("/api/v1/residents?limit=lots", headers=headers), 422, "request.invalid")
    _assert_error(client.get("/api/v1/residents?limit=0", headers=headers), 422, "request.invalid")
    _assert_error(client.get("/api/v1/residents/not-a-number", headers=headers), 422, "request.invalid")
    _assert_error(
        client.get("/api/v1/residents/99999999999999999999999", headers=headers), 422, "request.invalid"
    )


def test_huge_bodies_are_refused_before_reading(client: TestClient, ctx: AppContext) -> None:
    before = _writes(ctx)
    huge = b"x" * (ctx.settings.max_body_bytes + 1)
    r = client.post("/api/v1/auth/token", content=huge, headers={"content-type": "application/json"})
    _assert_error(r, 413, "request.too_large")

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit is enforced while the body streams in.
        for _ in range(ctx.settings.max_body_bytes // (1 << 20) + 2):
            yield b"y" * (1 << 20)

    r = client.post("/api/v1/auth/token", content=chunks(), headers={"content-type": "application/json"})
    _assert_error(r, 413, "request.too_large")
    assert _writes(ctx) == before


def test_a_page_given_a_huge_file_answers_with_a_page_in_the_readers_language(
    client: TestClient, ctx: AppContext
) -> None:
    huge = b"x" * (ctx.settings.max_body_bytes + 1)
    headers = {"content-type": "multipart/form-data; boundary=x", "accept": "text/html"}
    r = client.post("/me/documents", content=huge, headers=headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["x-frame-options"] == "DENY"  # the security headers go on it too
    assert "<h1>This file is too large</h1>" in r.text
    client.cookies.set("ov_lang", "ru")
    r = client.post("/me/documents", content=huge, headers=headers)
    assert "<h1>Файл слишком большой</h1>" in r.text
    assert 'lang="ru"' in r.text


def test_wrong_logins(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    for body in (
        {"email": email, "password": "wrong password"},
        {"email": "nobody@example.org", "password": PASSWORD},
        {"email": email.upper(), "password": PASSWORD.upper()},
    ):
        _assert_error(client.post("/api/v1/auth/token", json=body), 401, "auth.invalid_credentials")


def test_forged_and_odd_credentials(client: TestClient, ctx: AppContext) -> None:
    for header in ("Bearer forged-token", "Bearer " + "a" * 5000, "Basic dXNlcjpwYXNz", "Bearer"):
        r = client.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["error"]["code"] in ("auth.invalid_token", "auth.unsupported_scheme")
    client.cookies.set("ov_session", "forged-session-cookie")
    _assert_error(client.get("/api/v1/me"), 401, "auth.required")
    page = client.get("/staff/residents", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_forms_without_a_valid_csrf_token_change_nothing(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    page = client.get("/login")
    good = csrf_from(page)
    before = _writes(ctx)
    for token in (None, "", "0" * 64, good[:-1] + ("0" if good[-1] != "0" else "1")):
        data = {"email": email, "password": PASSWORD}
        if token is not None:
            data["csrf_token"] = token
        r = client.post("/login", data=data, follow_redirects=False)
        assert r.status_code == 403, token
        assert "auth.csrf_invalid" in r.text
    # A token minted for another browser's cookie is worthless here.
    client.cookies.clear()
    client.cookies.set("ov_csrf", "another-browser-seed-0123456789abcdef")
    data = {"email": email, "password": PASSWORD, "csrf_token": good}
    r = client.post("/login", data=data, follow_redirects=False)
    assert r.status_code == 403
    assert _writes(ctx) == before


def test_cookie_api_writes_need_the_csrf_header(client: TestClient, ctx: AppContext) -> None:
    email, _ = make_visitor(ctx)
    page = client.get("/login")
    token = csrf_from(page)
    client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
    assert client.get("/api/v1/me").status_code == 200
    _assert_error(client.post("/api/v1/auth/logout"), 403, "auth.csrf_invalid")
    fresh = csrf_from(client.get("/"))
    r = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": fresh})
    assert r.status_code == 204


def test_pages_survive_odd_form_input(client: TestClient, ctx: AppContext) -> None:
    token = csrf_from(client.get("/login"))
    before = _writes(ctx)
    r = client.post("/login", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 422
    r = client.post(
        "/login", data={"csrf_token": token, "email": "x" * 300, "password": "p"}, follow_redirects=False
    )
    assert r.status_code == 422
    r = client.post(
        "/login",
        content=b"\xff\xfe\x00garbage",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 403
    assert _writes(ctx) == before


def test_a_crash_is_a_plain_500_without_details(ctx: AppContext) -> None:
    from openvisit.web.app import create_app

    app = create_app(ctx.settings, ctx=ctx)

    @app.get("/api/v1/explode")
    def explode() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/api/v1/explode")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal"
    assert "secret internals" not in r.text
