"""Browser tests: Debian's headless Chromium, with its fake camera and microphone, against the whole app
served by a real uvicorn on a free port, on the test's database.

The server's clock is the real one (media and timers run in real time); people are logged in by session
rows written straight into the database, as a login would write them, with their cookie handed to the
browser context."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from openvisit.db.database import Database
from openvisit.db.models import (
    AuthSession,
    Connection,
    Facility,
    HousingUnit,
    Resident,
    StaffGrant,
    Station,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import (
    AccountKind,
    ConnectionKind,
    ConnectionStatus,
    ParticipantRole,
    Relationship,
    Role,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.services.auth import new_token, token_digest
from openvisit.services.context import AppContext, utc_now
from openvisit.settings import Settings
from openvisit.web.app import create_app
from openvisit.web.templating import SESSION_COOKIE
from tests.serving import serve_in_thread

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
WAIT_MS = 30_000
"""How long a step may take before the test fails: media setup on a machine shared with other test
workers can take several seconds."""


def chromium_path() -> str:
    """Debian's Chromium (scripts/ensure-chromium.sh installs it for `make test`)."""
    path = os.environ.get("OPENVISIT_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        raise RuntimeError(
            f"Chromium is missing at {path}; `make test` installs it (scripts/ensure-chromium.sh)"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (closed before the next module's tests run)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live_ctx(settings: Settings) -> Iterator[AppContext]:
    """The test's database with the real clock, the aiortc engine in a thread of the server process."""
    live_settings = settings.model_copy(
        update={"media_engine": "aiortc", "media_workers": 0, "sweep_seconds": 0, "delivery_seconds": 0}
    )
    context = AppContext(
        settings=live_settings, db=Database.from_url(live_settings.database_url), clock=utc_now
    )
    yield context
    context.db.dispose()


@pytest.fixture
def live_server(live_ctx: AppContext) -> Iterator[str]:
    """The whole app served by uvicorn in a thread, on a port the kernel chose; its base URL."""
    with serve_in_thread(create_app(live_ctx.settings, ctx=live_ctx)) as port:
        yield f"http://127.0.0.1:{port}"


# --- people and a visit, written as the services would leave them ------------------------------------


@dataclass(frozen=True)
class Scene:
    facility_id: int
    station_id: int
    resident_id: int
    visitor_id: int
    visit_id: int
    tokens: dict[str, str]
    """Session cookies by who holds them: visitor, station, officer, investigator."""


def _session(s: object, now: datetime, **subject: int | None) -> str:
    token = new_token()
    s.add(  # type: ignore[attr-defined]
        AuthSession(
            token_hash=token_digest(token),
            second_factor_done=True,
            last_seen_at=now,
            expires_at=now + timedelta(hours=2),
            **subject,
        )
    )
    return token


def build_scene(
    ctx: AppContext, *, kind: VisitKind = VisitKind.SOCIAL, starts_ago: timedelta = timedelta(minutes=1)
) -> Scene:
    """A Krasnoyarsk facility with one kiosk, a resident, their approved visitor (a lawyer for a legal
    visit), a home visit going on now (approved, 30 minutes), an officer and an investigator of the
    facility; each with a session."""
    now = utc_now()
    suffix = new_token()[:6].upper()
    with ctx.db.write() as s:
        facility = Facility(
            code=f"BR{suffix}", name="Colony 1", timezone="Asia/Krasnoyarsk", city="Krasnoyarsk"
        )
        s.add(facility)
        s.flush()
        unit = HousingUnit(facility_id=facility.id, code="U1", name="Unit 1")
        s.add(unit)
        s.flush()
        kiosk = Station(
            code=f"K{suffix}",
            name="Kiosk 1",
            kind=StationKind.UNIT_KIOSK,
            facility_id=facility.id,
            unit_id=unit.id,
        )
        s.add(kiosk)
        s.flush()
        resident = Resident(
            number=f"A-{suffix}",
            last_name="Petrov",
            first_name="Ivan",
            middle_name="",
            birth_date=date(1985, 5, 5),
            facility_id=facility.id,
            unit_id=unit.id,
            pin_hash="-",
            language="en",
        )
        user = UserAccount(
            email=f"visitor-{suffix.lower()}@example.org",
            password_hash="-",
            kind=AccountKind.VISITOR,
            display_name="Anna",
        )
        staff = [
            UserAccount(
                email=f"{role.value}-{suffix.lower()}@example.org",
                password_hash="-",
                kind=AccountKind.STAFF,
                display_name=role.value,
            )
            for role in (Role.MONITORING_OFFICER, Role.INVESTIGATOR)
        ]
        s.add_all([resident, user, *staff])
        s.flush()
        s.add_all(
            StaffGrant(user_id=account.id, role=role, facility_id=facility.id)
            for account, role in zip(staff, (Role.MONITORING_OFFICER, Role.INVESTIGATOR), strict=True)
        )
        visitor = Visitor(
            user_id=user.id, last_name="Petrova", first_name="Anna", birth_date=date(1986, 1, 1)
        )
        s.add(visitor)
        s.flush()
        legal = kind is VisitKind.LEGAL
        s.add(
            Connection(
                resident_id=resident.id,
                visitor_id=visitor.id,
                relationship=Relationship.ATTORNEY if legal else Relationship.SPOUSE,
                kind=ConnectionKind.LEGAL if legal else ConnectionKind.SOCIAL,
                status=ConnectionStatus.APPROVED,
            )
        )
        start = now - starts_ago
        visit = Visit(
            kind=kind,
            mode=VisitMode.HOME,
            status=VisitStatus.APPROVED,
            facility_id=facility.id,
            resident_id=resident.id,
            station_id=kiosk.id,
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
            counts_toward_allowance=not legal,
        )
        s.add(visit)
        s.flush()
        s.add(VisitParticipant(visit_id=visit.id, visitor_id=visitor.id, role=ParticipantRole.LEAD))
        tokens = {
            "visitor": _session(s, now, user_id=user.id),
            "station": _session(s, now, resident_id=resident.id, station_id=kiosk.id),
            "officer": _session(s, now, user_id=staff[0].id),
            "investigator": _session(s, now, user_id=staff[1].id),
        }
        return Scene(facility.id, kiosk.id, resident.id, visitor.id, visit.id, tokens)


def open_as(browser: Browser, base_url: str, token: str) -> tuple[BrowserContext, Page]:
    """A browser context (its own cookies) logged in with the session `token`, and a page in it."""
    context = browser.new_context(base_url=base_url, locale="en-GB", permissions=["camera", "microphone"])
    context.add_cookies([{"name": SESSION_COOKIE, "value": token, "url": base_url}])
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    return context, page


# --- what a page can tell ---------------------------------------------------------------------------

DECODING = """([selector, key]) => {
  const video = document.querySelector(selector);
  if (!video || !video.videoWidth || video.paused) return false;
  const seen = (window.__seen ??= {});
  const before = seen[key];
  seen[key] = video.currentTime;
  return before !== undefined && video.currentTime > before;
}"""
"""True once the <video> has a picture and its time has moved on since the previous poll."""


def wait_decoding(page: Page, selector: str, *, key: str = "") -> None:
    """Wait until the page decodes video into `selector`: a picture, and time moving on (`key` starts
    the count afresh, for a stream that started again)."""
    page.wait_for_function(DECODING, arg=[selector, f"{selector} {key}"], polling=300, timeout=WAIT_MS)


def join_call(page: Page, path: str) -> None:
    """Open a call page, wait for the camera check, accept the rules and join."""
    page.goto(path)
    wait_decoding(page, "#device-preview")
    page.locator("#rules-accept").check()
    page.locator("#join").click()
    page.locator("#call").wait_for(state="visible")
