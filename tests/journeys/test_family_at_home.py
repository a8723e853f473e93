"""Journey 1, a family at home: a sister registers, confirms her address from the email, uploads her ID
and a selfie, asks to be linked to her brother; a clerk approves; she books a visit for next week (by
keyboard), seeing the times in the colony's zone and her own, and receives the confirmation with its
calendar invitation; a week later she joins in the window, sees and hears her brother at his station,
the countdown runs to the scheduled end, and the visit is in her history."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect

from openvisit.domain.enums import VisitStatus
from openvisit.services.demo import demo_pin
from tests.journeys.support import (
    COLONY_TZ,
    Journey,
    id_in,
    join,
    photo,
    ru,
    tab_to,
    wait_hearing,
    wait_picture,
)
from tests.notify_support import ics_bytes, parse_ics

EMAIL = "ekaterina.orlova@example.net"
PASSWORD = "a long walk to the colony"
BROTHER = "A-100009"
"""A demo resident in unit 1 whom nobody visits yet."""


def test_a_family_at_home(people: Journey, tmp_path: Path) -> None:
    brother = people.resident(BROTHER)

    # --- she registers, in English, in Moscow time ----------------------------------------------
    sister = people.open("visitor")
    sister.goto("/")
    sister.get_by_role("link", name="Register").first.click()
    sister.get_by_label("A family member or friend").check()
    sister.get_by_label("Email").fill(EMAIL)
    sister.get_by_label("Password").fill(PASSWORD)
    sister.get_by_label("Last name").fill("Orlova")
    sister.get_by_label("First name").fill("Ekaterina")
    sister.get_by_label("Date of birth").fill("1990-04-02")
    sister.get_by_label("Your time zone").select_option("Europe/Moscow")
    sister.get_by_role("button", name="Register").click()
    expect(sister.get_by_role("heading", level=1)).to_contain_text("email")

    # --- the confirmation link comes by email -----------------------------------------------------
    confirm = people.mail(EMAIL, "Confirm your email address")
    sister.goto(people.link_in(confirm, "/register/confirm"))
    expect(sister.get_by_role("heading", name="Your email address is confirmed")).to_be_visible()
    sister.get_by_role("main").get_by_role("link", name="Log in").click()
    sister.get_by_label("Email").fill(EMAIL)
    sister.get_by_label("Password").fill(PASSWORD)
    sister.get_by_role("button", name="Log in").click()
    expect(sister).to_have_url(re.compile(r"/me$"))

    # --- her identity document and a selfie ------------------------------------------------------
    for kind, label in (("id_front", "passport"), ("selfie", "selfie")):
        picture = tmp_path / f"{kind}.jpg"
        picture.write_bytes(photo(f"Orlova Ekaterina {label}"))
        sister.get_by_label("What the photo shows").select_option(kind)
        sister.get_by_label("Photo", exact=True).set_input_files(picture)
        sister.get_by_role("button", name="Upload").click()
        expect(sister.get_by_role("status")).to_contain_text("The photo is uploaded")
    expect(sister.locator(".thumbs img")).to_have_count(2)

    # --- she asks to visit her brother, from her home page ------------------------------------------
    sister.get_by_role("link", name="OpenVisit").click()
    expect(sister.get_by_text("You are not linked to anyone yet.")).to_be_visible()
    sister.get_by_role("main").get_by_role("link", name="Ask to visit someone").click()
    sister.get_by_label("Facility").select_option(label="Penal Colony No. 17 · Krasnoyarsk")
    sister.get_by_label("Their number").fill(BROTHER)
    sister.get_by_label("Their last name").fill(brother.last_name)
    sister.get_by_label("Their date of birth").fill(brother.birth_date.isoformat())
    sister.get_by_label("How the visitor is related to them").select_option("sibling")
    sister.get_by_role("button", name="Send the request").click()
    expect(sister.get_by_role("status")).to_contain_text("Your request is sent")
    expect(sister.locator(".tag.status-requested")).to_be_visible()

    # --- a clerk approves ---------------------------------------------------------------------------
    clerk = people.open("clerk")
    people.staff_login(clerk, "clerk@example.org")
    clerk.get_by_role("link", name="Link requests").click()
    card = clerk.locator(".link-card").filter(has_text="Orlova Ekaterina")
    expect(card.locator(".thumbs img")).to_have_count(2)
    card.get_by_role("button", name="Approve").click()
    expect(clerk.get_by_role("status")).to_be_visible()
    people.mail(EMAIL, f"You may now visit {brother.last_name}")

    # --- she books a visit next week, by keyboard, seeing both zones ------------------------------
    sister.goto("/visits")
    sister.get_by_role("navigation", name="Main").get_by_role("link", name="Book a visit").click()
    legend = sister.locator("#times-legend")
    expect(legend).to_contain_text("Krasnoyarsk")
    expect(legend).to_contain_text("Moscow")
    first_time = sister.locator("button.time").first
    expect(first_time.locator(".time-here")).to_have_text("09:00")
    expect(first_time.locator(".time-yours")).to_have_text("05:00")
    sister.get_by_role("link", name="Later days").click()
    day = sister.locator("section.day").filter(has=sister.locator("button.time")).first
    day_heading = day.get_by_role("heading").inner_text()
    choice = day.locator("button.time").first
    starts_at = choice.get_attribute("value")
    assert starts_at is not None
    # Keyboard only, from the top of the page: Tab to the time, Enter; Tab to Confirm, Enter.
    sister.locator("body").focus()
    tab_to(sister, choice)
    sister.keyboard.press("Enter")
    expect(sister.get_by_role("heading", name="Confirm your visit")).to_be_visible()
    expect(sister.get_by_text("This visit is monitored and recorded.")).to_be_visible()
    tab_to(sister, sister.get_by_role("button", name="Confirm the visit"))
    sister.keyboard.press("Enter")
    expect(sister.get_by_role("status")).to_have_text("Your visit is booked.")
    upcoming = sister.locator(".visit").first
    expect(upcoming).to_contain_text(brother.last_name)
    visit_id = id_in(upcoming.get_by_role("link", name="Reschedule"))
    visit = people.visit(visit_id)
    assert visit.status is VisitStatus.APPROVED
    assert visit.starts_at == datetime.fromisoformat(starts_at)
    assert visit.starts_at - people.clock() >= timedelta(days=7), day_heading

    # --- the confirmation, with its calendar invitation -------------------------------------------
    booked = people.mail(EMAIL, "Visit booked")
    _, event = parse_ics(ics_bytes(booked))
    assert event.decoded("dtstart") == visit.starts_at
    assert event.decoded("dtend") == visit.ends_at
    assert brother.last_name in str(event.get("summary"))

    # --- a week later, in the window, both join -------------------------------------------------------
    people.clock.move_to(visit.starts_at + timedelta(minutes=1))
    station = people.open("station")
    people.station(station, people.station_code(visit.station_id), BROTHER, demo_pin(BROTHER))
    # The station speaks the resident's language (Russian), and says the visit is today.
    expect(station.locator("html")).to_have_attribute("lang", "ru")
    station.get_by_role("link", name=ru("Join the visit")).click()
    join(station)

    sister = people.open("visitor again")
    people.login(sister, EMAIL, PASSWORD)
    sister.get_by_role("navigation", name="Main").get_by_role("link", name="My visits").click()
    sister.get_by_role("link", name="Join the visit").click()
    expect(sister.locator("#privacy-notice")).to_contain_text("This visit is monitored and recorded")
    join(sister)
    wait_picture(sister)
    wait_picture(station)
    wait_hearing(sister)
    wait_hearing(station)
    expect(sister.locator("#remote figcaption")).to_contain_text(brother.last_name)
    expect(sister.get_by_role("timer")).to_contain_text(re.compile(r"Time left: 2\d:\d\d"))

    # --- the countdown warns at one minute and the visit ends on time ----------------------------
    people.clock.move_to(visit.ends_at - timedelta(seconds=65))
    for page in (sister, station):
        expect(page.locator("#time-notice")).to_be_visible()
    expect(sister.locator("#time-notice")).to_contain_text("1 minute left")
    people.clock.move_to(visit.ends_at)
    for page in (sister, station):
        expect(page.locator("#ended")).to_be_visible()
        expect(page.locator("#ended")).to_have_attribute("data-outcome", "completed")
    expect(sister.locator("#ended-title")).to_have_text("The visit has ended.")
    assert people.visit(visit_id).status is VisitStatus.COMPLETED

    # --- it is in her history -----------------------------------------------------------------------
    sister.get_by_role("link", name="Back to my visits").click()
    past = sister.get_by_role("region", name="Past and cancelled")
    row = past.get_by_role("row").filter(has_text=brother.last_name)
    expect(row).to_contain_text("Completed")
    local = visit.starts_at.astimezone(COLONY_TZ).strftime("%H:%M")
    expect(row).to_contain_text(local)
