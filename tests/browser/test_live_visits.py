"""Live visits in real Chromium: a visitor at home and a resident at a station see and hear each other
through the server; a monitoring officer watches both, warns, pauses and terminates; the recording holds
both parties; a legal visit is never recorded and refuses the monitor."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import sqlalchemy as sa
from playwright.sync_api import Browser, Locator, Page, expect

from openvisit.db.models import AuditEntry, Recording, Visit
from openvisit.domain.enums import RecordingStatus, VisitKind, VisitStatus
from openvisit.services.context import AppContext
from tests.browser.conftest import WAIT_MS, build_scene, join_call, open_as, wait_decoding

PROMPT_MS = 5_000
"""Termination must reach both sides promptly: the ended screen within this (the issue asks for media
cut within a second; the browsers here share two cores with the server and each other)."""


def tile_of(wall: Page, visit_id: int) -> Locator:
    return wall.locator(f'[data-visit-id="{visit_id}"]')


def _visit(ctx: AppContext, visit_id: int) -> Visit:
    with ctx.db.read() as s:
        visit = s.get(Visit, visit_id)
        assert visit is not None
        return visit


def _finalised_recording(ctx: AppContext, visit_id: int, page: Page) -> Recording:
    """The visit's recording once the recorder has finished it (polling, with the page's clock)."""
    for _ in range(WAIT_MS // 250):
        with ctx.db.read() as s:
            rows = s.execute(sa.select(Recording).where(Recording.visit_id == visit_id)).scalars().all()
        if rows and all(r.status is not RecordingStatus.RECORDING for r in rows):
            assert [r.status for r in rows] == [RecordingStatus.FINALISED], rows
            return rows[0]
        page.wait_for_timeout(250)
    raise AssertionError("the recording was not finalised")


def assert_holds_both_parties(path: Path) -> None:
    """The recorder puts the visitor on the left and the resident on the right, in the picture and in
    the stereo sound. A half shows someone when it is not flat (a missing side is recorded black;
    Chromium's fake camera draws a moving picture), a channel carries someone when it is not silent (its
    fake microphone beeps)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        shown = {"visitor": 0, "resident": 0}
        frames = 0
        for frame in container.decode(video):
            frames += 1
            luma = frame.to_ndarray(format="gray")
            half = luma.shape[1] // 2
            shown["visitor"] += int(luma[:, :half].std() > 10)
            shown["resident"] += int(luma[:, half:].std() > 10)
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        channels = audio.channels
        heard = np.zeros(2, dtype=int)
        samples = 0
        for chunk in container.decode(audio):
            sound = chunk.to_ndarray()
            if not chunk.format.is_planar:
                sound = sound.reshape(-1, channels).T
            heard += (np.abs(sound).mean(axis=1) > 1e-3).astype(int)
            samples += sound.shape[1]
    assert frames > 10 and shown["visitor"] > 5 and shown["resident"] > 5, (frames, shown)
    assert channels == 2 and samples > 48_000, (channels, samples)
    assert heard[0] > 5 and heard[1] > 5, f"audio frames with sound (visitor, resident): {heard}"


def test_a_social_visit_end_to_end(browser: Browser, live_server: str, live_ctx: AppContext) -> None:
    scene = build_scene(live_ctx)
    visit_id = scene.visit_id
    opened: list[Page] = []
    errors: list[str] = []

    def page_of(role: str) -> Page:
        _, page = open_as(browser, live_server, scene.tokens[role])
        page.on("pageerror", lambda exc: errors.append(f"{role}: {exc}"))
        opened.append(page)
        return page

    try:
        visitor, station, wall = page_of("visitor"), page_of("station"), page_of("officer")
        join_call(visitor, f"/visits/{visit_id}/join")
        expect(visitor.locator("#privacy-notice")).to_contain_text("This visit is monitored and recorded")
        join_call(station, f"/station/visits/{visit_id}")

        # Each side decodes the other's video, carried through the server.
        wait_decoding(visitor, "#remote-video")
        wait_decoding(station, "#remote-video")
        assert _visit(live_ctx, visit_id).status is VisitStatus.IN_PROGRESS

        # The monitor sees the visit and receives both sides.
        wall.goto("/staff/monitor")
        tile = tile_of(wall, visit_id)
        expect(tile).to_be_visible()
        tile.get_by_role("button", name="Watch").click()
        wait_decoding(wall, f'[data-visit-id="{visit_id}"] video[data-side="visitor"]')
        wait_decoding(wall, f'[data-visit-id="{visit_id}"] video[data-side="resident"]')
        assert tile.locator("video").evaluate_all("videos => videos.map(v => v.muted)") == [True, True]
        tile.get_by_role("button", name="Listen").click()
        assert tile.locator("video").evaluate_all("videos => videos.map(v => v.muted)") == [False, False]

        # A warning reaches both sides, and nobody is disconnected by it.
        tile.get_by_label("Warning to both sides").fill("Please keep the phone away from the screen.")
        tile.get_by_role("button", name="Send warning").click()
        for page in (visitor, station):
            expect(page.locator("#warning-banner")).to_be_visible()
            expect(page.locator("#warning-text")).to_have_text("Please keep the phone away from the screen.")
        wait_decoding(visitor, "#remote-video")

        # Pausing the visitor's video tells both sides.
        tile.get_by_role("button", name="Pause the visitor's video").click()
        expect(visitor.locator("#paused-mine")).to_be_visible()
        expect(station.locator("#paused-theirs")).to_be_visible()

        # Termination, with a reason and a confirmation, ends both calls promptly.
        tile.get_by_role("button", name="End this visit…").click()
        tile.get_by_label("Reason").select_option("conduct")
        tile.get_by_label("Note (kept with the visit)").fill("Phone on screen after a warning.")
        tile.get_by_role("button", name="End the visit now").click()
        for page in (visitor, station):
            expect(page.locator("#ended")).to_be_visible(timeout=PROMPT_MS)
            expect(page.locator("#ended")).to_have_attribute("data-outcome", "terminated")
            expect(page.locator("#call")).to_be_hidden()
        expect(visitor.locator("#ended-title")).to_have_text("The visit has ended.")
        expect(visitor.locator("#ended-detail")).to_contain_text("Conduct")
        expect(visitor.locator("#visit-status")).to_have_text("Terminated")
        expect(visitor.locator("#rejoin")).to_be_hidden()
        expect(tile).to_have_attribute("data-status", "ended")

        visit = _visit(live_ctx, visit_id)
        assert (visit.status, visit.reason) == (VisitStatus.TERMINATED, "conduct")
        with live_ctx.db.read() as s:
            actions = set(
                s.execute(
                    sa.select(AuditEntry.action).where(
                        AuditEntry.object_type == "visit", AuditEntry.object_id == str(visit_id)
                    )
                ).scalars()
            )
        assert {"visit.started", "visit.warned", "visit.video_paused", "visit.terminated"} <= actions, actions

        recording = _finalised_recording(live_ctx, visit_id, wall)
        assert recording.sha256 and recording.bytes
        assert_holds_both_parties(Path(recording.path))

        # An investigator plays it in the browser.
        player = page_of("investigator")
        player.goto(f"/staff/recordings/{recording.id}")
        player.wait_for_function(
            "() => { const v = document.querySelector('video.player');"
            " return v.readyState >= 2 && v.videoWidth > 0; }"
        )
        assert not errors, errors
    finally:
        for page in opened:
            page.context.close()


