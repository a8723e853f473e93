"""Live media through the engine: both sides, monitors, pausing, replacing a side, closing a visit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from openvisit.media.engine import MediaEventKind, RoomNotOpen, Side
from openvisit.media.synthetic import BLACK, BLUE, GREEN, RED, Monitor, Participant
from tests.media.conftest import (
    RESIDENT_TONE,
    VISITOR_TONE,
    WAIT,
    close_all,
    hears,
    join,
    media_settings,
    run,
    running,
    sees,
    social,
)


def test_each_side_sees_and_hears_the_other_a_monitor_gets_both_and_a_paused_side_is_black(
    tmp_path: Path, recordings: Path
) -> None:
    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=1)) as (engine, events):
            await engine.open_visit(social(1, recordings / "1.webm"))
            visitor, resident = Participant(RED, VISITOR_TONE), Participant(BLUE, RESIDENT_TONE)
            monitor = Monitor()
            try:
                await join(engine, 1, Side.VISITOR, visitor)
                await join(engine, 1, Side.RESIDENT, resident)
                await visitor.video.wait_until(sees(BLUE), WAIT)
                await resident.video.wait_until(sees(RED), WAIT)
                await visitor.audio.wait_until(hears(RESIDENT_TONE), WAIT)
                await resident.audio.wait_until(hears(VISITOR_TONE), WAIT)
                await events.wait_for(MediaEventKind.SIDE_CONNECTED, Side.VISITOR)
                await events.wait_for(MediaEventKind.SIDE_CONNECTED, Side.RESIDENT)

                answer = await engine.subscribe_monitor(1, "officer-1", await monitor.offer())
                await monitor.accept(answer)
                await monitor.video[Side.VISITOR].wait_until(sees(RED), WAIT)
                await monitor.video[Side.RESIDENT].wait_until(sees(BLUE), WAIT)
                await monitor.audio[Side.VISITOR].wait_until(hears(VISITOR_TONE), WAIT)
                await monitor.audio[Side.RESIDENT].wait_until(hears(RESIDENT_TONE), WAIT)
                status = await engine.status(1)
                assert status is not None
                assert status.sides_connected == {Side.VISITOR, Side.RESIDENT}
                assert status.monitors == 1
                assert status.recording
                assert status.recording_path == recordings / "1.webm"
                assert status.frames_forwarded[Side.VISITOR] > 0
                assert status.frames_forwarded[Side.RESIDENT] > 0
                # Each side's picture goes on as its browser encoded it: the engine decodes it (for the
                # recording) but does not encode it again.
                assert status.frames_as_sent[Side.VISITOR] > 0
                assert status.frames_as_sent[Side.RESIDENT] > 0

                # An officer pauses the visitor's video: the resident gets black, the monitor the picture.
                await engine.set_video_paused(1, Side.VISITOR, True)
                await resident.video.wait_until(sees(BLACK), WAIT)
                watched = monitor.video[Side.VISITOR].frames
                await monitor.video[Side.VISITOR].wait_until(
                    lambda r: r.frames > watched + 10 and sees(RED)(r), WAIT
                )
                assert sees(BLACK)(resident.video)
                await visitor.video.wait_until(sees(BLUE), WAIT)  # the other direction is untouched
                status = await engine.status(1)
                assert status is not None
                assert status.paused == {Side.VISITOR}

                await engine.set_video_paused(1, Side.VISITOR, False)
                await resident.video.wait_until(sees(RED), WAIT)

                # Monitors are invisible to the sides: nothing is reported about them.
                assert {e.kind for e in events.seen} == {MediaEventKind.SIDE_CONNECTED}
                await engine.unsubscribe_monitor(1, "officer-1")
                status = await engine.status(1)
                assert status is not None
                assert status.monitors == 0
            finally:
                await close_all(visitor, resident, monitor)

    run(scenario())


def test_a_side_admitted_again_replaces_its_older_connection_and_media_resumes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=0)) as (engine, events):
            await engine.open_visit(social(2, None))
            first, resident = Participant(RED, VISITOR_TONE), Participant(BLUE, RESIDENT_TONE)
            second = Participant(GREEN, VISITOR_TONE)
            try:
                await join(engine, 2, Side.VISITOR, first)
                await join(engine, 2, Side.RESIDENT, resident)
                await resident.video.wait_until(sees(RED), WAIT)
                await first.video.wait_until(sees(BLUE), WAIT)
                resident_connection = resident.pc

                # The visitor joins again elsewhere: the new connection takes over, the old one is cut,
                # and the resident's connection goes on as it was (no new offer from the resident).
                await join(engine, 2, Side.VISITOR, second)
                await resident.video.wait_until(sees(GREEN), WAIT)
                await second.video.wait_until(sees(BLUE), WAIT)
                await second.audio.wait_until(hears(RESIDENT_TONE), WAIT)
                await resident.audio.wait_until(hears(VISITOR_TONE), WAIT)
                async with asyncio.timeout(WAIT):
                    while not (first.video.ended and first.audio.ended):
                        await asyncio.sleep(0.05)
                assert resident.pc is resident_connection
                assert resident.pc.connectionState == "connected"
                assert events.of(MediaEventKind.SIDE_LOST) == []
                assert len(events.of(MediaEventKind.SIDE_CONNECTED, Side.VISITOR)) == 2

                # The visitor's browser goes away: the side is lost, the resident sees black.
                await second.close()
                await events.wait_for(MediaEventKind.SIDE_LOST, Side.VISITOR)
                await resident.video.wait_until(sees(BLACK), WAIT)
                status = await engine.status(2)
                assert status is not None
                assert status.sides_connected == {Side.RESIDENT}
            finally:
                await close_all(first, second, resident)

    run(scenario())


def test_closing_a_visit_cuts_media_on_every_peer_at_once(tmp_path: Path, recordings: Path) -> None:
    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=1)) as (engine, _events):
            await engine.open_visit(social(3, recordings / "3.webm"))
            visitor, resident = Participant(RED, VISITOR_TONE), Participant(BLUE, RESIDENT_TONE)
            monitor, late = Monitor(), Participant(GREEN, VISITOR_TONE)
            try:
                await join(engine, 3, Side.VISITOR, visitor)
                await join(engine, 3, Side.RESIDENT, resident)
                await monitor.accept(await engine.subscribe_monitor(3, "officer", await monitor.offer()))
                await monitor.video[Side.RESIDENT].wait_until(sees(BLUE), WAIT)
                await visitor.video.wait_until(sees(BLUE), WAIT)
                await resident.video.wait_until(sees(RED), WAIT)

                result = await engine.close_visit(3)

                assert result is not None
                assert result.path == recordings / "3.webm"
                receptions = [
                    visitor.video,
                    visitor.audio,
                    resident.video,
                    resident.audio,
                    *monitor.video.values(),
                    *monitor.audio.values(),
                ]
                async with asyncio.timeout(WAIT):
                    while not all(r.ended for r in receptions):
                        await asyncio.sleep(0.02)
                assert await engine.status(3) is None
                assert await engine.close_visit(3) is None
                with pytest.raises(RoomNotOpen):
                    await engine.admit(3, Side.VISITOR, await late.offer())
            finally:
                await close_all(visitor, resident, monitor, late)

    run(scenario())
