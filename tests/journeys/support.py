"""What the journeys share: a server on the demo data with a clock the test moves, people's browsers,
logins through the pages, the emails the server sends, and axe-core.

The journeys run on SQLite only: the services under them are tested on SQLite and PostgreSQL elsewhere
(tests/test_*.py), and a browser journey asks nothing of the database that the other tests do not."""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time as wall_clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from openvisit.db.models import Resident, Station, Visit
from openvisit.i18n import translate
from openvisit.services.context import AppContext
from openvisit.services.demo import DEMO_PASSWORD, station_key
from openvisit.web.templating import SESSION_COOKIE
from tests.browser.conftest import WAIT_MS, wait_decoding
from tests.factories import totp_now
from tests.notify_support import Mailbox, text_of

COLONY_TZ = ZoneInfo("Asia/Krasnoyarsk")
"""The demo colony IK-17 keeps Krasnoyarsk time (UTC+7, no clock changes)."""

ROOT = Path(__file__).resolve().parents[2]
AXE_PATH = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
MAIL_WAIT_S = 20.0
"""How long an email may take: the server delivers every second, on a loaded machine."""


def journey_start(real_now: datetime) -> datetime:
    """08:00 in the colony on a Monday one to seven days ahead of the real time: every journey starts on
    the same weekday and hour, so the colony's sessions (weekdays 09:00–12:00 and 14:00–17:00 in unit 1,
    an hour later in unit 2) and the booking windows (public from 24 hours, legal from 2 hours) are
    always where the journeys expect them; ahead of the real time, so that cookies never outlive it."""
    today = real_now.astimezone(COLONY_TZ).date()
    monday = today + timedelta(days=7 - today.weekday())
    return datetime.combine(monday, time(8, 0), COLONY_TZ).astimezone(UTC)


