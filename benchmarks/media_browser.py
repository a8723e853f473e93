"""Join → first frame in a real browser: Debian's headless Chromium (fake camera and microphone) joins a
live visit through the whole server (pages, signalling socket, aiortc engine) while the resident's
station, another Chromium page, is already in the call.

The time is the call page's own (static/live/call.js): from the click on "Join" (after the camera check
and the rules) to the first remote video frame presented by the <video> element
(requestVideoFrameCallback), so it covers the socket, the hello, the offer with its ICE candidates, the
answer, ICE and DTLS, the first keyframe and its decoding. The visitor page is opened afresh for each
join; the resident stays connected.

    python -m benchmarks.media_browser [--joins 10]

prints one JSON object; `join_to_first_frame` is what benchmarks/media.py calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

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
STEP_MS = 30_000
SECRET = "benchmark-secret-key-0123456789abcdef0123"  # noqa: S105 - a throwaway server of the benchmark


@contextmanager
def _server(var_dir: Path) -> Iterator[tuple[str, Any]]:
    """The app on a migrated SQLite file, served by uvicorn in a thread; its URL and context."""
    from tests.serving import serve_in_thread

    from openvisit.db import migrate
    from openvisit.db.database import Database
    from openvisit.services.context import AppContext, utc_now
    from openvisit.settings import Settings
    from openvisit.web.app import create_app

    url = f"sqlite:///{var_dir / 'openvisit.sqlite3'}"
    migrate.upgrade(url)
    settings = Settings(
        mode="test",
        database_url=url,
        secret_key=SECRET,  # type: ignore[arg-type]
        var_dir=var_dir,
        sweep_seconds=0,
        delivery_seconds=0,
    )
    ctx = AppContext(settings=settings, db=Database.from_url(url), clock=utc_now)
    try:
        with serve_in_thread(create_app(settings, ctx=ctx)) as port:
            yield f"http://127.0.0.1:{port}", ctx
    finally:
        ctx.db.dispose()


def _visit_with_sessions(ctx: Any) -> tuple[int, str, str]:
    """A social home visit going on now, its lead visitor's and its station's session tokens."""
    from openvisit.db.models import (
        AuthSession,
        Facility,
        HousingUnit,
        Resident,
        Station,
        UserAccount,
        Visit,
        Visitor,
        VisitParticipant,
    )
    from openvisit.domain.enums import (
        AccountKind,
        ParticipantRole,
        StationKind,
        VisitKind,
        VisitMode,
        VisitStatus,
    )
    from openvisit.services.auth import new_token, token_digest
    from openvisit.services.context import utc_now

    now = utc_now()
    with ctx.db.write() as s:
        facility = Facility(code="BENCH", name="Bench", timezone="Asia/Krasnoyarsk", city="Krasnoyarsk")
        s.add(facility)
        s.flush()
        unit = HousingUnit(facility_id=facility.id, code="U", name="U")
        s.add(unit)
        s.flush()
        kiosk = Station(
            code="BK1", name="Kiosk", kind=StationKind.UNIT_KIOSK, facility_id=facility.id, unit_id=unit.id
        )
        resident = Resident(
            number="B-1",
            last_name="Petrov",
            first_name="Ivan",
            birth_date=date(1985, 5, 5),
            facility_id=facility.id,
            unit_id=unit.id,
            language="en",
        )
        user = UserAccount(
            email="bench@example.org",
            password_hash="-",  # noqa: S106 - no password: a session row logs in
            kind=AccountKind.VISITOR,
            display_name="B",
        )
        s.add_all([kiosk, resident, user])
        s.flush()
        visitor = Visitor(
            user_id=user.id, last_name="Petrova", first_name="Anna", birth_date=date(1986, 1, 1)
        )
        s.add(visitor)
        s.flush()
        start: datetime = now - timedelta(minutes=1)
        visit = Visit(
            kind=VisitKind.SOCIAL,
            mode=VisitMode.HOME,
            status=VisitStatus.APPROVED,
            facility_id=facility.id,
            resident_id=resident.id,
            station_id=kiosk.id,
            starts_at=start,
            ends_at=start + timedelta(minutes=60),
        )
        s.add(visit)
        s.flush()
        s.add(VisitParticipant(visit_id=visit.id, visitor_id=visitor.id, role=ParticipantRole.LEAD))
        tokens = []
        for subject in ({"user_id": user.id}, {"resident_id": resident.id, "station_id": kiosk.id}):
            token = new_token()
            s.add(
                AuthSession(
                    token_hash=token_digest(token),
                    second_factor_done=True,
                    last_seen_at=now,
                    expires_at=now + timedelta(hours=2),
                    **subject,
                )
            )
            tokens.append(token)
        return visit.id, tokens[0], tokens[1]


def join_to_first_frame(
    joins: int = 10, *, chromium: str | None = None, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Join a visit `joins` times from a fresh visitor page in Chromium and time each join to the first
    remote frame shown; the median and the spread, in milliseconds."""
    from playwright.sync_api import Page, sync_playwright

    browser_path = chromium or os.environ.get("OPENVISIT_CHROMIUM", "/usr/bin/chromium")
    times: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="ov-bench-browser-") as folder,
        _server(Path(folder)) as (base, ctx),
    ):
        visit_id, visitor_token, station_token = _visit_with_sessions(ctx)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)

            def page_for(token: str) -> Page:
                context = browser.new_context(base_url=base, permissions=["camera", "microphone"])
                context.add_cookies([{"name": "ov_session", "value": token, "url": base}])
                page = context.new_page()
                page.set_default_timeout(STEP_MS)
                return page

            def join(page: Page, path: str) -> None:
                page.goto(path)
                page.wait_for_function(
                    "() => document.getElementById('device-preview').videoWidth > 0", polling=100
                )
                page.locator("#rules-accept").check()
                page.locator("#join").click()

            station = page_for(station_token)
            join(station, f"/station/visits/{visit_id}")
            for n in range(joins):
                visitor = page_for(visitor_token)
                join(visitor, f"/visits/{visit_id}/join")
                shown = visitor.wait_for_function(
                    "() => document.getElementById('remote-video').dataset.firstFrameMs", polling=50
                )
                times.append(float(shown.json_value()))
                say(f"join {n + 1}: {times[-1]:.0f} ms")
                visitor.context.close()
            station.context.close()
            browser.close()
    ordered = sorted(times)
    return {
        "join_to_first_frame_ms_p50": round(statistics.median(ordered), 1),
        "join_to_first_frame_ms_min": round(ordered[0], 1),
        "join_to_first_frame_ms_max": round(ordered[-1], 1),
        "join_to_first_frame_source": "chromium",
        "joins": len(ordered),
        "times_ms": [round(t, 1) for t in times],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.media_browser", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--joins", type=int, default=10)
    args = parser.parse_args(argv)
    figures = join_to_first_frame(args.joins, say=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
