"""One server per journey module: a copy of the migrated SQLite template with the demo loaded, the whole
app under uvicorn on a free port, the real media engine (in a thread), a real SMTP server that the
server delivers to every second, and a clock the journey moves forward (tests/journeys/support.py).

SQLite only: the services are tested on SQLite and PostgreSQL by the rest of the suite; here the browser
and the pages are under test."""

from __future__ import annotations

import shutil
import socket
import threading
import time as wall_clock
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from openvisit.db.database import Database
from openvisit.services.context import AppContext
from openvisit.services.demo import load_demo
from openvisit.settings import Settings
from openvisit.web.app import create_app
from tests.browser.conftest import CHROMIUM_ARGS, WAIT_MS, chromium_path
from tests.conftest import TEST_SECRET
from tests.journeys.support import Journey, MovableClock, journey_start
from tests.notify_support import smtp_server

PLAYWRIGHT_EXPECT_MS = 5_000
"""Playwright's own default for `expect`, put back after each journey."""


JOURNEY_CHROMIUM_ARGS = [
    # The fake camera at 10 frames a second: enough to see each other, and the server's encoders and the
    # browsers of a journey (up to five with video) leave room for the rest of the suite on two cores.
    *(
        "--use-fake-device-for-media-stream=fps=10" if arg == "--use-fake-device-for-media-stream" else arg
        for arg in CHROMIUM_ARGS
    ),
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def journey_browser() -> Iterator[Browser]:
    """One headless Chromium per module, with fake camera and microphone, allowed to play sound."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=JOURNEY_CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def demo_database(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """The demo loaded once per test process at the journeys' starting moment (08:00 on a Monday in the
    colony), into a copy of the migrated template; each journey module serves a copy of it."""
    start = journey_start(datetime.now(UTC))
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    shutil.copyfile(sqlite_template, path)
    settings = Settings(mode="test", database_url=f"sqlite:///{path}", secret_key=TEST_SECRET)  # type: ignore[arg-type]
    ctx = AppContext(settings=settings, db=Database.from_url(settings.database_url), clock=lambda: start)
    try:
        load_demo(ctx)
    finally:
        ctx.db.dispose()
    return path, start


@pytest.fixture(scope="module")
def journey(
    demo_database: tuple[Path, datetime], tmp_path_factory: pytest.TempPathFactory, journey_browser: Browser
) -> Iterator[Journey]:
    """The demo, served for the module's journeys; its clock starts at 08:00 on a Monday in the colony."""
    root = tmp_path_factory.mktemp("journey")
    database = root / "openvisit.sqlite3"
    template, start = demo_database
    shutil.copyfile(template, database)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    clock = MovableClock(start)
    with smtp_server() as smtp:
        settings = Settings(
            mode="test",
            database_url=f"sqlite:///{database}",
            secret_key=TEST_SECRET,  # type: ignore[arg-type]
            var_dir=root / "var",
            base_url=base_url,
            require_staff_totp=True,
            smtp_port=smtp.port,
            delivery_seconds=1,
            sweep_seconds=0,
            media_engine="aiortc",
            media_workers=0,
        )
        ctx = AppContext(settings=settings, db=Database.from_url(settings.database_url), clock=clock)
        import uvicorn

        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, ctx=ctx), log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = wall_clock.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and wall_clock.monotonic() < deadline, "the server did not start"
            wall_clock.sleep(0.02)
        state = Journey(base_url, ctx, clock, smtp.mailbox, journey_browser)
        try:
            yield state
        finally:
            state.close_all()
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
            ctx.db.dispose()


@pytest.fixture
def people(journey: Journey) -> Iterator[Journey]:
    """The module's journey, with every browser a test opened closed after it, and no script errors.
    Assertions on a page wait as long as any step may take (the media of several browsers and the
    server share the machine's cores)."""
    journey.errors.clear()
    expect.set_options(timeout=WAIT_MS)
    try:
        yield journey
        journey.assert_no_page_errors()
    finally:
        expect.set_options(timeout=PLAYWRIGHT_EXPECT_MS)
        journey.close_all()