def test_a_legal_visit_is_not_recorded_and_refuses_the_monitor(
    browser: Browser, live_server: str, live_ctx: AppContext
) -> None:
    scene = build_scene(live_ctx, kind=VisitKind.LEGAL)
    visit_id = scene.visit_id
    opened: list[Page] = []
    errors: list[str] = []

    def page_of(role: str) -> Page:
        _, page = open_as(browser, live_server, scene.tokens[role])
        page.on("pageerror", lambda exc: errors.append(f"{role}: {exc}"))
        opened.append(page)
        return page

    try:
        visitor, station, wall = page_of("visitor"), page_of("station"), page_of("officer")
        join_call(visitor, f"/visits/{visit_id}/join")
        expect(visitor.locator("#privacy-notice")).to_contain_text(
            "Privileged legal visit: not recorded, not monitored"
        )
        join_call(station, f"/station/visits/{visit_id}")
        wait_decoding(visitor, "#remote-video")
        wait_decoding(station, "#remote-video")

        # The wall shows a privileged tile: no video, nothing to watch.
        wall.goto("/staff/monitor")
        tile = tile_of(wall, visit_id)
        expect(tile).to_contain_text("Privileged legal visit: not recorded, not monitored")
        assert tile.locator("video").count() == 0
        assert tile.get_by_role("button").count() == 0
        # Whatever a page sends, the server refuses to let it watch, says so, and audits the attempt.
        wall.evaluate("async (id) => (await import('/static/live/wall.js')).activeWall.watch(id)", visit_id)
        status = tile.locator('[data-part="status"]')
        expect(status).to_have_attribute("data-code", "media.privileged")
        expect(status).to_contain_text("privileged")
        with live_ctx.db.read() as s:
            refused = s.execute(
                sa.select(sa.func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.action == "visit.watch_refused", AuditEntry.object_id == str(visit_id))
            ).scalar_one()
        assert refused == 1

        # The call went on. A socket that drops is reconnected, and the video comes back.
        wait_decoding(visitor, "#remote-video")
        visitor.evaluate(
            "async () => (await import('/static/live/call.js')).activeCall.channel.socket.close()"
        )
        expect(visitor.locator("#reconnect-notice")).to_be_visible()
        expect(visitor.locator("#reconnect-notice")).to_be_hidden()
        wait_decoding(visitor, "#remote-video", key="after reconnecting")
        wait_decoding(station, "#remote-video", key="after the visitor reconnected")

        # Joining again on another device replaces the first one, which is told why.
        second = page_of("visitor")
        join_call(second, f"/visits/{visit_id}/join")
        expect(visitor.locator("#ended")).to_be_visible()
        expect(visitor.locator("#ended-title")).to_have_text("You joined from another device.")
        wait_decoding(second, "#remote-video")

        # Both leave.
        for page in (second, station):
            page.get_by_role("button", name="Leave the visit").click()
            expect(page.locator("#ended")).to_be_visible()
        with live_ctx.db.read() as s:
            assert s.execute(sa.select(Recording).where(Recording.visit_id == visit_id)).first() is None
        recordings = live_ctx.settings.recordings_path
        assert not recordings.exists() or not any(recordings.rglob("*")), list(recordings.rglob("*"))
        assert not errors, errors
    finally:
        for page in opened:
            page.context.close()
