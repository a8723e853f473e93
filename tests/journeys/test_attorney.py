"""Journey 3, an attorney: she registers as one, staff verify her licence and approve her link to a
client, she books a legal visit on the same morning (legal visits need two hours' notice, not a day);
the visit says it is privileged, the monitoring officer cannot open it (the refusal is in the audit
log), and no recording exists afterwards."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from playwright.sync_api import expect

from openvisit.domain.enums import VisitKind, VisitStatus
from openvisit.services.demo import demo_pin
from tests.browser.conftest import wait_decoding
from tests.journeys.support import Journey, id_in, join, photo, ru, wait_picture

EMAIL = "vera.sokolova@lawfirm.example"
PASSWORD = "habeas corpus for all"
CLIENT = "A-100011"
"""A demo resident in unit 1 without a lawyer."""


def test_an_attorney(people: Journey, tmp_path: Path) -> None:
    client = people.resident(CLIENT)

    # --- she registers as an attorney and confirms her address ------------------------------------
    lawyer = people.open("attorney")
    lawyer.goto("/register")
    lawyer.get_by_label("I am an attorney").check()
    lawyer.get_by_label("Email").fill(EMAIL)
    lawyer.get_by_label("Password").fill(PASSWORD)
    lawyer.get_by_label("Last name").fill("Sokolova")
    lawyer.get_by_label("First name").fill("Vera")
    lawyer.get_by_label("Date of birth").fill("1979-09-14")
    lawyer.get_by_label("Your time zone").select_option("Asia/Krasnoyarsk")
    lawyer.get_by_label("Licence or bar number").fill("24/2301")
    lawyer.get_by_label("Bar association or firm").fill("Krasnoyarsk Regional Bar")
    lawyer.get_by_role("button", name="Register").click()
    lawyer.goto(people.link_in(people.mail(EMAIL, "Confirm your email address"), "/register/confirm"))
    expect(lawyer.get_by_role("heading", name="Your email address is confirmed")).to_be_visible()
    people.login(lawyer, EMAIL, PASSWORD)
    lawyer.goto("/me")
    expect(lawyer.locator(".tag.status-pending").first).to_be_visible()
    for kind in ("id_front", "selfie"):
        picture = tmp_path / f"{kind}.jpg"
        picture.write_bytes(photo(f"Sokolova Vera {kind}"))
        lawyer.get_by_label("What the photo shows").select_option(kind)
        lawyer.get_by_label("Photo", exact=True).set_input_files(picture)
        lawyer.get_by_role("button", name="Upload").click()
        expect(lawyer.get_by_role("status")).to_contain_text("The photo is uploaded")

    # --- she asks to see her client ----------------------------------------------------------------
    lawyer.goto("/me/links")
    lawyer.get_by_label("Facility").select_option(label="Penal Colony No. 17 · Krasnoyarsk")
    lawyer.get_by_label("Their number").fill(CLIENT)
    lawyer.get_by_label("Their last name").fill(client.last_name)
    lawyer.get_by_label("Their date of birth").fill(client.birth_date.isoformat())
    lawyer.get_by_label("How the visitor is related to them").select_option("attorney")
    lawyer.get_by_role("button", name="Send the request").click()
    expect(lawyer.get_by_role("status")).to_contain_text("Your request is sent")

    # --- staff verify the licence, then approve the link, which becomes legal ----------------------
    clerk = people.open("clerk")
    people.staff_login(clerk, "clerk@example.org")
    clerk.get_by_role("link", name="Link requests").click()
    card = clerk.locator(".link-card").filter(has_text="Sokolova Vera")
    expect(card).to_contain_text("Says they are an attorney: 24/2301")
    card.get_by_role("link", name="Check the licence").click()
    claim = clerk.locator("li.request").filter(has_text="Sokolova Vera")
    claim.get_by_role("button", name="Verify").click()
    registry = clerk.get_by_role("region", name="Privileged: never recorded, never watched")
    expect(registry.get_by_role("row").filter(has_text="24/2301")).to_be_visible()
    clerk.get_by_role("link", name="Link requests").click()
    card.get_by_role("button", name="Approve").click()
    expect(clerk.get_by_role("status")).to_be_visible()
    people.mail(EMAIL, "You are verified as an attorney")

    # --- she books a legal visit the same morning ---------------------------------------------------
    lawyer.goto("/me/links")
    link = lawyer.locator("li.visit").filter(has_text=client.last_name)
    expect(link.locator(".tag").filter(has_text="Legal")).to_be_visible()
    link.get_by_role("link", name="Book a visit").click()
    expect(lawyer.get_by_role("region", name="Free times")).to_contain_text("Legal")
    today = lawyer.locator("section.day").first
    earliest = today.locator("button.time").first
    starts_at = earliest.get_attribute("value") or ""
    # Two hours from 08:00 in the colony: 10:10 is the first session in the client's unit.
    expect(earliest.locator(".time-here")).to_have_text("10:10")
    earliest.click()
    expect(
        lawyer.get_by_text("This legal visit is privileged: it is never recorded and never watched.")
    ).to_be_visible()
    lawyer.get_by_role("button", name="Confirm the visit").click()
    expect(lawyer.get_by_role("status")).to_have_text("Your visit is booked.")
    visit = people.visit(id_in(lawyer.get_by_role("link", name="Reschedule")))
    assert (visit.kind, visit.status) == (VisitKind.LEGAL, VisitStatus.APPROVED)
    assert visit.starts_at.isoformat().startswith(starts_at[:16])
    assert visit.starts_at - people.clock() < timedelta(hours=3)

    # --- at 10:10 both join: the visit says it is privileged ------------------------------------------
    people.clock.move_to(visit.starts_at + timedelta(minutes=1))
    station = people.open("station")
    people.station(station, people.station_code(visit.station_id), CLIENT, demo_pin(CLIENT))
    station.get_by_role("link", name=ru("Join the visit")).click()
    join(station)
    lawyer.goto("/visits")
    lawyer.get_by_role("link", name="Join the visit").click()
    notice = lawyer.locator("#privacy-notice")
    expect(notice).to_contain_text("Privileged legal visit: not recorded, not monitored")
    expect(
        lawyer.get_by_role("listitem").filter(has_text="Only the attorney and the client take part.")
    ).to_be_visible()
    join(lawyer)
    wait_picture(lawyer)
    wait_picture(station)
    expect(station.locator("#privacy-notice")).to_contain_text(
        ru("Privileged legal visit: not recorded, not monitored")
    )

    # --- the monitoring officer cannot open it ------------------------------------------------------
    officer = people.open("officer")
    people.staff_login(officer, "monitor@example.org")
    officer.get_by_role("navigation", name="Main").get_by_role("link", name="Monitoring").click()
    tile = officer.locator(f'[data-visit-id="{visit.id}"]')
    expect(tile).to_contain_text("Privileged legal visit: not recorded, not monitored")
    expect(tile.locator("video")).to_have_count(0)
    expect(tile.get_by_role("button")).to_have_count(0)
    # Whatever the page is made to send, the server refuses to let it watch, and says why.
    officer.evaluate("async (id) => (await import('/static/live/wall.js')).activeWall.watch(id)", visit.id)
    status = tile.locator('[data-part="status"]')
    expect(status).to_have_attribute("data-code", "media.privileged")
    wait_decoding(lawyer, "#remote-video", key="after the refused watch")

    admin = people.open("facility admin")
    people.staff_login(admin, "facility-admin@example.org")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    refused = admin.get_by_role("row").filter(has_text="visit.watch_refused")
    expect(refused).to_contain_text(f"visit {visit.id}")
    expect(refused).to_contain_text("monitor@example.org")

    # --- it ends, and nothing was recorded ----------------------------------------------------------
    people.clock.move_to(visit.ends_at)
    for page in (lawyer, station):
        expect(page.locator("#ended")).to_be_visible()
    investigator = people.open("investigator")
    people.staff_login(investigator, "investigator@example.org")
    investigator.get_by_role("navigation", name="Main").get_by_role("link", name="Recordings").click()
    investigator.get_by_label("Resident's number or name").fill(CLIENT)
    investigator.get_by_role("button", name="Search").click()
    expect(investigator).to_have_url(re.compile(r"q=A-100011"))
    expect(investigator.get_by_text("No recordings found.")).to_be_visible()
    recordings = people.ctx.settings.recordings_path
    assert not recordings.exists() or not any(recordings.rglob("*")), list(recordings.rglob("*"))