class MovableClock:
    """The server's clock: the real one, shifted by an offset the test sets. Time runs on between the
    test's moves (media, timers and timeouts work as usual), and the live visits' timers see a move
    within a second (realtime/hub.py sleeps by the clock in short steps)."""

    def __init__(self, start: datetime) -> None:
        self._lock = threading.Lock()
        self._offset = start - datetime.now(UTC)

    def __call__(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def move_to(self, moment: datetime) -> None:
        """Let the clock read `moment` now; it only moves forward."""
        with self._lock:
            offset = moment - datetime.now(UTC)
            assert offset >= self._offset - timedelta(seconds=1), "the clock only moves forward"
            self._offset = offset

    def reach(self, moment: datetime) -> None:
        """Move the clock to `moment` unless it is already past it (earlier steps of the module may have
        taken longer than that on a busy machine)."""
        with self._lock:
            self._offset = max(self._offset, moment - datetime.now(UTC))


def photo(text: str, *, size: tuple[int, int] = (480, 320)) -> bytes:
    """A small JPEG with a few shapes and `text` on it: what a phone's photo of a document would be."""
    image = Image.new("RGB", size, (236, 230, 214))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 20, size[0] - 20, size[1] - 20), outline=(40, 60, 120), width=6)
    draw.ellipse((40, 60, 160, 200), fill=(180, 140, 120))
    draw.text((190, 80), text, fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


@dataclass
class Journey:
    """One server on the demo data, and the browsers of the people of the journeys in it."""

    base_url: str
    ctx: AppContext
    clock: MovableClock
    mailbox: Mailbox
    browser: Browser
    totp_secrets: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    # --- browsers -------------------------------------------------------------------------------

    def open(
        self,
        who: str,
        *,
        locale: str = "en-GB",
        viewport: tuple[int, int] = (1200, 900),
        touch: bool = False,
    ) -> Page:
        """A new browser (its own cookies) for `who`, with a camera and a microphone it may use; `touch`
        makes it a touch screen (a station's kiosk, a phone)."""
        context = self.browser.new_context(
            base_url=self.base_url,
            locale=locale,
            permissions=["camera", "microphone"],
            viewport={"width": viewport[0], "height": viewport[1]},
            has_touch=touch,
        )
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: self.errors.append(f"{who}: {exc}"))
        return page

    def close_all(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()

    # --- logins through the pages ---------------------------------------------------------------

    def login(self, page: Page, email: str, password: str = DEMO_PASSWORD) -> None:
        """Log in on /login, in whatever language the page speaks."""
        page.goto("/login")
        page.locator("#email").fill(email)
        page.locator("#password").fill(password)
        page.locator("form[action='/login'] button[type=submit]").click()
        expect(page.locator("form[action='/logout']")).to_be_visible()

    def staff_login(
        self,
        page: Page,
        email: str,
        password: str = DEMO_PASSWORD,
        *,
        before_confirming: Callable[[Page], list[str]] | None = None,
    ) -> list[str]:
        """Log a staff member in with their password and an authenticator code; the first time, enrol
        the authenticator on /account/security as the page asks (the test settings require it).
        `before_confirming` looks at the enrolment page first; what it returns is returned."""
        page.goto("/login")
        page.locator("#email").fill(email)
        page.locator("#password").fill(password)
        page.locator("form[action='/login'] button[type=submit]").click()
        found: list[str] = []
        secret = self.totp_secrets.get(email)
        if secret is None:
            expect(page).to_have_url(re.compile(r"/account/security$"))
            if before_confirming is not None:
                found = before_confirming(page)
            secret = page.locator("code.secret").inner_text().strip()
            page.locator("#code").fill(totp_now(secret, self.clock()))
            page.locator("form[action='/account/security'] button[type=submit]").click()
            self.totp_secrets[email] = secret
        else:
            page.locator("#password").fill(password)
            page.locator("#totp").fill(totp_now(secret, self.clock()))
            page.locator("form[action='/login'] button[type=submit]").click()
        expect(page.locator("form[action='/logout']")).to_be_visible()
        expect(page).not_to_have_url(re.compile(r"/(login|account/security)$"))
        return found

    def station(self, page: Page, station_code: str, number: str, pin: str) -> None:
        """Enrol the browser as a demo station (staff type its code and key), then the resident logs in
        with their number and PIN; the page is in the resident's language from then on."""
        page.goto("/station/login")
        page.locator("#station_code").fill(station_code)
        page.locator("#station_key").fill(station_key(station_code))
        page.locator("form[action='/station/enrol'] button[type=submit]").click()
        page.locator("#number").fill(number)
        page.locator("#pin").fill(pin)
        page.locator("form[action='/station/login'] button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/station$"))

    def logged_in_as(self, page: Page) -> bool:
        return any(c["name"] == SESSION_COOKIE for c in page.context.cookies())

    # --- the mail the server sends ----------------------------------------------------------------

    def mail(self, address: str, subject: str | re.Pattern[str], *, after: int = 0) -> EmailMessage:
        """The first email to `address`, among those after the first `after`, whose subject contains
        `subject` (or matches the pattern); waits for the server's delivery."""
        deadline = wall_clock.monotonic() + MAIL_WAIT_S
        while True:
            for message in self.mailbox.to(address)[after:]:
                title = str(message["Subject"])
                if subject.search(title) if isinstance(subject, re.Pattern) else subject in title:
                    return message
            if wall_clock.monotonic() > deadline:
                got = [str(m["Subject"]) for m in self.mailbox.to(address)]
                raise AssertionError(f"no email {subject!r} to {address}; got {got}")
            wall_clock.sleep(0.1)

    def link_in(self, message: EmailMessage, path: str) -> str:
        """The link to `path` in the email's text, as a path on this server."""
        found = re.search(re.escape(self.base_url + path) + r"\S*", text_of(message))
        assert found, f"no link to {path} in: {text_of(message)}"
        return found.group(0)[len(self.base_url) :]

    # --- reading what the pages did (never to advance the story) ----------------------------------

    def resident(self, number: str) -> Resident:
        with self.ctx.db.read() as s:
            return s.execute(sa.select(Resident).where(Resident.number == number)).scalar_one()

    def visit(self, visit_id: int) -> Visit:
        with self.ctx.db.read() as s:
            visit = s.get(Visit, visit_id)
            assert visit is not None
            return visit

    def live_visit_of(self, number: str) -> Visit:
        """The demo's visit of resident `number` that can be joined now."""
        now = self.clock()
        with self.ctx.db.read() as s:
            return (
                s.execute(
                    sa.select(Visit)
                    .join(Resident, Resident.id == Visit.resident_id)
                    .where(Resident.number == number, Visit.starts_at <= now, Visit.ends_at > now)
                )
                .scalars()
                .one()
            )

    def station_code(self, station_id: int | None) -> str:
        with self.ctx.db.read() as s:
            return s.execute(sa.select(Station.code).where(Station.id == station_id)).scalar_one()

    def station_name(self, station_id: int | None) -> str:
        with self.ctx.db.read() as s:
            return s.execute(sa.select(Station.name).where(Station.id == station_id)).scalar_one()

    def assert_no_page_errors(self) -> None:
        assert not self.errors, self.errors


