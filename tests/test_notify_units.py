"""The parts of notifications that need no database: calendar files, the words of each message, the
reminder windows, the backoff, building an email, and the SMTP client against a real local server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from openvisit.i18n import format_when, translate
from openvisit.notify.email import SmtpMailer, build_email, mail_domain, message_id_for
from openvisit.notify.errors import DeliveryError
from openvisit.notify.ics import MAX_LINE_OCTETS, CalendarEvent, calendar, escape_text, fold, utc_stamp
from openvisit.notify.messages import VISIT_TEMPLATES, MessageFacts, inbox_line, render
from openvisit.notify.reminders import due_reminder
from openvisit.notify.sms import FileSmsGateway, gateway_from_settings
from openvisit.notify.worker import DeliveryPolicy
from openvisit.settings import Settings
from tests.conftest import TEST_SECRET
from tests.notify_support import calendar_part, free_port, ics_bytes, parse_ics, smtp_server, text_of

START = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
STAMP = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PAYLOAD: dict[str, Any] = {
    "visit_id": 7,
    "kind": "social",
    "mode": "home",
    "starts_at": START.isoformat(),
    "ends_at": (START + timedelta(minutes=30)).isoformat(),
    "facility_timezone": "Asia/Krasnoyarsk",
}
VISITOR = MessageFacts(
    recipient_timezone="Europe/Moscow",
    resident_name="Петров Иван Сергеевич",
    facility_name="ИК-17",
    calendar_uid="visit-7@example.org",
)


def _settings(**changes: Any) -> Settings:
    return Settings(mode="test", secret_key=TEST_SECRET, **changes)  # type: ignore[arg-type]


# --- iCalendar ------------------------------------------------------------------------------------


def test_folding_keeps_lines_short_and_utf8_whole() -> None:
    line = "DESCRIPTION:" + escape_text("Свидание с Петровым Иваном Сергеевичем; ИК-17, Красноярск\n" * 6)
    folded = fold(line)
    physical = folded.split("\r\n")
    assert len(physical) > 5
    for piece in physical:
        assert len(piece.encode("utf-8")) <= MAX_LINE_OCTETS
        piece.encode("utf-8").decode("utf-8")  # never a split multibyte sequence
    assert all(piece.startswith(" ") for piece in physical[1:])
    assert folded.replace("\r\n ", "") == line
    assert fold("SHORT:line") == "SHORT:line"


def test_a_calendar_parses_back_with_its_text_and_utc_times() -> None:
    event = CalendarEvent(
        uid="visit-1@example.org",
        sequence=3,
        starts_at=START,
        ends_at=START + timedelta(minutes=30),
        summary="Visit with Petrov, Ivan; unit 1",
        description="Line one\nLine two, with a comma; and a semicolon \\ backslash",
        location="At the link center: Krasnoyarsk, Lenina 1",
        url="https://visits.example.org/visits",
        organizer_email="no-reply@example.org",
        organizer_name='Open"Visit',
        attendee_email="anna@example.org",
    )
    raw = calendar(event, "REQUEST", STAMP)
    assert raw.endswith("\r\n") and "\n" not in raw.replace("\r\n", "")
    cal, parsed = parse_ics(raw.encode("utf-8"))
    assert str(cal["VERSION"]) == "2.0" and str(cal["METHOD"]) == "REQUEST"
    assert str(parsed["SUMMARY"]) == event.summary
    assert str(parsed["DESCRIPTION"]) == event.description
    assert str(parsed["LOCATION"]) == event.location
    assert parsed.decoded("DTSTART") == START
    assert parsed.decoded("DTSTAMP") == STAMP
    assert "DTSTART:20260304T020000Z\r\n" in raw
    assert int(parsed["SEQUENCE"]) == 3
    assert str(parsed["ORGANIZER"]) == "mailto:no-reply@example.org"
    assert parsed["ORGANIZER"].params["CN"] == "Open'Visit"
    cancel = calendar(event, "CANCEL", STAMP)
    assert "METHOD:CANCEL\r\n" in cancel and "STATUS:CANCELLED\r\n" in cancel
    with pytest.raises(ValueError, match="aware"):
        utc_stamp(datetime(2026, 3, 4, 2, 0))  # noqa: DTZ001 - the naive value under test


# --- the words of each message --------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("template", sorted(VISIT_TEMPLATES))
def test_every_visit_template_renders_whole_in_both_languages(template: str, language: str) -> None:
    payload = {**PAYLOAD, "reason": "lockdown", "note": "<b>Учения</b>"}
    for facts in (VISITOR, MessageFacts()):
        message = render(template, language, payload, facts, base_url="https://v.example.org", stamp=STAMP)
        for text in (message.subject, message.text, message.html, message.short):
            assert text and "%(" not in text
        assert format_when(START, language, "Asia/Krasnoyarsk") in message.text
        assert "<b>Учения</b>" not in message.html and "&lt;b&gt;Учения&lt;/b&gt;" in message.html
        if template in ("visit_cancelled", "visit_rejected"):
            assert translate(language, "Lockdown") in message.text
            assert translate(language, "Lockdown") in message.short
    visitor = render(template, language, payload, VISITOR, base_url="https://v.example.org", stamp=STAMP)
    assert format_when(START, language, "Europe/Moscow") in visitor.subject
    assert "https://v.example.org/visits" in visitor.text


def test_the_resident_at_a_station_reads_only_the_facilitys_time() -> None:
    message = render("visit_booked", "ru", PAYLOAD, MessageFacts(), base_url="https://v.example.org")
    assert "(Красноярск, UTC+7)" in message.subject
    assert "UTC+3" not in message.text and "https://" not in message.text
    assert message.calendar is None
    assert inbox_line("visit_booked", "ru", PAYLOAD) == message.short
    assert inbox_line("visit_booked", "ru", {"starts_at": "yesterday"}) == "visit_booked"


def test_invitations_keep_one_uid_and_a_rising_sequence() -> None:
    def method_and_sequence(template: str, generation: int) -> tuple[str, int] | None:
        facts = MessageFacts(
            recipient_timezone="UTC", calendar_uid="visit-1@x", calendar_generation=generation
        )
        message = render(template, "en", PAYLOAD, facts, base_url="", stamp=STAMP, attendee="a@x")
        if message.calendar is None:
            return None
        _cal, event = parse_ics(message.calendar.encode("utf-8"))
        assert str(event["UID"]) == "visit-1@x"
        assert message.calendar_method is not None
        return message.calendar_method, int(event["SEQUENCE"])

    assert method_and_sequence("visit_booked", 0) == ("REQUEST", 0)
    assert method_and_sequence("visit_approved", 0) == ("REQUEST", 0)
    assert method_and_sequence("visit_cancelled", 0) == ("CANCEL", 1)
    assert method_and_sequence("visit_requested", 0) is None
    assert method_and_sequence("visit_rejected", 0) is None
    # Moved twice: the earlier time was invited with 2, so the move cancels it with 3, invites with 4.
    assert method_and_sequence("visit_requested", 2) == ("CANCEL", 3)
    assert method_and_sequence("visit_booked", 2) == ("REQUEST", 4)
    assert method_and_sequence("visit_cancelled", 2) == ("CANCEL", 5)
    assert method_and_sequence("visit_reminder_24h", 0) is None


def test_account_and_vetting_messages_have_their_words_and_links() -> None:
    confirm = render(
        "confirm_email", "en", {"url": "https://v.example.org/c?t=1"}, MessageFacts(), base_url="x"
    )
    assert confirm.subject == "Confirm your email address"
    assert (
        "https://v.example.org/c?t=1" in confirm.text and 'href="https://v.example.org/c?t=1"' in confirm.html
    )
    rejected = render(
        "link_rejected",
        "en",
        {"resident_name": "Petrov Ivan", "reason": "not_a_relative", "note": "Call us"},
        MessageFacts(recipient_timezone="Europe/Moscow"),
        base_url="https://v.example.org",
    )
    assert rejected.subject == "Your request to visit Petrov Ivan was not approved"
    assert "Reason: The relationship could not be confirmed" in rejected.text
    assert "Note: Call us" in rejected.text
    restricted = render(
        "visitor_restricted",
        "en",
        {
            "kind": "suspension",
            "reason": "Phone on screen",
            "ends_at": (START + timedelta(days=7)).isoformat(),
        },
        MessageFacts(recipient_timezone="Europe/Moscow"),
        base_url="https://v.example.org",
    )
    assert "Until: Mar 11, 2026 05:00 (Moscow, UTC+3)" in restricted.text
    assert "Reason: Phone on screen" in restricted.text
    unknown = render("something_new", "ru", {}, MessageFacts(), base_url="https://v.example.org")
    assert unknown.subject == translate("ru", "News from OpenVisit")
    assert "https://v.example.org/" in unknown.text
    with pytest.raises(ValueError, match="starts_at"):
        render("visit_booked", "en", {}, MessageFacts(), base_url="")


# --- reminders and backoff ------------------------------------------------------------------------


def test_each_reminder_has_its_own_window() -> None:
    assert due_reminder(START, START - timedelta(hours=25)) is None
    assert due_reminder(START, START - timedelta(hours=24)) == "visit_reminder_24h"
    assert due_reminder(START, START - timedelta(minutes=16)) == "visit_reminder_24h"
    assert due_reminder(START, START - timedelta(minutes=15)) == "visit_reminder_15m"
    assert due_reminder(START, START - timedelta(seconds=1)) == "visit_reminder_15m"
    assert due_reminder(START, START) is None


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = DeliveryPolicy.from_settings(
        _settings(delivery_backoff_seconds=60, delivery_backoff_max_seconds=3600)
    )
    waits = [policy.backoff_after(n).total_seconds() / 60 for n in range(1, 10)]
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.backoff_after(10_000) == timedelta(hours=1)


# --- email and SMTP -------------------------------------------------------------------------------


def _email(to: str = "anna@example.org") -> EmailMessage:
    rendered = render(
        "visit_booked", "en", PAYLOAD, VISITOR, base_url="https://v.example.org", stamp=STAMP, attendee=to
    )
    return build_email(
        rendered,
        to=to,
        mail_from="OpenVisit <no-reply@example.org>",
        message_id=message_id_for(42, STAMP, mail_domain("OpenVisit <no-reply@example.org>")),
        date=STAMP,
    )


def test_an_email_is_text_and_html_with_the_invitation_attached() -> None:
    message = _email()
    assert message["Message-ID"] == f"<notification.42.{int(STAMP.timestamp())}@example.org>"
    assert message.get_content_type() == "multipart/mixed"
    alternative = next(p for p in message.walk() if p.get_content_type() == "multipart/alternative")
    assert [p.get_content_type() for p in alternative.iter_parts()] == ["text/plain", "text/html"]
    part = calendar_part(message)
    assert part is not None and part.get_filename() == "visit.ics" and part.get_param("method") == "REQUEST"
    assert ics_bytes(message).startswith(b"BEGIN:VCALENDAR\r\nPRODID:")
    assert mail_domain("nobody") == "openvisit.local"


def test_smtp_login_when_configured_and_clear_errors_when_refused() -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"right", handled=False)

    with smtp_server(authenticator=authenticator, auth_require_tls=False) as server:
        settings = _settings(smtp_port=server.port, smtp_user="relay", smtp_password="right")
        with SmtpMailer(settings) as mailer:
            mailer.send(_email())
            mailer.send(_email("boris@example.org"))
        assert logins == [(b"relay", b"right")], "one login, one connection for the batch"
        [received] = server.mailbox.to("anna@example.org")
        assert "Your visit with Петров Иван Сергеевич is booked." in text_of(received)

        wrong = _settings(smtp_port=server.port, smtp_user="relay", smtp_password="wrong")
        with SmtpMailer(wrong) as mailer, pytest.raises(DeliveryError) as caught:
            mailer.send(_email())
        assert caught.value.connection and not caught.value.permanent

        server.mailbox.refuse.add("ghost@example.org")
        with SmtpMailer(settings) as mailer:
            with pytest.raises(DeliveryError) as caught:
                mailer.send(_email("ghost@example.org"))
            assert caught.value.permanent and "550" in str(caught.value)
            mailer.send(_email("anna@example.org"))  # the connection survives a refused recipient

        tls = _settings(smtp_port=server.port, smtp_starttls=True)
        with SmtpMailer(tls) as mailer, pytest.raises(DeliveryError, match="STARTTLS") as caught:
            mailer.send(_email())
        assert caught.value.connection

    down = _settings(smtp_port=free_port())
    with SmtpMailer(down) as mailer, pytest.raises(DeliveryError, match="cannot connect") as caught:
        mailer.send(_email())
    assert caught.value.connection and not caught.value.permanent


# --- text messages --------------------------------------------------------------------------------


def test_the_file_gateway_appends_one_json_line_per_message(tmp_path: Path) -> None:
    gateway = gateway_from_settings(_settings(sms_gateway="file", var_dir=tmp_path))
    assert isinstance(gateway, FileSmsGateway) and gateway.path == tmp_path / "sms.jsonl"
    gateway.send("+79001234567", "Свидание завтра", message_id="1@x", at=STAMP)
    gateway.send("+79007654321", "Second", message_id="2@x", at=STAMP)
    lines = [json.loads(line) for line in gateway.path.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {"at": STAMP.isoformat(), "id": "1@x", "to": "+79001234567", "text": "Свидание завтра"}
    assert [line["to"] for line in lines] == ["+79001234567", "+79007654321"]
    assert gateway_from_settings(_settings()) is None, "off unless chosen"
    blocked = FileSmsGateway(tmp_path / "sms.jsonl" / "not-a-dir" / "x.jsonl")
    with pytest.raises(DeliveryError, match="cannot write"):
        blocked.send("+7", "x", message_id="3@x", at=STAMP)
