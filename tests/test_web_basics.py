"""The web skeleton: health checks, OpenAPI, one error format, security headers, pages in two languages."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from openvisit.services.context import AppContext
from openvisit.settings import Settings
from openvisit.web.app import create_app
from tests.conftest import TEST_SECRET


def test_health_and_readiness(client: TestClient, ctx: AppContext) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == ctx.db.engine.dialect.name


def test_readiness_fails_when_the_database_is_gone(tmp_path: Path) -> None:
    settings = Settings(
        mode="test",
        secret_key=TEST_SECRET,  # type: ignore[arg-type]
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        var_dir=tmp_path,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database.unreachable"


def test_openapi_lists_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "OpenVisit"
    paths = set(spec["paths"])
    for path in ("/api/v1/auth/token", "/api/v1/me", "/api/v1/residents", "/api/v1/visits", "/api/v1/audit"):
        assert path in paths
    assert not any(p.startswith("/login") for p in paths), "pages are not part of the API"


def test_api_errors_share_one_format(client: TestClient) -> None:
    for method, path, status, code in (
        ("GET", "/api/v1/nothing-here", 404, "not_found"),
        ("DELETE", "/api/v1/me", 405, "request.method_not_allowed"),
        ("GET", "/api/v1/me", 401, "auth.required"),
        ("GET", "/api/v1/residents?limit=100000", 401, "auth.required"),
    ):
        r = client.request(method, path)
        assert r.status_code == status, (path, r.text)
        body = r.json()
        assert set(body) == {"error"}
        assert body["error"]["code"] == code
        assert body["error"]["message"]


def test_security_headers_everywhere(client: TestClient) -> None:
    for path in ("/", "/login", "/api/v1/me", "/healthz", "/static/app.css", "/nothing-here"):
        r = client.get(path)
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"


def test_html_pages_render_in_english_and_russian(client: TestClient) -> None:
    en = client.get("/login")
    assert en.status_code == 200
    assert '<html lang="en">' in en.text
    assert "Log in" in en.text
    ru = client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru">' in ru.text
    assert "Войти" in ru.text
    switched = client.get("/language/ru?next=/login", follow_redirects=True)
    assert '<html lang="ru">' in switched.text


def test_language_switch_refuses_open_redirects(client: TestClient) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        r = client.get("/language/ru", params={"next": target}, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/"


def test_unknown_page_is_a_page(client: TestClient) -> None:
    r = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "not_found" in r.text