def ru(message: str, **params: object) -> str:
    """`message` (an English msgid) as the Russian pages say it."""
    return translate("ru", message, params or None)


# --- the call pages ---------------------------------------------------------------------------------


def tab_to(page: Page, target: Locator, *, limit: int = 200) -> None:
    """Press Tab, as a keyboard user would, until `target` has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"Tab never reached {target}")


def id_in(link: Locator) -> int:
    """The first number in a link's address: the id of what it opens."""
    href = link.get_attribute("href") or ""
    found = re.search(r"/(\d+)(?:/|$|\?)", href)
    assert found, href
    return int(found.group(1))


def join(page: Page) -> None:
    """On an open call page, in any language: wait for the camera check, accept the rules and join."""
    wait_decoding(page, "#device-preview")
    page.locator("#rules-accept").check()
    page.locator("#join").click()
    page.locator("#call").wait_for(state="visible")


PICTURE = """(selector) => {
  const video = document.querySelector(selector);
  if (!video || !video.videoWidth) return 0;
  const canvas = (window.__canvas ??= document.createElement('canvas'));
  canvas.width = 64;
  canvas.height = 48;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(video, 0, 0, 64, 48);
  const pixels = context.getImageData(0, 0, 64, 48).data;
  let sum = 0, squares = 0;
  const n = pixels.length / 4;
  for (let i = 0; i < pixels.length; i += 4) {
    const luma = 0.299 * pixels[i] + 0.587 * pixels[i + 1] + 0.114 * pixels[i + 2];
    sum += luma;
    squares += luma * luma;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, squares / n - mean * mean));
}"""
"""How much the picture of a <video> varies (the spread of its brightness): a black or blank frame is
0; Chromium's fake camera draws shapes and a clock."""


def wait_picture(page: Page, selector: str = "#remote-video") -> None:
    """Wait until `selector` shows a picture, not a blank frame: the other side is seen."""
    wait_decoding(page, selector, key="picture")
    deadline = wall_clock.monotonic() + WAIT_MS / 1000
    spread = 0.0
    while wall_clock.monotonic() < deadline:
        spread = float(page.evaluate(PICTURE, selector))
        if spread > 10:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"{selector} shows no picture (brightness spread {spread:.1f})")


HEARING = """async () => {
  const video = document.querySelector('#remote-video');
  const stream = video && video.srcObject;
  const track = stream && stream.getAudioTracks()[0];
  if (!track) return 0;
  // A call that connects again plays a new track: listen to the one the page plays now.
  if (window.__listen?.track !== track) {
    window.__listen?.audio.close();
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 2048;
    audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    window.__listen = { track, audio, analyser, samples: new Float32Array(analyser.fftSize) };
  }
  const listen = window.__listen;
  await listen.audio.resume();
  let loudest = 0;
  for (let i = 0; i < 20; i++) {
    listen.analyser.getFloatTimeDomainData(listen.samples);
    for (const s of listen.samples) loudest = Math.max(loudest, Math.abs(s));
    await new Promise((done) => setTimeout(done, 50));
  }
  return loudest;
}"""
"""The loudest sample of the other side's sound over a second, heard through the page's own <video>."""


def wait_hearing(page: Page) -> None:
    """Wait until the page plays the other side's sound (Chromium's fake microphone beeps)."""
    deadline = wall_clock.monotonic() + WAIT_MS / 1000
    loudest = 0.0
    while wall_clock.monotonic() < deadline:
        loudest = float(page.evaluate(HEARING))
        if loudest > 0.01:
            return
    raise AssertionError(f"no sound from the other side (loudest sample {loudest})")


# --- accessibility ----------------------------------------------------------------------------------


def axe_problems(page: Page) -> list[str]:
    """The serious and critical violations axe-core finds on the page as it is now, one line each."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_PATH.read_text(encoding="utf-8"))
    result: dict[str, Any] = page.evaluate(
        "async () => await axe.run(document, {resultTypes: ['violations']})"
    )
    problems = []
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [json.dumps(node["target"]) for node in violation["nodes"][:5]]
            problems.append(f"{page.url}: {violation['id']} ({violation['impact']}): {' '.join(targets)}")
    return problems


def screenshot(page: Page, name: str) -> None:
    """Save the page for the README's tour when OPENVISIT_SCREENSHOTS=1 (docs/screenshots/NAME.png)."""
    if os.environ.get("OPENVISIT_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)


def local_day(moment: datetime) -> date:
    return moment.astimezone(COLONY_TZ).date()
