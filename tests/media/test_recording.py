"""Recordings: both sides side by side with their voices, crash safety, recovery."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
from pathlib import Path

from openvisit.media.engine import MediaEventKind, Side
from openvisit.media.recorder import events_path, inspect_recording, recover_recordings
from openvisit.media.synthetic import BLACK, BLUE, RED, Participant, near
from tests.media.conftest import (
    RESIDENT_TONE,
    VISITOR_TONE,
    WAIT,
    close_all,
    join,
    loudest,
    media_settings,
    read_recording,
    rms,
    run,
    running,
    sees,
    social,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_recording_holds_both_sides_side_by_side_with_their_voices(
    tmp_path: Path, recordings: Path
) -> None:
    path = recordings / "10.webm"

    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=0)) as (engine, _events):
            await engine.open_visit(social(10, path))
            # Different sizes on purpose: the recording's size is fixed, each side is scaled into it.
            visitor = Participant(RED, VISITOR_TONE, width=640, height=480)
            resident = Participant(BLUE, RESIDENT_TONE, width=320, height=240)
            try:
                await asyncio.sleep(0.3)  # a moment with nobody there: both halves black
                await join(engine, 10, Side.VISITOR, visitor)
                await join(engine, 10, Side.RESIDENT, resident)
                await visitor.video.wait_until(sees(BLUE), WAIT)
                await resident.video.wait_until(sees(RED), WAIT)
                await resident.video.wait_until(lambda r: r.frames >= 40, WAIT)
                await engine.warn(10, "Please keep your phone away")
                result = await engine.close_visit(10)
            finally:
                await close_all(visitor, resident)
        assert result is not None
        assert result.path == path
        assert result.playable
        assert result.bytes == path.stat().st_size
        assert result.sha256 == sha256(path)
        assert 2.0 < result.duration_seconds < 60

    run(scenario())
    recording = read_recording(path)
    assert recording.video_frames >= 20
    first_left, first_right = recording.pictures[0]
    assert near(first_left, BLACK)
    assert near(first_right, BLACK)
    both = [(left, right) for left, right in recording.pictures if near(left, RED) and near(right, BLUE)]
    assert len(both) >= 10
    # Stereo: the visitor's voice on the left, the resident's on the right (the later half, when both
    # were there).
    half = len(recording.left) // 2
    assert abs(loudest(recording.left[half:]) - VISITOR_TONE) < 20
    assert abs(loudest(recording.right[half:]) - RESIDENT_TONE) < 20
    assert rms(recording.left[half:]) > 0.05
    assert rms(recording.right[half:]) > 0.05
    events = [json.loads(line) for line in events_path(path).read_text(encoding="utf-8").splitlines()]
    assert {"event": "warning", "text": "Please keep your phone away"}.items() <= next(
        e for e in events if e["event"] == "warning"
    ).items()


def test_a_killed_worker_leaves_a_playable_recording_and_is_replaced(
    tmp_path: Path, recordings: Path
) -> None:
    path = recordings / "11.webm"

    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=1)) as (engine, events):
            await engine.open_visit(social(11, path))
            visitor, resident = Participant(RED, VISITOR_TONE), Participant(BLUE, RESIDENT_TONE)
            try:
                await join(engine, 11, Side.VISITOR, visitor)
                await join(engine, 11, Side.RESIDENT, resident)
                await visitor.video.wait_until(sees(BLUE), WAIT)
                await resident.video.wait_until(sees(RED), WAIT)
                await resident.video.wait_until(lambda r: r.frames >= 45, WAIT)  # about 3 s recorded
                pid = engine.worker_pid(11)
                assert pid is not None
                assert pid != os.getpid()

                os.kill(pid, signal.SIGKILL)

                await events.wait_for(MediaEventKind.SIDE_LOST, Side.VISITOR)
                await events.wait_for(MediaEventKind.SIDE_LOST, Side.RESIDENT)
                await events.wait_for(MediaEventKind.RECORDING_FAILED)
                [failed] = events.of(MediaEventKind.RECORDING_FAILED)
                assert failed.recording_path == path
                assert failed.detail == "worker_lost"
                assert await engine.status(11) is None
                async with asyncio.timeout(WAIT):
                    while len(engine.worker_pids()) != 1 or engine.worker_pids()[0] == pid:
                        await asyncio.sleep(0.05)
                # The new worker takes visits again.
                await engine.open_visit(social(12, None))
                status = await engine.status(12)
                assert status is not None
                assert engine.worker_pid(12) != pid
                [recovered] = await engine.recover_recordings([path])
            finally:
                await close_all(visitor, resident)
        assert recovered.playable
        assert recovered.duration_seconds > 1.0
        assert recovered.bytes == path.stat().st_size
        assert recovered.sha256 == sha256(path)

    run(scenario())
    recording = read_recording(path)
    assert any(near(left, RED) and near(right, BLUE) for left, right in recording.pictures)
    assert rms(recording.left) > 0.01
    assert rms(recording.right) > 0.01
    assert "recording_recovered" in events_path(path).read_text(encoding="utf-8")


def test_a_file_that_is_no_recording_is_reported_unplayable(tmp_path: Path) -> None:
    junk = tmp_path / "junk.webm"
    junk.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(2000))
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    results = recover_recordings([junk, empty])
    assert [r.playable for r in results] == [False, False]
    assert [r.bytes for r in results] == [2004, 0]
    assert results[0].sha256 == sha256(junk)
    assert inspect_recording(empty).duration_seconds == 0
