"""Journey 4, a monitoring officer: two of the demo's visits are live (a mother at the Krasnoyarsk link
center with her son at his station; a wife at home in Moscow, whose husband has not come to his station
yet). The officer watches the first on the wall, opens its sound and warns both sides; then ends the
second for the visitor's conduct. The wife sees why, and the suspension rule applies: her profile shows a
week's suspension and a booking in that week is refused."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import Page, expect

from openvisit.domain.enums import VisitStatus
from openvisit.services.demo import demo_pin
from tests.browser.conftest import wait_decoding
from tests.journeys.support import Journey, join, local_day, ru, wait_hearing, wait_picture

WARNING = "Please keep the phone away from the screen."


def test_an_officer(people: Journey) -> None:
    at_center = people.live_visit_of("A-100002")
    at_home = people.live_visit_of("A-100001")
    people.clock.reach(at_home.starts_at + timedelta(minutes=2))

    # --- both visits going on: the booth and a station, a home and a station -----------------------
    operator = people.open("operator")
    people.staff_login(operator, "operator@example.org")
    operator.goto("/staff/checkin")
    card = operator.locator(f"#visit-{at_center.id}")
    card.get_by_label("I have checked the ID of every adult in person.").check()
    card.get_by_role("button", name="Check the party in").click()
    operator.goto(f"/staff/booth/visits/{at_center.id}")
    join(operator)
    son = _station(people, at_center.station_id, "A-100002", at_center.id)

    wife = people.open("visitor", locale="ru-RU")
    people.login(wife, "maria.smirnova@example.org")
    wife.get_by_role("navigation", name=ru("Main")).get_by_role("link", name=ru("My visits")).click()
    wife.get_by_role("link", name=ru("Join the visit")).click()
    join(wife)
    for page in (operator, son):
        wait_picture(page)

    # --- the officer watches the link-center visit and opens its sound ------------------------------
    officer = people.open("officer")
    people.staff_login(officer, "monitor@example.org")
    officer.get_by_role("navigation", name="Main").get_by_role("link", name="Monitoring").click()
    tile = officer.locator(f'[data-visit-id="{at_center.id}"]')
    expect(tile.get_by_role("heading")).to_contain_text("Кузнецов")
    tile.get_by_role("button", name="Watch").click()
    wait_picture(officer, f'[data-visit-id="{at_center.id}"] video[data-side="visitor"]')
    wait_picture(officer, f'[data-visit-id="{at_center.id}"] video[data-side="resident"]')
    assert tile.locator("video").evaluate_all("videos => videos.map(v => v.muted)") == [True, True]
    tile.get_by_role("button", name="Listen").click()
    expect(tile.get_by_role("button", name="Mute")).to_have_attribute("aria-pressed", "true")
    assert tile.locator("video").evaluate_all("videos => videos.map(v => v.muted)") == [False, False]

    # --- a warning reaches both sides, and nobody is cut off --------------------------------------------
    tile.get_by_label("Warning to both sides").fill(WARNING)
    tile.get_by_role("button", name="Send warning").click()
    expect(tile.get_by_role("status")).to_have_text("Warning sent to both sides.")
    for page in (operator, son):
        banner = page.get_by_role("alert").filter(has=page.locator("#warning-text"))
        expect(banner).to_be_visible()
        expect(page.locator("#warning-text")).to_have_text(WARNING)
    wait_decoding(son, "#remote-video", key="after the warning")
    wait_hearing(son)

    # --- the officer ends the home visit for the visitor's conduct ----------------------------------------
    other = officer.locator(f'[data-visit-id="{at_home.id}"]')
    other.get_by_role("button", name="End this visit…").click()
    other.get_by_label("Reason").select_option(label="Conduct")
    other.get_by_label("Note (kept with the visit)").fill("Shouted at the resident after a warning.")
    other.get_by_role("button", name="End the visit now").click()
    expect(wife.locator("#ended")).to_be_visible()
    expect(wife.locator("#call")).to_be_hidden()
    expect(wife.locator("#ended")).to_have_attribute("data-outcome", "terminated")
    expect(wife.locator("#ended-detail")).to_contain_text(ru("Conduct"))
    expect(wife.locator("#visit-status")).to_have_text(ru("Terminated"))
    expect(other).to_have_attribute("data-status", "ended")
    ended = people.visit(at_home.id)
    assert (ended.status, ended.reason) == (VisitStatus.TERMINATED, "conduct")
    # The other visit goes on.
    wait_decoding(operator, "#remote-video", key="after the other visit ended")
    assert people.visit(at_center.id).status is VisitStatus.IN_PROGRESS

    # --- she sees why, and the suspension applies ------------------------------------------------------
    wife.get_by_role("link", name=ru("Back to my visits")).click()
    past = wife.get_by_role("region", name=ru("Past and cancelled"))
    expect(past.get_by_role("row").filter(has_text=ru("Terminated"))).to_contain_text(ru("Conduct"))
    wife.get_by_role("navigation", name=ru("Main")).get_by_role("link", name=ru("My profile")).click()
    restrictions = wife.get_by_role("region", name=ru("Restrictions on your visits"))
    until = people.clock() + timedelta(days=7)
    expect(restrictions).to_contain_text(ru("Suspension"))
    expect(restrictions).to_contain_text(str(local_day(until).day))
    expect(restrictions).to_contain_text(ru("Conduct"))
    wife.get_by_role("navigation", name=ru("Main")).get_by_role("link", name=ru("Book a visit")).click()
    wife.locator("button.time").first.click()
    expect(wife.get_by_role("alert")).to_contain_text(re.compile(ru("Conduct"), re.IGNORECASE))


def _station(people: Journey, station_id: int | None, number: str, visit_id: int) -> Page:
    page = people.open(f"station {number}")
    people.station(page, people.station_code(station_id), number, demo_pin(number))
    page.goto(f"/station/visits/{visit_id}")
    join(page)
    return page
