"""Journey 6, an investigator: a recorded visit took place this morning (a wife at home, her husband at
his station, both through the pages); the investigator finds its recording by the resident's number and
the day, plays it, and the playback appears in the facility's audit log under the investigator's name."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.sync_api import expect

from openvisit.domain.enums import VisitStatus
from openvisit.services.demo import demo_pin
from tests.journeys.support import Journey, join, local_day, ru, wait_picture

HUSBAND = "A-100001"


def test_an_investigator(people: Journey) -> None:
    visit = people.live_visit_of(HUSBAND)
    people.clock.reach(visit.starts_at + timedelta(minutes=1))

    # --- the visit, recorded ---------------------------------------------------------------------------
    station = people.open("station")
    people.station(station, people.station_code(visit.station_id), HUSBAND, demo_pin(HUSBAND))
    station.get_by_role("link", name=ru("Join the visit")).click()
    join(station)
    wife = people.open("visitor", locale="ru-RU")
    people.login(wife, "maria.smirnova@example.org")
    wife.goto("/visits")
    wife.get_by_role("link", name=ru("Join the visit")).click()
    expect(wife.locator("#privacy-notice")).to_contain_text(ru("This visit is monitored and recorded"))
    join(wife)
    wait_picture(wife)
    wait_picture(station)
    wife.wait_for_timeout(3_000)  # a few seconds of the two of them on the recording
    people.clock.move_to(visit.ends_at)
    for page in (wife, station):
        expect(page.locator("#ended")).to_have_attribute("data-outcome", "completed")
    assert people.visit(visit.id).status is VisitStatus.COMPLETED

    # --- the investigator finds it by the resident and the day, and plays it -----------------------------
    investigator = people.open("investigator")
    people.staff_login(investigator, "investigator@example.org")
    investigator.get_by_role("navigation", name="Main").get_by_role("link", name="Recordings").click()
    search = investigator.get_by_role("search")
    search.get_by_label("Resident's number or name").fill(HUSBAND)
    search.get_by_label("From").fill(local_day(visit.starts_at).isoformat())
    search.get_by_role("button", name="Search").click()
    hit = investigator.get_by_role("row").filter(has_text=HUSBAND)
    expect(hit).to_have_count(1)
    # The recorder finishes the file a moment after the visit ends; the list says when it is ready.
    for _ in range(40):
        if hit.get_by_text("Ready").count():
            break
        investigator.wait_for_timeout(500)
        investigator.reload()
    expect(hit.get_by_text("Ready")).to_be_visible()
    hit.get_by_role("link", name="Play").click()
    expect(investigator.get_by_role("heading", level=1)).to_contain_text("Смирнов Алексей")
    player = investigator.locator("video.player")
    expect(player).to_have_accessible_name(re.compile("Recording of the visit with"))
    investigator.wait_for_function(
        "() => { const v = document.querySelector('video.player');"
        " return v.readyState >= 2 && v.videoWidth > 0; }"
    )
    recording_id = int(investigator.url.rsplit("/", 1)[-1])
    sha = investigator.locator("code.secret").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", sha), sha

    # --- the playback is in the audit log, with the investigator's name --------------------------------
    admin = people.open("facility admin")
    people.staff_login(admin, "facility-admin@example.org")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    played = admin.get_by_role("row").filter(has_text="recording.played")
    expect(played).to_have_count(1)
    expect(played).to_contain_text("investigator@example.org")
    expect(played).to_contain_text(f"recording {recording_id}")
