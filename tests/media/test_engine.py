"""The engine around the rooms: workers, the caller's event loop, configuration."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from openvisit.media.aiortc_engine import AiortcEngine
from openvisit.media.engine import MediaError, RoomNotOpen, Side
from openvisit.media.room import ice_configuration
from openvisit.media.synthetic import BLUE, GREEN, RED, Participant
from openvisit.settings import Settings
from tests.conftest import TEST_SECRET
from tests.media.conftest import (
    RESIDENT_TONE,
    VISITOR_TONE,
    WAIT,
    close_all,
    join,
    media_settings,
    run,
    running,
    sees,
    social,
)

HEARTBEAT = 0.02
LONGEST_PAUSE = 1.0
"""The caller's loop may fall behind its heartbeat on a shared machine, but never by this much: media
work done on it (encoding, decoding, joining a thread) would stop it for much longer over a test."""


def test_the_callers_loop_keeps_ticking_while_two_visits_run_in_two_workers(
    tmp_path: Path, recordings: Path
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        beats: list[float] = []

        async def heartbeat() -> None:
            while True:
                beats.append(loop.time())
                await asyncio.sleep(HEARTBEAT)

        async with running(media_settings(tmp_path, workers=2)) as (engine, _events):
            ticking = asyncio.create_task(heartbeat())
            peers = [
                Participant(RED, VISITOR_TONE),
                Participant(BLUE, RESIDENT_TONE),
                Participant(GREEN, VISITOR_TONE),
                Participant(RED, RESIDENT_TONE),
            ]
            try:
                await engine.open_visit(social(30, recordings / "30.webm"))
                await engine.open_visit(social(31, recordings / "31.webm"))
                assert engine.worker_pid(30) != engine.worker_pid(31)  # the least loaded takes each
                await join(engine, 30, Side.VISITOR, peers[0])
                await join(engine, 30, Side.RESIDENT, peers[1])
                await join(engine, 31, Side.VISITOR, peers[2])
                await join(engine, 31, Side.RESIDENT, peers[3])
                await peers[0].video.wait_until(sees(BLUE), WAIT)
                await peers[1].video.wait_until(sees(RED), WAIT)
                await peers[2].video.wait_until(sees(RED), WAIT)
                await peers[3].video.wait_until(sees(GREEN), WAIT)
                for peer in peers:
                    await peer.video.wait_until(lambda r: r.frames >= 45, WAIT)
                results = await asyncio.gather(engine.close_visit(30), engine.close_visit(31))
            finally:
                ticking.cancel()
                await close_all(*peers)
        assert all(r is not None and r.playable for r in results)
        gaps = [b - a for a, b in itertools.pairwise(beats)]
        assert len(gaps) > 50
        assert max(gaps) < LONGEST_PAUSE

    run(scenario())


def test_the_engine_uses_only_the_configured_ice_servers(tmp_path: Path) -> None:
    # Empty means host candidates only; aiortc would use a public STUN server for None.
    assert ice_configuration([]).iceServers == []
    configured = ice_configuration(["stun:stun.example.org:3478"])
    assert [s.urls for s in configured.iceServers or []] == ["stun:stun.example.org:3478"]
    with pytest.raises(ValueError, match="ICE"):
        AiortcEngine(
            Settings(
                mode="test",
                secret_key=TEST_SECRET,  # type: ignore[arg-type]
                var_dir=tmp_path,
                ice_servers=["http://stun.example.org"],
            )
        )


def test_calls_on_a_room_that_is_not_open_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = AiortcEngine(media_settings(tmp_path, workers=0))
        with pytest.raises(MediaError):
            await engine.open_visit(social(40, None))  # not started
        async with running(media_settings(tmp_path, workers=0)) as (engine, _events):
            peer = Participant(RED, VISITOR_TONE)
            try:
                with pytest.raises(RoomNotOpen):
                    await engine.admit(40, Side.VISITOR, await peer.offer())
                with pytest.raises(RoomNotOpen):
                    await engine.set_video_paused(40, Side.VISITOR, True)
                await engine.drop(40, Side.VISITOR)  # nothing to do
                assert await engine.close_visit(40) is None
                await engine.open_visit(social(40, None))
                await engine.open_visit(social(40, None))  # idempotent
                await engine.drop(40, Side.VISITOR)
                assert await engine.status(40) is not None
            finally:
                await peer.close()

    run(scenario())
