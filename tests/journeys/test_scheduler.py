"""Journey 5, a scheduler: she moves the end of a session, blocks a day for a holiday, and declares a
lockdown of unit 1 for next Monday. The visit booked in that unit then is cancelled with the reason; the
visitor is emailed (the calendar invitation withdrawn) in her language, and the resident's station inbox
says so in his."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from openvisit.db.models import Resident, Visit
from openvisit.domain.enums import VisitStatus
from openvisit.services.demo import demo_pin
from tests.journeys.support import COLONY_TZ, Journey, local_day, ru
from tests.notify_support import ics_bytes, parse_ics

WIFE = "maria.smirnova@example.org"
HUSBAND = "A-100001"
LOCKDOWN_REASON = "Search of the unit"


def test_a_scheduler(people: Journey) -> None:
    monday = local_day(people.clock())
    next_monday = monday + timedelta(days=7)
    planned = _visit_on(people, next_monday)
    assert planned.status is VisitStatus.APPROVED
    mails_before = len(people.mailbox.to(WIFE))

    scheduler = people.open("scheduler")
    people.staff_login(scheduler, "scheduler@example.org")
    menu = scheduler.get_by_role("navigation", name="Main")

    # --- a session of unit 2 ends half an hour earlier ---------------------------------------------
    menu.get_by_role("link", name="Templates").click()
    row = scheduler.get_by_role("row").filter(has_text="Unit 2 kiosks").filter(has_text="Wednesday")
    row = row.filter(has_text="15:00–18:00")
    row.get_by_role("link", name="Edit").click()
    expect(scheduler.get_by_role("heading", name="Edit session template")).to_be_visible()
    scheduler.get_by_label("Until").fill("17:30")
    scheduler.get_by_role("button", name="Save").click()
    expect(scheduler.get_by_role("status")).to_have_text(
        "The session template is saved. Visits already booked keep their times."
    )
    edited = scheduler.get_by_role("row").filter(has_text="Unit 2 kiosks").filter(has_text="Wednesday")
    expect(edited.filter(has_text="15:00–17:30")).to_have_count(1)

    # --- a holiday: no visits at all on Wednesday next week -------------------------------------------
    holiday = monday + timedelta(days=9)
    menu.get_by_role("link", name="Blocks").click()
    _stop_visits(scheduler, "blocked", holiday, holiday + timedelta(days=1), "Public holiday")
    expect(scheduler.get_by_role("status")).to_contain_text("0 visits were cancelled")

    # --- a lockdown of unit 1 next Monday ----------------------------------------------------------------
    _stop_visits(
        scheduler, "lockdown", next_monday, next_monday + timedelta(days=1), LOCKDOWN_REASON, unit="Unit 1"
    )
    expect(scheduler.get_by_role("status")).to_contain_text("1 visit was cancelled")
    current = scheduler.get_by_role("region", name="Now and coming")
    expect(current.get_by_role("row").filter(has_text=LOCKDOWN_REASON)).to_contain_text("Unit 1")
    expect(current.get_by_role("row").filter(has_text="Public holiday")).to_contain_text("The whole facility")
    cancelled = people.visit(planned.id)
    assert cancelled.status is VisitStatus.CANCELLED

    # --- the visitor is emailed, in Russian, and her calendar loses the visit --------------------------
    mail = people.mail(WIFE, ru("Visit cancelled: %(when)s").split(":")[0], after=mails_before)
    calendar, event = parse_ics(ics_bytes(mail))
    assert str(calendar.get("method")) == "CANCEL"
    assert event.decoded("dtstart") == planned.starts_at
    text = mail.get_body(preferencelist=("plain",))
    assert text is not None and LOCKDOWN_REASON in text.get_content()

    # --- the resident's station inbox says so, in his language -------------------------------------------
    station = people.open("station")
    people.station(station, "IK17-U1-K2", HUSBAND, demo_pin(HUSBAND))
    messages = station.get_by_role("heading", name=ru("Messages")).locator("xpath=..")
    news = messages.get_by_role("listitem").filter(has_text=ru("Visit cancelled: %(when)s").split(":")[0])
    expect(news).to_contain_text(ru("Lockdown"))
    expect(news).to_contain_text("09:35")
    expect(news.locator("strong")).to_have_text(ru("New") + ":")
    station.get_by_role("button", name=ru("Mark all as read")).click()
    expect(messages.locator(".unread")).to_have_count(0)


def _stop_visits(
    page: Page, kind: str, first: date, last: date, reason: str, *, unit: str | None = None
) -> None:
    form = page.locator("form[action='/staff/blocks']")
    form.locator(f"input[name=kind][value={kind}]").check()
    form.get_by_role("group", name="From").get_by_label("Date").fill(str(first))
    form.get_by_role("group", name="From").get_by_label("Time").fill("00:00")
    form.get_by_role("group", name="Until").get_by_label("Date").fill(str(last))
    form.get_by_role("group", name="Until").get_by_label("Time").fill("00:00")
    if unit:
        form.get_by_label("Housing unit").select_option(label=unit)
    form.get_by_label("Reason (visitors and residents are told)").fill(reason)
    form.get_by_role("button", name="Stop visits").click()


def _visit_on(people: Journey, day: date) -> Visit:
    """The demo's visit of the wife and her husband on `day` (booked before the journey)."""
    start = datetime.combine(day, time(0), COLONY_TZ)
    with people.ctx.db.read() as s:
        return (
            s.execute(
                sa.select(Visit)
                .join(Resident, Resident.id == Visit.resident_id)
                .where(
                    Resident.number == HUSBAND,
                    Visit.starts_at >= start,
                    Visit.starts_at < start + timedelta(days=1),
                )
            )
            .scalars()
            .one()
        )
