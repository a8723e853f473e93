"""After a restart (SQLite and PostgreSQL): the live rooms find what the last run left — visits in progress
and recordings still being written — and close or keep them consistently, with the real engine examining
the files (no worker is started for that)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from openvisit.domain.enums import RecordingStatus, VisitStatus
from openvisit.media.aiortc_engine import AiortcEngine
from openvisit.services import recordings
from openvisit.services.context import AppContext
from openvisit.services.live_rooms import LiveRooms
from tests.conftest import FrozenClock
from tests.live.support import build, event_kinds, load, visit

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await scenario

    return asyncio.run(bounded())


def write_webm(path: Path, seconds: int = 2) -> None:
    """A small WebM with VP8 video and Opus sound, as the recorder leaves one (its index unwritten or not)."""
    with av.open(str(path), mode="w", format="webm") as out:
        video = out.add_stream("libvpx", rate=15)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("libopus", rate=48_000)
        audio.layout = "mono"
        for n in range(15 * seconds):
            frame = VideoFrame.from_ndarray(np.full((48, 64, 3), n * 4 % 255, np.uint8), format="rgb24")
            frame.pts, frame.time_base = n, Fraction(1, 15)
            out.mux(video.encode(frame))
        for n in range(50 * seconds):
            sound = AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
            sound.sample_rate, sound.pts, sound.time_base = 48_000, n * 960, Fraction(1, 48_000)
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


async def _until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.02)


def test_a_restart_closes_what_ended_recovers_recordings_and_waits_for_the_rest(
    ctx: AppContext, clock: FrozenClock
) -> None:
    scene = build(ctx)
    over = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=45), status=VisitStatus.IN_PROGRESS)
    running = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=10), status=VisitStatus.IN_PROGRESS)
    written = recordings.begin(ctx, over)
    write_webm(written.path)
    never_written = recordings.begin(ctx, running)
    rooms = LiveRooms(ctx, AiortcEngine(ctx.settings), tick=0.01, wall_refresh_seconds=0)

    async def scenario() -> None:
        recovery = await rooms.recover()
        assert [e.visit_id for e in recovery.failed] == [over]
        assert [v.visit_id for v in recovery.open] == [running]
        assert rooms.hub.scheduled(running)
        clock.advance(minutes=21)  # the running visit's end passes and nobody came back
        await _until(lambda: load(ctx, running).status is not VisitStatus.IN_PROGRESS)
        await rooms.stop()

    run(scenario())
    assert (load(ctx, over).status, load(ctx, over).reason) == (VisitStatus.FAILED, "server_restart")
    row = load(ctx, running)
    assert (row.status, row.reason) == (VisitStatus.FAILED, "server_restart")
    assert row.priority_rebooking and not row.counts_toward_allowance
    assert event_kinds(ctx, running)[-2:] == ["recovered", "ended"]
    (finalised,) = recordings.visit_recordings(ctx, over)
    assert finalised.status is RecordingStatus.FINALISED
    assert finalised.sha256 == hashlib.sha256(written.path.read_bytes()).hexdigest()
    assert finalised.bytes == written.path.stat().st_size
    assert finalised.duration_seconds is not None and finalised.duration_seconds > 1
    (damaged,) = recordings.visit_recordings(ctx, running)
    assert damaged.status is RecordingStatus.DAMAGED
    assert damaged.id == never_written.recording_id


def test_a_damaged_file_is_kept_and_marked(ctx: AppContext, clock: FrozenClock) -> None:
    scene = build(ctx)
    visit_id = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=45), status=VisitStatus.IN_PROGRESS)
    start = recordings.begin(ctx, visit_id)
    start.path.write_bytes(b"\x1a\x45\xdf\xa3 not really matroska")
    rooms = LiveRooms(ctx, AiortcEngine(ctx.settings), tick=0.01, wall_refresh_seconds=0)

    async def scenario() -> None:
        await rooms.recover()
        await rooms.stop()

    run(scenario())
    (row,) = recordings.visit_recordings(ctx, visit_id)
    assert row.status is RecordingStatus.DAMAGED
    assert row.bytes == start.path.stat().st_size
    assert start.path.exists()
