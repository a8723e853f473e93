"""Notifications end to end, on both databases: visits really booked, cancelled and rejected through the
scheduling service, the outbox delivered by the worker to a real SMTP server (aiosmtpd on 127.0.0.1),
and the messages read back: the visitor's language, both zones, a valid .ics; outages, crashes,
reminders, text messages and the station inbox."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openvisit.cli import app as cli_app
from openvisit.db.models import Notification, ResidentAlert, Visitor
from openvisit.domain.enums import (
    ActorKind,
    BlockKind,
    ConnectionStatus,
    NotificationChannel,
    NotificationStatus,
    Role,
    VisitStatus,
)
from openvisit.domain.errors import NotFound
from openvisit.domain.principal import Principal
from openvisit.i18n import format_when, translate
from openvisit.notify import worker
from openvisit.services import delivery, registry, scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from openvisit.settings import Settings
from openvisit.web.app import create_app
from tests.conftest import TEST_SECRET, FrozenClock
from tests.factories import (
    Place,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_staff,
    make_visitor,
    principal_of,
)
from tests.notify_support import (
    SmtpServer,
    calendar_part,
    free_port,
    html_of,
    ics_bytes,
    parse_ics,
    smtp_server,
    text_of,
)

META = RequestMeta(ip="203.0.113.9")
FACILITY_TZ = "Asia/Krasnoyarsk"
WED = date(2026, 3, 4)
THU = date(2026, 3, 5)


def _at(day: date, hh: int, mm: int = 0) -> datetime:
    """A Krasnoyarsk wall time (UTC+7, no DST) as UTC."""
    return datetime.combine(day, time(hh, mm), tzinfo=UTC) - timedelta(hours=7)


@dataclass
class World:
    place: Place
    resident_id: int
    ru_email: str
    ru: Principal
    ru_visitor_id: int
    en_email: str
    en: Principal
    en_visitor_id: int


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as running:
        yield running


def _with(ctx: AppContext, **changes: Any) -> AppContext:
    """The same database and clock under other settings."""
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=changes))


@pytest.fixture
def mailing(ctx: AppContext, server: SmtpServer) -> AppContext:
    return _with(ctx, smtp_port=server.port)


@pytest.fixture
def world(ctx: AppContext) -> World:
    """A Krasnoyarsk colony; a Russian-speaking wife in Moscow and an English-speaking friend in London,
    both approved to visit the same resident."""
    place = make_facility(ctx, tz=FACILITY_TZ)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    ru_email, ru_id = make_visitor(ctx, language="ru", tz="Europe/Moscow")
    en_email, en_id = make_visitor(ctx, language="en", tz="Europe/London")
    connect(ctx, resident_id, ru_id, ConnectionStatus.APPROVED)
    connect(ctx, resident_id, en_id, ConnectionStatus.APPROVED)
    return World(
        place,
        resident_id,
        ru_email,
        principal_of(ctx, ru_email),
        ru_id,
        en_email,
        principal_of(ctx, en_email),
        en_id,
    )


def _book(ctx: AppContext, p: Principal, w: World, starts_at: datetime, **kw: Any) -> scheduling.BookedVisit:
    return scheduling.book_visit(
        ctx, p, BookingRequest(resident_id=w.resident_id, starts_at=starts_at, **kw), META
    )


def _rows(ctx: AppContext, **where: Any) -> list[Notification]:
    with ctx.db.read() as s:
        query = sa.select(Notification).order_by(Notification.id)
        for name, value in where.items():
            query = query.where(getattr(Notification, name) == value)
        return list(s.execute(query).scalars().all())


def _resident_principal(w: World) -> Principal:
    return Principal(kind=ActorKind.RESIDENT, resident_id=w.resident_id, language="ru", timezone=FACILITY_TZ)


# --- the messages themselves ----------------------------------------------------------------------


def test_booking_and_cancellation_reach_each_visitor_in_their_language_with_a_calendar(
    mailing: AppContext, world: World, server: SmtpServer, clock: FrozenClock
) -> None:
    ctx = mailing
    start = _at(WED, 9)
    visit = _book(ctx, world.ru, world, start, visitor_ids=(world.en_visitor_id,)).visit
    report = delivery.deliver_due(ctx)
    assert (report.sent, report.retrying, report.failed) == (3, 0, 0), "two emails and the station message"

    [ru] = server.mailbox.to(world.ru_email)
    [en] = server.mailbox.to(world.en_email)

    # The Russian visitor: Russian words, Russian dates, her own zone (Moscow) and the facility's.
    moscow = format_when(start, "ru", "Europe/Moscow")
    krasnoyarsk = format_when(start, "ru", FACILITY_TZ)
    assert "мар." in moscow and moscow.endswith("05:00 (Москва, UTC+3)")
    assert krasnoyarsk.endswith("09:00 (Красноярск, UTC+7)")
    assert ru["Subject"] == translate("ru", "Visit booked: %(when)s", {"when": moscow})
    assert ru["Content-Language"] == "ru"
    ru_text = text_of(ru)
    assert krasnoyarsk in ru_text
    assert moscow in ru_text
    assert (
        translate("ru", "Your visit with %(resident)s is booked.", {"resident": "Петров Иван Сергеевич"})
        in ru_text
    )
    assert 'lang="ru"' in html_of(ru)

    # The English visitor: English throughout, London time and Krasnoyarsk time.
    assert en["Subject"] == "Visit booked: Mar 4, 2026 02:00 (London, UTC+0)"
    en_text = text_of(en)
    assert "Your visit with Петров Иван Сергеевич is booked." in en_text
    assert "When: Mar 4, 2026 09:00 (Krasnoyarsk, UTC+7)" in en_text
    assert "Your time: Mar 4, 2026 02:00 (London, UTC+0)" in en_text
    assert "From home, in your browser" in en_text
    assert "This visit is monitored and recorded." in en_text
    assert "http://127.0.0.1:8000/visits" in en_text
    assert "Mar 4, 2026 09:00 (Krasnoyarsk, UTC+7)" in html_of(en)
    assert en["Message-ID"] and en["Message-ID"] != ru["Message-ID"]
    assert en["Auto-Submitted"] == "auto-generated"

    # The invitation: valid iCalendar, CRLF, folded, in UTC, METHOD:REQUEST, one UID per visit.
    uids = set()
    for message, address in ((ru, world.ru_email), (en, world.en_email)):
        part = calendar_part(message)
        assert part is not None
        assert part.get_param("method") == "REQUEST"
        raw = ics_bytes(message)
        assert raw.endswith(b"\r\n")
        assert b"\n" not in raw.replace(b"\r\n", b"")
        assert all(len(line) <= 75 for line in raw.split(b"\r\n"))
        calendar, event = parse_ics(raw)
        assert str(calendar["METHOD"]) == "REQUEST"
        assert event.decoded("DTSTART") == visit.starts_at == start
        assert event.decoded("DTEND") == visit.ends_at
        assert event.decoded("DTSTART").tzinfo is not None
        assert int(event["SEQUENCE"]) == 0
        assert str(event["STATUS"]) == "CONFIRMED"
        assert str(event["ATTENDEE"]) == f"mailto:{address}"
        assert str(event["ORGANIZER"]) == "mailto:no-reply@openvisit.local"
        uids.add(str(event["UID"]))
    assert uids == {f"visit-{visit.id}@openvisit.local"}

    # The resident's message needs no SMTP: it is delivered to the station inbox as it is claimed.
    [station] = _rows(ctx, channel=NotificationChannel.STATION)
    assert (station.status, station.sent_at, station.attempts) == (NotificationStatus.SENT, clock(), 1)

    # Cancelled by the visitor: the reason in each language, and a CANCEL for the same UID.
    clock.advance(hours=1)
    scheduling.cancel_visit(ctx, world.ru, visit.id, META)
    assert delivery.deliver_due(ctx).sent == 3
    ru_cancel = server.mailbox.to(world.ru_email)[1]
    en_cancel = server.mailbox.to(world.en_email)[1]
    assert ru_cancel["Subject"] == translate("ru", "Visit cancelled: %(when)s", {"when": moscow})
    assert translate("ru", "Cancelled by the visitor") in text_of(ru_cancel)
    assert en_cancel["Subject"] == "Visit cancelled: Mar 4, 2026 02:00 (London, UTC+0)"
    assert "Reason: Cancelled by the visitor" in text_of(en_cancel)
    for message in (ru_cancel, en_cancel):
        part = calendar_part(message)
        assert part is not None and part.get_param("method") == "CANCEL"
        calendar, event = parse_ics(ics_bytes(message))
        assert str(calendar["METHOD"]) == "CANCEL"
        assert str(event["UID"]) in uids
        assert int(event["SEQUENCE"]) == 1
        assert str(event["STATUS"]) == "CANCELLED"
        assert event.decoded("DTSTART") == start
    assert {r.status for r in _rows(ctx)} == {NotificationStatus.SENT}


def test_rejection_and_lockdown_say_why(mailing: AppContext, world: World, server: SmtpServer) -> None:
    ctx = mailing
    with ctx.db.write() as s:
        s.add(ResidentAlert(resident_id=world.resident_id, note="review every visit"))
    requested = _book(ctx, world.en, world, _at(WED, 9)).visit
    assert requested.status is VisitStatus.REQUESTED
    clerk = principal_of(ctx, make_staff(ctx, Role.VETTING_CLERK, facility_id=world.place.facility_id)[0])
    scheduling.decide_request(
        ctx, clerk, requested.id, META, approve=False, reason="unclear_id", note="Photo blurred"
    )
    with ctx.db.write() as s:
        s.execute(sa.delete(ResidentAlert))
    approved = _book(ctx, world.ru, world, _at(THU, 9)).visit
    scheduler = principal_of(ctx, make_staff(ctx, Role.SCHEDULER, facility_id=world.place.facility_id)[0])
    scheduling.declare_block(
        ctx,
        scheduler,
        world.place.facility_id,
        _at(THU, 0),
        _at(THU, 23),
        META,
        kind=BlockKind.LOCKDOWN,
        reason="Учения",
    )
    assert delivery.deliver_due(ctx).failed == 0

    request_mail, rejection = server.mailbox.to(world.en_email)
    assert request_mail["Subject"].startswith("Visit requested: ")
    assert calendar_part(request_mail) is None, "nothing is certain yet: no invitation"
    assert rejection["Subject"] == "Visit request rejected: Mar 4, 2026 02:00 (London, UTC+0)"
    text = text_of(rejection)
    assert "Your request to visit Петров Иван Сергеевич was not approved." in text
    assert "Reason: Identity document unclear" in text
    assert "Note: Photo blurred" in text
    assert calendar_part(rejection) is None

    booked, lockdown = server.mailbox.to(world.ru_email)
    assert calendar_part(booked) is not None
    assert lockdown["Subject"] == translate(
        "ru", "Visit cancelled: %(when)s", {"when": format_when(approved.starts_at, "ru", "Europe/Moscow")}
    )
    assert translate("ru", "Lockdown") in text_of(lockdown)
    assert "Учения" in text_of(lockdown)
    _calendar, event = parse_ics(ics_bytes(lockdown))
    assert str(event["UID"]) == f"visit-{approved.id}@openvisit.local"

    # The resident's inbox tells the same story, in Russian, in the facility's time.
    inbox = delivery.station_messages(ctx, _resident_principal(world))
    assert len(inbox) == 4
    assert all("(Красноярск, UTC+7)" in m.text for m in inbox)
    assert any(translate("ru", "Identity document unclear") in m.text for m in inbox)


def test_a_rescheduled_visit_updates_the_same_calendar_event(
    mailing: AppContext, world: World, server: SmtpServer
) -> None:
    ctx = mailing
    first = _book(ctx, world.en, world, _at(WED, 9)).visit
    moved = scheduling.reschedule_visit(ctx, world.en, first.id, _at(THU, 10, 10), META).visit
    delivery.deliver_due(ctx)
    original, moved_mail = server.mailbox.to(world.en_email)
    _c, before = parse_ics(ics_bytes(original))
    _c, after = parse_ics(ics_bytes(moved_mail))
    assert str(before["UID"]) == str(after["UID"]) == f"visit-{first.id}@openvisit.local"
    assert int(after["SEQUENCE"]) > int(before["SEQUENCE"])
    assert after.decoded("DTSTART") == moved.starts_at


# --- outages, retries and crashes -----------------------------------------------------------------


def test_an_smtp_outage_backs_off_then_delivers_when_the_server_returns(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    port = free_port()  # nothing listens there: the mail server is down
    down = _with(ctx, smtp_port=port)
    _book(down, world.en, world, _at(WED, 9))
    report = delivery.deliver_due(down)
    assert (report.sent, report.retrying, report.failed) == (1, 1, 0), "the station message needs no SMTP"
    [email] = _rows(ctx, channel=NotificationChannel.EMAIL)
    assert email.status is NotificationStatus.PENDING
    assert email.attempts == 1
    assert email.last_error and "cannot connect" in email.last_error
    assert email.next_attempt_at == clock() + timedelta(minutes=1)

    assert delivery.deliver_due(down).claimed == 0, "not due again before its backoff"
    clock.advance(minutes=1)
    delivery.deliver_due(down)
    [email] = _rows(ctx, channel=NotificationChannel.EMAIL)
    assert (email.attempts, email.next_attempt_at) == (2, clock() + timedelta(minutes=2))

    clock.advance(minutes=2)
    with smtp_server(port) as back:
        report = delivery.deliver_due(down)
        assert report.sent == 1
        assert [m["Subject"] for m in back.mailbox.to(world.en_email)] == [
            "Visit booked: Mar 4, 2026 02:00 (London, UTC+0)"
        ]
    [email] = _rows(ctx, channel=NotificationChannel.EMAIL)
    assert (email.status, email.attempts, email.sent_at, email.last_error) == (
        NotificationStatus.SENT,
        3,
        clock(),
        None,
    )


def test_after_the_last_attempt_a_message_is_marked_failed(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    down = _with(ctx, smtp_port=free_port(), delivery_max_attempts=3)
    _book(down, world.en, world, _at(WED, 9))
    waits = []
    for _ in range(3):
        delivery.deliver_due(down)
        [email] = _rows(ctx, channel=NotificationChannel.EMAIL)
        waits.append(email.next_attempt_at - clock())
        clock.advance(hours=2)
    assert email.status is NotificationStatus.FAILED
    assert email.attempts == 3
    assert email.last_error and "cannot connect" in email.last_error
    assert waits[:2] == [timedelta(minutes=1), timedelta(minutes=2)]
    assert delivery.deliver_due(down).claimed == 0, "a failed message is not tried again"


def test_a_worker_that_claimed_and_vanished_loses_nothing(
    mailing: AppContext, world: World, server: SmtpServer, clock: FrozenClock
) -> None:
    ctx = mailing
    _book(ctx, world.en, world, _at(WED, 9))
    policy = worker.DeliveryPolicy.from_settings(ctx.settings)
    claims, _ = worker.claim_due(ctx.db, clock(), policy, mail_from=ctx.settings.mail_from)
    assert [c.channel for c in claims] == [NotificationChannel.EMAIL]
    # That worker never sends nor records anything. While its lease lasts, nobody else takes the row...
    assert delivery.deliver_due(ctx).claimed == 0
    assert server.mailbox.received() == []
    # ...and once it has run out, the next worker delivers it.
    clock.advance(seconds=ctx.settings.delivery_lease_seconds)
    assert delivery.deliver_due(ctx).sent == 1
    assert len(server.mailbox.to(world.en_email)) == 1
    [email] = _rows(ctx, channel=NotificationChannel.EMAIL)
    assert (email.status, email.attempts) == (NotificationStatus.SENT, 2)


_WORKER = """
import sys
from datetime import datetime
from openvisit.db.database import Database
from openvisit.notify.worker import deliver
from openvisit.settings import Settings
from openvisit.web.app import create_app

