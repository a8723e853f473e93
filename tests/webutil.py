"""Helpers for driving the pages as a browser would: read the CSRF token, post forms."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from httpx2 import Response

from tests.factories import PASSWORD

_CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


def csrf_from(page: Response) -> str:
    match = _CSRF.search(page.text)
    assert match, "the page has no CSRF token"
    return match.group(1)


def post_form(client: TestClient, path: str, data: dict[str, str], *, page: str = "/login") -> Response:
    """GET `page` for its token (and cookie), then POST the form as a browser would."""
    token = csrf_from(client.get(page))
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def login(client: TestClient, email: str, *, password: str = PASSWORD, totp: str = "") -> Response:
    data = {"email": email, "password": password}
    if totp:
        data["totp"] = totp
    return post_form(client, "/login", data)


def api_token(client: TestClient, email: str, *, password: str = PASSWORD, totp: str | None = None) -> str:
    body: dict[str, str] = {"email": email, "password": password}
    if totp:
        body["totp"] = totp
    r = client.post("/api/v1/auth/token", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["access_token"])
