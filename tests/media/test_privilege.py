"""Privilege in the media layer: a legal visit never gets a recorder and refuses every monitor."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from openvisit.domain.enums import VisitKind
from openvisit.media.engine import PrivilegedVisit, Side, VisitMedia
from openvisit.media.recorder import Recorder, events_path
from openvisit.media.room import MediaTuning, Room
from openvisit.media.synthetic import BLUE, RED, Monitor, Participant
from tests.media.conftest import (
    RESIDENT_TONE,
    VISITOR_TONE,
    WAIT,
    close_all,
    hears,
    join,
    legal,
    media_settings,
    run,
    running,
    sees,
)


def peer_connections() -> int:
    """Peer connections alive in this process."""
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


def test_a_legal_visit_is_neither_recorded_nor_watched(tmp_path: Path, recordings: Path) -> None:
    recorders_before = Recorder.created

    async def scenario() -> None:
        # The worker thread runs in this process, so its recorders and peer connections can be counted.
        async with running(media_settings(tmp_path, workers=0)) as (engine, _events):
            with pytest.raises(PrivilegedVisit):
                await engine.open_visit(
                    VisitMedia(20, VisitKind.LEGAL, datetime.now(UTC), recordings / "20.webm")
                )
            assert await engine.status(20) is None

            await engine.open_visit(legal(20))
            visitor, resident = Participant(RED, VISITOR_TONE), Participant(BLUE, RESIDENT_TONE)
            monitor = Monitor()
            try:
                await join(engine, 20, Side.VISITOR, visitor)
                await join(engine, 20, Side.RESIDENT, resident)
                await visitor.video.wait_until(sees(BLUE), WAIT)
                await resident.video.wait_until(sees(RED), WAIT)
                await resident.audio.wait_until(hears(VISITOR_TONE), WAIT)
                status = await engine.status(20)
                assert status is not None
                assert status.kind is VisitKind.LEGAL
                assert not status.recording
                assert status.recording_path is None

                offer = await monitor.offer()
                connections = peer_connections()
                with pytest.raises(PrivilegedVisit):
                    await engine.subscribe_monitor(20, "officer", offer)
                assert peer_connections() == connections
                await engine.warn(20, "A warning is shown, never recorded")
                await asyncio.sleep(0.5)
                assert monitor.received() == 0
                assert monitor.pc.connectionState == "new"
                status = await engine.status(20)
                assert status is not None
                assert status.monitors == 0
                assert await engine.close_visit(20) is None
            finally:
                await close_all(visitor, resident, monitor)

    run(scenario())
    assert Recorder.created == recorders_before
    assert list(recordings.iterdir()) == []


def test_the_room_and_the_recorder_refuse_a_legal_visit_themselves(tmp_path: Path) -> None:
    path = tmp_path / "legal.webm"
    with pytest.raises(PrivilegedVisit):
        Recorder(path, VisitKind.LEGAL)
    assert not path.exists()
    assert not events_path(path).exists()

    def emit(event: object) -> None:
        raise AssertionError(f"nothing to report: {event}")

    with pytest.raises(PrivilegedVisit):
        Room(VisitMedia(21, VisitKind.LEGAL, datetime.now(UTC), path), [], MediaTuning(), emit)

    async def scenario() -> None:
        room = Room(VisitMedia(21, VisitKind.LEGAL, datetime.now(UTC), None), [], MediaTuning(), emit)
        await room.open()
        monitor = Monitor()
        try:
            offer = await monitor.offer()
            connections = peer_connections()
            with pytest.raises(PrivilegedVisit):
                await room.subscribe_monitor("officer", offer)
            assert peer_connections() == connections
            assert room.recorder is None
        finally:
            await monitor.close()
            assert await room.close() is None

    run(scenario())
    assert not path.exists()
