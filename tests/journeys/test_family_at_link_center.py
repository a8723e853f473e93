"""Journey 2, a family at a link center, in Russian: a mother books a visit at the Krasnoyarsk link center
for tomorrow; the next day the operator checks her ID in person and checks the party in, the booth
starts the visit and connects to her son's station; the visit ends at its scheduled time."""

from __future__ import annotations

from datetime import timedelta

from playwright.sync_api import expect

from openvisit.domain.enums import VisitMode, VisitStatus
from openvisit.services.demo import demo_pin
from tests.journeys.support import Journey, id_in, join, ru, wait_hearing, wait_picture

MOTHER = "olga.kuznetsova@example.org"
"""A demo visitor in Krasnoyarsk who reads OpenVisit in Russian."""
SON = "A-100002"


def test_a_family_at_a_link_center(people: Journey) -> None:
    son = people.resident(SON)

    # --- she books a visit at the link center, in Russian -------------------------------------------
    mother = people.open("visitor", locale="ru-RU")
    people.login(mother, MOTHER)
    expect(mother.locator("html")).to_have_attribute("lang", "ru")
    menu = mother.get_by_role("navigation", name=ru("Main"))
    menu.get_by_role("link", name=ru("Book a visit")).click()
    mother.get_by_label(ru("At a link center")).check()
    mother.get_by_label(ru("Link center (if you join from one)")).select_option(
        label="Krasnoyarsk · Krasnoyarsk Link Center"
    )
    mother.get_by_role("button", name=ru("Show free times")).click()
    expect(mother.locator("#times-legend")).to_contain_text(
        ru("Times are in the facility's time (%(zone)s).")[:20]
    )
    mother.locator("button.time").first.click()
    expect(mother.get_by_role("heading", name=ru("Confirm your visit"))).to_be_visible()
    expect(mother.locator("dl.facts")).to_contain_text(f"{son.last_name} {son.first_name}")
    expect(mother.locator("dl.facts")).to_contain_text("Krasnoyarsk Link Center")
    mother.get_by_role("button", name=ru("Confirm the visit")).click()
    expect(mother.get_by_role("status")).to_have_text(ru("Your visit is booked."))
    # Her visit going on now at the link center can no longer be moved; the new one can.
    visit = people.visit(id_in(mother.get_by_role("link", name=ru("Reschedule"))))
    assert (visit.mode, visit.status) == (VisitMode.LINK_CENTER, VisitStatus.APPROVED)
    people.mail(MOTHER, ru("Visit booked: %(when)s")[:10])

    # --- the next day, at the link center: the operator checks her ID and checks the party in -------
    people.clock.move_to(visit.starts_at - timedelta(minutes=2))
    operator = people.open("operator")
    people.staff_login(operator, "operator@example.org")
    operator.get_by_role("navigation", name="Main").get_by_role("link", name="Check-in").click()
    card = operator.locator(f"#visit-{visit.id}")
    expect(card).to_contain_text("Кузнецова Ольга")
    expect(card).to_contain_text("1968-12-02")
    # Checking the party in without saying the ID was checked is refused, beside the box.
    card.get_by_role("button", name="Check the party in").click()
    expect(operator.locator("input[name=id_checked]:invalid")).to_have_count(1)
    card.get_by_label("I have checked the ID of every adult in person.").check()
    card.get_by_role("button", name="Check the party in").click()
    expect(operator.get_by_role("status")).to_have_text(
        "The party is checked in. The booth can start the visit."
    )
    expect(operator.locator(f"#visit-{visit.id}")).to_contain_text("Checked in")

    # --- the booth starts the visit, the son joins at his station -------------------------------------
    operator.get_by_role("link", name="Booths", exact=True).first.click()
    booth_name = people.station_name(visit.booth_station_id)
    operator.get_by_role("link", name=booth_name).click()
    operator.get_by_role("link", name="Start the visit").click()
    join(operator)

    station = people.open("station")
    people.station(station, people.station_code(visit.station_id), SON, demo_pin(SON))
    station.get_by_role("link", name=ru("Join the visit")).click()
    expect(station.locator("#privacy-notice")).to_contain_text(ru("This visit is monitored and recorded"))
    join(station)
    wait_picture(operator)
    wait_picture(station)
    wait_hearing(station)
    wait_hearing(operator)
    expect(station.locator("#remote figcaption")).to_have_text("Ольга Кузнецова")
    assert people.visit(visit.id).status is VisitStatus.IN_PROGRESS

    # --- it ends at the scheduled time ----------------------------------------------------------------
    people.clock.move_to(visit.ends_at)
    for page in (operator, station):
        expect(page.locator("#ended")).to_be_visible()
        expect(page.locator("#ended")).to_have_attribute("data-outcome", "completed")
    expect(station.locator("#ended-title")).to_have_text(ru("The visit has ended."))
    assert people.visit(visit.id).status is VisitStatus.COMPLETED
    operator.get_by_role("link", name="Back to my visits").click()
    expect(operator.get_by_role("heading", name="Today in this booth")).to_be_visible()
    expect(operator.locator(f"#booth-visit-{visit.id}").locator("xpath=..")).to_contain_text("Completed")
