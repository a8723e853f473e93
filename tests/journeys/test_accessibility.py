"""Every page of every role, in English and in Russian (switched with the page's own language links),
checked by axe-core: no serious or critical violation. The live pages are checked as people see them:
the call before joining and during it, the station, the wall watching a visit, check-in, the booth, and
the recordings. On the video pages the controls and notices have names that a screen reader says.

`OPENVISIT_SCREENSHOTS=1 .venv/bin/pytest tests/journeys -k tour` also saves the README's screenshots
(docs/screenshots/) from the same pages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from playwright.sync_api import Page, expect

from openvisit.db.models import LinkCenter, Recording, Resident, SessionTemplate, Visit
from openvisit.domain.enums import VisitKind, VisitMode
from openvisit.services.demo import demo_pin
from tests.browser.conftest import wait_decoding
from tests.journeys.support import Journey, axe_problems, join, local_day, ru, screenshot, wait_picture

OTHER = {"en": "ru", "ru": "en"}


def sweep(page: Page, paths: Iterable[str]) -> list[str]:
    """Each page in the person's language, then, after switching with the language link of the last
    page, each page in the other language: axe's serious and critical findings, and any page whose title
    the switch left untranslated."""
    paths = list(paths)
    problems: list[str] = []
    titles: dict[str, str] = {}
    page.goto(paths[0])
    first = page.locator("html").get_attribute("lang") or "en"
    for language in (first, OTHER[first]):
        for path in paths:
            page.goto(path)
            expect(page.locator("html")).to_have_attribute("lang", language)
            problems += axe_problems(page)
            title = page.title()
            if language == first:
                titles[path] = title
            elif title == titles[path]:
                problems.append(f"{path}: the title is the same in both languages: {title!r}")
        switch_language(page, OTHER[language])
        expect(page).to_have_url(re.compile(re.escape(paths[-1]) + "$"))
    return problems


def switch_language(page: Page, language: str) -> None:
    """Choose `language` with the language link of the page in view; it comes back to the same page."""
    page.get_by_role("list", name=re.compile("^(Language|Язык)$")).locator(
        f'a[hreflang="{language}"]'
    ).click()
    expect(page.locator("html")).to_have_attribute("lang", language)


def test_public_pages(people: Journey) -> None:
    page = people.open("someone")
    problems = sweep(
        page,
        [
            "/",
            "/login",
            "/register",
            "/register/sent",
            "/register/confirm?token=not-a-token",
            "/password/forgot",
            "/password/sent",
            "/password/reset?token=not-a-token",
            "/password/changed",
            "/station/login",
            "/no-such-page",
        ],
    )
    assert not problems, "\n".join(problems)
    # The first Tab reaches the skip link, and Enter takes the focus past the menu to the content.
    page.goto("/login")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Email")).to_be_focused()


def test_visitor_pages(people: Journey) -> None:
    problems: list[str] = []
    # A wife who reads Russian: her profile, links, visits, a visit next week to move.
    wife = people.open("visitor", locale="ru-RU")
    people.login(wife, "maria.smirnova@example.org")
    next_week = _visits(people, "A-100001")[-1]
    problems += sweep(
        wife,
        [
            "/",
            "/visits",
            "/visits/book",
            f"/visits/book?mode=link_center&link_center_id={_center(people, 'LC-MOW')}",
            f"/visits/{next_week.id}/reschedule",
            "/me",
            "/me/links",
            "/account/security",
            "/visits/999999/join",
        ],
    )
    # A brother who reads English holds a time: the confirmation page.
    brother = people.open("visitor 2")
    people.login(brother, "dmitry.popov@example.org")
    brother.goto("/visits/book")
    brother.locator("button.time").first.click()
    expect(brother).to_have_url(re.compile(r"/visits/\d+/confirm$"))
    problems += sweep(brother, [brother.url.removeprefix(people.base_url)])
    brother.get_by_role("button", name=re.compile("Choose another time|Выбрать другое время")).click()
    # The mother at a link center: her visit is joined from the booth, and the page says so.
    mother = people.open("visitor 3", locale="ru-RU")
    people.login(mother, "olga.kuznetsova@example.org")
    # (By its id, not as "live now": the module's tour may have moved the clock past it already.)
    at_center = next(v for v in _visits(people, "A-100002") if v.mode is VisitMode.LINK_CENTER)
    problems += sweep(mother, [f"/visits/{at_center.id}/join"])
    assert not problems, "\n".join(problems)


def test_staff_pages(people: Journey) -> None:
    problems: list[str] = []
    with people.ctx.db.read() as s:
        template_id = s.execute(sa.select(sa.func.min(SessionTemplate.id))).scalar_one()
    pages: dict[str, list[str]] = {
        "clerk@example.org": [
            "/",
            "/staff/residents",
            "/staff/residents?q=A-1000",
            "/staff/calendar",
            "/staff/requests",
            "/staff/links",
            "/staff/links?view=approved",
            "/staff/restrictions",
            "/staff/attorneys",
            "/account/security",
        ],
        "scheduler@example.org": [
            "/staff/templates",
            "/staff/templates/new",
            f"/staff/templates/{template_id}/edit",
            "/staff/blocks",
        ],
        "facility-admin@example.org": ["/", "/staff/audit"],
        "admin@example.org": ["/", "/staff/residents"],
    }
    for email, paths in pages.items():
        page = people.open(email)
        enrolment = people.staff_login(page, email, before_confirming=axe_problems)
        problems += enrolment
        problems += sweep(page, paths)
    assert not problems, "\n".join(problems)


def test_tour_of_the_live_pages(people: Journey) -> None:
    """The live pages, accessible and captioned; with OPENVISIT_SCREENSHOTS=1, the README's tour."""
    problems: list[str] = []
    home = people.live_visit_of("A-100001")
    legal = people.live_visit_of("A-100006")
    center = people.live_visit_of("A-100002")
    people.clock.reach(home.starts_at + timedelta(minutes=3))

    # --- the visitor's booking page, in English, with both zones (Yekaterinburg and the colony) ---------
    brother = people.open("visitor 2", viewport=(1200, 860))
    people.login(brother, "dmitry.popov@example.org")
    brother.goto("/visits/book")
    expect(brother.locator("#times-legend")).to_contain_text("Yekaterinburg")
    expect(brother.locator("button.time .time-yours").first).to_be_visible()
    brother.locator("#times-heading").scroll_into_view_if_needed()
    screenshot(brother, "booking")

    # --- the call before joining, in Russian and then in English ----------------------------------------
    wife = people.open("visitor", locale="ru-RU", viewport=(1200, 860))
    people.login(wife, "maria.smirnova@example.org")
    # She also books a visit for tomorrow, which her husband's station will tell him about.
    wife.goto("/visits/book")
    wife.locator("button.time").first.click()
    wife.locator("form[action$='/confirm'] button[type=submit]").click()
    expect(wife.get_by_role("status")).to_have_text(ru("Your visit is booked."))
    problems += sweep(wife, [f"/visits/{home.id}/join"])
    switch_language(wife, "en")
    wait_decoding(wife, "#device-preview")
    expect(wife.get_by_role("status").filter(has_text="Your camera and microphone work.")).to_be_visible()
    problems += axe_problems(wife)

    # --- the station: the resident's page and his call, in his language ---------------------------------
    station = people.open("station", viewport=(1280, 800), touch=True)
    people.station(station, people.station_code(home.station_id), "A-100001", demo_pin("A-100001"))
    inbox = station.get_by_role("heading", name=ru("Messages")).locator("xpath=..")
    for _ in range(20):  # the server delivers station messages every second
        if inbox.locator(".unread").count():
            break
        station.wait_for_timeout(500)
        station.reload()
    expect(inbox.locator(".unread")).to_have_count(1)
    problems += axe_problems(station)
    screenshot(station, "station")
    station.get_by_role("link", name=ru("Join the visit")).click()
    problems += axe_problems(station)
    join(station)

    # --- during the call: video, controls and notices with names ----------------------------------------
    join(wife)
    wait_picture(wife)
    wait_picture(station)
    expect(wife.get_by_role("heading", level=1)).to_have_text("Visit with Смирнов Алексей Викторович")
    expect(wife.locator("#remote-video")).to_have_accessible_name("Video of Смирнов Алексей Викторович")
    expect(wife.locator("#local-video")).to_have_accessible_name("Your camera")
    expect(wife.get_by_role("figure").filter(has=wife.locator("#remote-video"))).to_contain_text("Смирнов")
    for name in ("Mute microphone", "Turn camera off", "Leave the visit"):
        expect(wife.get_by_role("button", name=name)).to_be_visible()
    expect(wife.get_by_role("timer")).to_contain_text("Time left")
    expect(wife.locator("#peer-status")).to_have_text(re.compile("other side"))
    expect(wife.locator("#privacy-notice")).to_contain_text("This visit is monitored and recorded")
    problems += axe_problems(wife)
    problems += axe_problems(station)
    wife.get_by_role("button", name="Mute microphone").click()
    expect(wife.get_by_role("button", name="Mute microphone")).to_have_attribute("aria-pressed", "true")
    screenshot(wife, "live-visit")

    # --- the link center: check-in and the booth --------------------------------------------------------
    operator = people.open("operator")
    people.staff_login(operator, "operator@example.org")
    problems += sweep(operator, ["/staff/checkin", "/staff/booth"])
    operator.goto("/staff/checkin")
    card = operator.locator(f"#visit-{center.id}")
    card.get_by_label("I have checked the ID of every adult in person.").check()
    card.get_by_role("button", name="Check the party in").click()
    problems += axe_problems(operator)
    problems += sweep(operator, [f"/staff/booth?station_id={center.booth_station_id}"])
    operator.get_by_role("link", name="Start the visit").click()
    problems += axe_problems(operator)

    # --- the officer's wall, watching the home visit; the legal one privileged --------------------------
    officer = people.open("officer", viewport=(1280, 900))
    people.staff_login(officer, "monitor@example.org")
    officer.goto("/staff/monitor")
    tile = officer.locator(f'[data-visit-id="{home.id}"]')
    tile.get_by_role("button", name="Watch").click()
    wait_picture(officer, f'[data-visit-id="{home.id}"] video[data-side="visitor"]')
    wait_picture(officer, f'[data-visit-id="{home.id}"] video[data-side="resident"]')
    expect(tile.locator('video[data-side="visitor"]')).to_have_accessible_name("Visitor")
    expect(tile.get_by_role("button", name="Listen")).to_be_enabled()
    expect(tile.get_by_role("textbox", name="Warning to both sides")).to_be_visible()
    expect(officer.locator(f'[data-visit-id="{legal.id}"]')).to_contain_text("Privileged legal visit")
    problems += axe_problems(officer)
    screenshot(officer, "wall")
    switch_language(officer, "ru")
    tile = officer.locator(f'[data-visit-id="{home.id}"]')
    tile.get_by_role("button", name=ru("Watch")).click()
    wait_decoding(officer, f'[data-visit-id="{home.id}"] video[data-side="resident"]', key="ru")
    problems += axe_problems(officer)

    # --- after the visits: the recordings and the player ------------------------------------------------
    people.clock.move_to(home.ends_at)
    expect(wife.locator("#ended")).to_be_visible()
    problems += axe_problems(wife)
    investigator = people.open("investigator")
    people.staff_login(investigator, "investigator@example.org")
    recording = _finalised_recording(people, home.id, investigator)
    problems += sweep(
        investigator,
        [
            "/staff/recordings",
            f"/staff/recordings?q=A-100001&from={local_day(home.starts_at).isoformat()}",
            f"/staff/recordings/{recording}",
        ],
    )
    expect(investigator.get_by_role("button", name="Keep for an investigation")).to_be_visible()
    assert not problems, "\n".join(problems)


def _visits(people: Journey, number: str) -> list[Visit]:
    with people.ctx.db.read() as s:
        return list(
            s.execute(
                sa.select(Visit)
                .join(Resident, Resident.id == Visit.resident_id)
                .where(Resident.number == number, Visit.kind == VisitKind.SOCIAL)
                .order_by(Visit.starts_at)
            ).scalars()
        )


def _center(people: Journey, code: str) -> int:
    with people.ctx.db.read() as s:
        return s.execute(sa.select(LinkCenter.id).where(LinkCenter.code == code)).scalar_one()


def _finalised_recording(people: Journey, visit_id: int, page: Page) -> int:
    """The visit's recording, once the recorder has finished its file."""
    for _ in range(80):
        with people.ctx.db.read() as s:
            row = s.execute(
                sa.select(Recording.id, Recording.status).where(Recording.visit_id == visit_id)
            ).first()
        if row is not None and row.status.value == "finalised":
            return int(row.id)
        page.wait_for_timeout(250)
    raise AssertionError("the recording was not finalised")
