"""Journey 7, a resident at a station: the kiosk of his unit (a touch screen) is enrolled by staff; he
logs in with his number and PIN, sees today's visit and his messages in his own language (Russian)
whatever the kiosk's browser says, and joins his wife's visit by touch."""

from __future__ import annotations

from playwright.sync_api import expect

from openvisit.services.demo import demo_pin
from tests.journeys.support import Journey, join, ru, wait_picture

HUSBAND = "A-100001"
WIFE = "maria.smirnova@example.org"


def test_a_resident_at_a_station(people: Journey) -> None:
    today = people.live_visit_of(HUSBAND)

    # --- his wife books another visit for tomorrow: his station will have a message about it --------
    wife = people.open("visitor", locale="ru-RU", viewport=(390, 844), touch=True)
    people.login(wife, WIFE)
    wife.goto("/visits/book")
    wife.locator("button.time").first.tap()
    wife.get_by_role("button", name=ru("Confirm the visit")).tap()
    expect(wife.get_by_role("status")).to_have_text(ru("Your visit is booked."))

    # --- at the kiosk: a wrong PIN, then the right one ------------------------------------------------
    kiosk = people.open("station", locale="en-GB", viewport=(1280, 800), touch=True)
    kiosk.goto("/station/login")
    kiosk.get_by_label("Station code").fill(people.station_code(today.station_id))
    kiosk.get_by_label("Station key").fill(f"demo-station-{people.station_code(today.station_id).lower()}")
    kiosk.get_by_role("button", name="Enrol").tap()
    expect(kiosk.get_by_role("heading", name="Log in to see your visits")).to_be_visible()
    kiosk.get_by_label("Your number").fill(HUSBAND)
    kiosk.get_by_label("PIN").fill("0000")
    kiosk.get_by_role("button", name="Log in").tap()
    expect(kiosk.get_by_role("alert")).to_be_visible()
    kiosk.get_by_label("PIN").fill(demo_pin(HUSBAND))
    kiosk.get_by_role("button", name="Log in").tap()

    # --- his page speaks Russian, his language, though the kiosk's browser is English -----------------
    expect(kiosk.locator("html")).to_have_attribute("lang", "ru")
    expect(kiosk.get_by_role("heading", level=1)).to_have_text(ru("Hello, %(name)s", name="Алексей"))
    expect(kiosk.get_by_role("banner")).to_contain_text(ru("Resident %(number)s", number=HUSBAND))
    day = kiosk.get_by_role("region", name=ru("Today"))
    expect(day).to_contain_text("08:00–08:30")
    # The visit is open to join: a touch on the big button joins.
    join_link = day.get_by_role("link", name=ru("Join the visit"))
    box = join_link.bounding_box()
    assert box is not None and box["height"] >= 44, box
    messages = kiosk.get_by_role("heading", name=ru("Messages")).locator("xpath=..")
    booked = messages.get_by_role("listitem").filter(has_text=ru("Visit booked: %(when)s").split(":")[0])
    expect(booked).to_have_count(1)
    expect(booked.locator("strong")).to_have_text(ru("New") + ":")

    join_link.tap()
    expect(kiosk.get_by_role("heading", level=1)).to_have_text(
        ru("Visit with %(name)s", name="Мария Смирнова")
    )
    join(kiosk)
    expect(kiosk.locator("#peer-status")).to_have_text(ru("Waiting for the other side to join."))
    expect(kiosk.get_by_role("timer")).to_contain_text(ru("Time left: %(time)s", time="").strip())

    # --- his wife joins from her phone ------------------------------------------------------------------
    wife.goto("/visits")
    wife.get_by_role("link", name=ru("Join the visit")).tap()
    join(wife)
    wait_picture(kiosk)
    wait_picture(wife)
    expect(kiosk.locator("#peer-status")).to_have_text(ru("The other side has joined."))

    # --- he leaves, and could come back until the end -------------------------------------------------
    kiosk.get_by_role("button", name=ru("Leave the visit")).tap()
    expect(kiosk.locator("#ended-title")).to_have_text(ru("You left the visit."))
    expect(kiosk.get_by_role("button", name=ru("Join again"))).to_be_visible()
    expect(wife.locator("#peer-status")).to_have_text(
        ru("The other side has left. They can come back until the end.")
    )
