"""Every message the code can show has a Russian translation, and people get their language."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from tools.messages import missing

from openvisit.web.i18n import format_both, format_when, pick_language, translate


def test_every_message_is_translated_to_russian() -> None:
    assert missing("ru") == []


def test_translate_fills_parameters() -> None:
    assert translate("ru", "Hello, %(name)s", {"name": "Иван"}) == "Здравствуйте, Иван"
    assert translate("en", "Hello, %(name)s", {"name": "Ivan"}) == "Hello, Ivan"


def test_language_choice_order() -> None:
    assert pick_language("ru", "en") == "ru"
    assert pick_language(None, "ru") == "ru"
    assert pick_language("xx", None, accept_language="de-DE,ru;q=0.8,en;q=0.5") == "ru"
    assert pick_language(None, accept_language="en-GB;q=0.3,ru;q=0.9") == "ru"
    assert pick_language(None, accept_language="de;q=bogus,,;") == "en"


def test_times_name_their_zone_and_show_both_when_they_differ() -> None:
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert format_when(at, "en", "Asia/Krasnoyarsk") == "Mar 2, 2026 16:00 (Krasnoyarsk, UTC+7)"
    assert format_when(at, "ru", "Europe/Moscow").endswith("12:00 (Москва, UTC+3)")
    both = format_both(at, "en", "Asia/Krasnoyarsk", "Europe/Moscow")
    assert "16:00 (Krasnoyarsk, UTC+7)" in both
    assert "12:00 (Moscow, UTC+3)" in both
    assert format_both(at, "en", "Asia/Krasnoyarsk", "Asia/Novosibirsk").count("UTC+7") == 1


def test_api_errors_speak_the_callers_language(client: TestClient) -> None:
    r = client.post(
        "/api/v1/auth/token",
        json={"email": "x@example.org", "password": "wrong"},
        headers={"Accept-Language": "ru"},
    )
    assert r.status_code == 401
    assert r.json()["error"] == {
        "code": "auth.invalid_credentials",
        "message": "Неверная почта, пароль или код.",
    }


def test_russian_page_has_no_english_left(client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Language": "ru"}).text
    for english in ("Log in", "For families", "See your family"):
        assert english not in page