settings = Settings()
at = datetime.fromisoformat(sys.argv[1])
deliver(Database.from_url(settings.database_url), settings, lambda: at)
"""


def test_killing_the_worker_mid_delivery_loses_no_message(
    mailing: AppContext, world: World, server: SmtpServer, clock: FrozenClock, tmp_path: Path
) -> None:
    ctx = mailing
    _book(ctx, world.en, world, _at(WED, 9))
    _book(ctx, world.en, world, _at(THU, 9))
    server.mailbox.stall_next = True
    env = {
        **os.environ,
        "OPENVISIT_MODE": "test",
        "OPENVISIT_SECRET_KEY": TEST_SECRET,
        "OPENVISIT_DATABASE_URL": ctx.settings.database_url,
        "OPENVISIT_VAR_DIR": str(tmp_path / "var"),
        "OPENVISIT_SMTP_PORT": str(server.port),
    }
    process = subprocess.Popen(  # noqa: S603 - our own interpreter running our own code
        [sys.executable, "-c", _WORKER, clock().isoformat()], env=env
    )
    try:
        # The worker has claimed both emails and is in the middle of sending the first one...
        assert server.mailbox.data_started.wait(timeout=60), "the worker never reached the SMTP server"
    finally:
        process.kill()  # SIGKILL: no cleanup, no exception handler, nothing recorded
        process.wait(timeout=30)
    assert process.returncode == -9
    emails = _rows(ctx, channel=NotificationChannel.EMAIL)
    assert [(e.status, e.attempts) for e in emails] == [(NotificationStatus.PENDING, 1)] * 2
    assert server.mailbox.received() == [], "the message caught mid-delivery was never accepted"

    server.mailbox.release.set()
    clock.advance(seconds=ctx.settings.delivery_lease_seconds)
    assert delivery.deliver_due(ctx).sent == 2
    subjects = sorted(m["Subject"] for m in server.mailbox.to(world.en_email))
    assert subjects == [
        "Visit booked: Mar 4, 2026 02:00 (London, UTC+0)",
        "Visit booked: Mar 5, 2026 02:00 (London, UTC+0)",
    ]
    assert {e.status for e in _rows(ctx, channel=NotificationChannel.EMAIL)} == {NotificationStatus.SENT}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_workers_skip_the_rows_another_is_claiming(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    """PostgreSQL only: SQLite has one writer at a time, so its claims never overlap to begin with."""
    _book(ctx, world.en, world, _at(WED, 9))
    _book(ctx, world.en, world, _at(THU, 9))
    policy = worker.DeliveryPolicy.from_settings(ctx.settings)
    with ctx.db.write() as other:
        # Another worker is in the middle of its claim and holds the first email's row lock.
        held = other.execute(
            sa.select(Notification.id)
            .where(Notification.channel == NotificationChannel.EMAIL)
            .order_by(Notification.id)
            .limit(1)
            .with_for_update()
        ).scalar_one()
        claims, report = worker.claim_due(ctx.db, clock(), policy, mail_from=ctx.settings.mail_from)
    assert held not in {c.id for c in claims}, "SKIP LOCKED: not waited for, not taken twice"
    assert len(claims) == 1 and report.sent == 2, "the other email; both station messages delivered"


# --- reminders ------------------------------------------------------------------------------------


def test_reminders_a_day_and_a_quarter_hour_before_each_written_once(
    mailing: AppContext, world: World, server: SmtpServer, clock: FrozenClock
) -> None:
    ctx = mailing
    start = _at(WED, 9)
    visit = _book(ctx, world.en, world, start).visit
    gone = _book(ctx, world.ru, world, _at(WED, 12, 30)).visit
    scheduling.cancel_visit(ctx, world.ru, gone.id, META)
    delivery.deliver_due(ctx)

    def reminders() -> list[tuple[str, int | None, int | None, int | None]]:
        return [
            (r.template, r.visit_id, r.user_id, r.resident_id)
            for r in _rows(ctx)
            if r.template.startswith("visit_reminder") and r.channel is not NotificationChannel.SMS
        ]

    assert delivery.enqueue_reminders(ctx) == 0, "more than a day ahead"
    clock.now = start - timedelta(hours=24)
    assert delivery.enqueue_reminders(ctx) == 2, "the visitor (email) and the resident (station)"
    assert delivery.enqueue_reminders(ctx) == 0
    clock.now = start - timedelta(minutes=16)
    assert delivery.enqueue_reminders(ctx) == 0
    clock.now = start - timedelta(minutes=15)
    assert delivery.enqueue_reminders(ctx) == 2
    assert delivery.enqueue_reminders(ctx) == 0
    assert sorted(t for t, *_ in reminders()) == ["visit_reminder_15m"] * 2 + ["visit_reminder_24h"] * 2
    assert {v for _t, v, *_ in reminders()} == {visit.id}, "none for the cancelled visit"

    delivery.deliver_due(ctx)
    subjects = [m["Subject"] for m in server.mailbox.to(world.en_email)]
    assert subjects == [
        "Visit booked: Mar 4, 2026 02:00 (London, UTC+0)",
        "Reminder: visit on Mar 4, 2026 02:00 (London, UTC+0)",
        "Your visit starts soon: Mar 4, 2026 02:00 (London, UTC+0)",
    ]
    soon = text_of(server.mailbox.to(world.en_email)[-1])
    assert "You can join from 10 minutes before the start." in soon
    assert calendar_part(server.mailbox.to(world.en_email)[-1]) is None


def test_reminders_written_by_two_workers_at_once_are_written_once(
    ctx: AppContext, world: World, clock: FrozenClock
) -> None:
    start = _at(WED, 9)
    _book(ctx, world.en, world, start, visitor_ids=(world.ru_visitor_id,))
    clock.now = start - timedelta(hours=3)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def run() -> None:
        barrier.wait()
        counts.append(delivery.enqueue_reminders(ctx))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == [0, 0, 0, 3], "two visitors and the resident, once"
    assert len(_rows(ctx, template="visit_reminder_24h")) == 3


def test_a_reminder_for_a_visit_cancelled_meanwhile_is_not_sent(
    mailing: AppContext, world: World, server: SmtpServer, clock: FrozenClock
) -> None:
    ctx = mailing
    start = _at(WED, 9)
    visit = _book(ctx, world.en, world, start).visit
    clock.now = start - timedelta(hours=2)
    assert delivery.enqueue_reminders(ctx) == 2
    scheduling.cancel_visit(ctx, world.en, visit.id, META)
    delivery.deliver_due(ctx)
    subjects = [m["Subject"] for m in server.mailbox.to(world.en_email)]
    assert [s.split(":")[0] for s in subjects] == ["Visit booked", "Visit cancelled"]
    dropped = [r for r in _rows(ctx) if r.template == "visit_reminder_24h"]
    assert {(r.status, r.last_error) for r in dropped} == {
        (NotificationStatus.FAILED, "not sent: the visit no longer takes place")
    }


# --- text messages and the station inbox ----------------------------------------------------------


def test_text_messages_go_through_the_file_gateway_once(
    mailing: AppContext, world: World, server: SmtpServer, tmp_path: Path
) -> None:
    sms_file = tmp_path / "sms.jsonl"
    ctx = _with(mailing, sms_gateway="file", sms_file=sms_file)
    with ctx.db.write() as s:
        s.execute(sa.update(Visitor).where(Visitor.id == world.ru_visitor_id).values(phone="+79001234567"))
    _book(ctx, world.ru, world, _at(WED, 9), visitor_ids=(world.en_visitor_id,))
    report = delivery.deliver_due(ctx)
    assert (report.sent, report.failed) == (4, 0), "two emails, one text message, one station message"
    delivery.deliver_due(ctx)
    [line] = sms_file.read_text(encoding="utf-8").splitlines()
    sms = json.loads(line)
    assert sms["to"] == "+79001234567"
    moscow = format_when(_at(WED, 9), "ru", "Europe/Moscow")
    assert sms["text"] == "OpenVisit: " + translate("ru", "Visit booked: %(when)s", {"when": moscow})
    [row] = _rows(ctx, channel=NotificationChannel.SMS)
    assert (row.status, row.address, row.template) == (
        NotificationStatus.SENT,
        "+79001234567",
        "visit_booked",
    )
    assert len(server.mailbox.received()) == 2


def test_the_station_inbox_shows_delivered_messages_and_marks_them_read(
    mailing: AppContext, world: World, clock: FrozenClock
) -> None:
    ctx = mailing
    visit = _book(ctx, world.en, world, _at(WED, 9)).visit
    me = _resident_principal(world)
    assert delivery.station_messages(ctx, me) == [], "not delivered yet"
    delivery.deliver_due(ctx)
    [message] = delivery.station_messages(ctx, me)
    when = format_when(visit.starts_at, "ru", FACILITY_TZ)
    assert message.text == translate("ru", "Visit booked: %(when)s", {"when": when})
    assert (message.visit_id, message.read, message.at) == (visit.id, False, clock())

    someone_else = dataclasses.replace(me, resident_id=world.resident_id + 1000)
    assert delivery.station_messages(ctx, someone_else) == []
    with pytest.raises(NotFound):
        delivery.mark_read(ctx, someone_else, [message.id])
    with pytest.raises(NotFound):
        delivery.mark_read(ctx, world.en, [message.id])
    assert delivery.mark_read(ctx, me, [message.id]) == 1
    assert delivery.mark_read(ctx, me) == 0
    assert delivery.station_messages(ctx, me)[0].read


def test_account_messages_carry_their_link(mailing: AppContext, world: World, server: SmtpServer) -> None:
    registry.request_password_reset(mailing, world.ru_email, META)
    assert delivery.deliver_due(mailing).sent == 1
    [mail] = server.mailbox.to(world.ru_email)
    assert mail["Subject"] == translate("ru", "Reset your OpenVisit password")
    [row] = _rows(mailing, template="password_reset")
    assert str(row.payload["url"]) in text_of(mail)
    assert calendar_part(mail) is None


def test_openvisit_worker_once_delivers_from_the_command_line(
    ctx: AppContext, world: World, server: SmtpServer, tmp_path: Path
) -> None:
    _book(ctx, world.en, world, _at(WED, 9))
    env = {
        "OPENVISIT_MODE": "test",
        "OPENVISIT_SECRET_KEY": TEST_SECRET,
        "OPENVISIT_DATABASE_URL": ctx.settings.database_url,
        "OPENVISIT_VAR_DIR": str(tmp_path / "var"),
        "OPENVISIT_SMTP_PORT": str(server.port),
    }
    result = CliRunner().invoke(cli_app, ["worker", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "2 sent, 0 to retry, 0 failed" in result.output
    assert len(server.mailbox.to(world.en_email)) == 1


def test_the_server_delivers_on_its_timer(mailing: AppContext, world: World, server: SmtpServer) -> None:
    ctx = _with(mailing, delivery_seconds=1)
    _book(ctx, world.en, world, _at(WED, 9))
    with TestClient(create_app(ctx.settings, ctx=ctx)):
        # The timer runs in the app's event loop; this only waits for it, bounded.
        for _ in range(200):
            if server.mailbox.to(world.en_email):
                break
            threading.Event().wait(0.05)
    assert [m["Subject"] for m in server.mailbox.to(world.en_email)] == [
        "Visit booked: Mar 4, 2026 02:00 (London, UTC+0)"
    ]


def test_settings_refuse_a_lease_shorter_than_two_smtp_timeouts() -> None:
    with pytest.raises(ValueError, match="LEASE"):
        Settings(mode="test", secret_key=TEST_SECRET, smtp_timeout_seconds=60, delivery_lease_seconds=100)  # type: ignore[arg-type]
