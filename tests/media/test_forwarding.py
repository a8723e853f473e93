"""A side's picture is forwarded as its sender encoded it, from a keyframe on; the feed's encoder takes
over whenever it cannot be (another source, a keyframe that does not come)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiortc.mediastreams import MediaStreamTrack

from openvisit.media import feeds
from openvisit.media.engine import Side
from openvisit.media.feeds import PacketTrack, Timeline, VideoFeed, is_vp8_keyframe
from openvisit.media.room import cap_video_bitrate
from openvisit.media.synthetic import BLUE, RED, Participant
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

KEY = bytes([0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A])  # frame tag bit 0 clear: a key frame
DELTA = bytes([0x31, 0x01, 0x00])


class _Source(MediaStreamTrack):
    """A connection's incoming picture; only its identity matters here."""

    kind = "video"

    async def recv(self) -> Any:
        await asyncio.Event().wait()


def _feed() -> VideoFeed:
    def ignore(*_args: Any) -> None:
        return None

    return VideoFeed(
        Side.VISITOR,
        Timeline(asyncio.get_running_loop()),
        bitrate=600_000,
        cpu_used=16,
        on_first=ignore,
        on_ended=ignore,
        sink=None,
    )


def _queued(track: PacketTrack) -> list[bytes]:
    out = []
    while track._queue.qsize():
        packet = track._queue.get_nowait()
        assert packet is not None
        out.append(bytes(packet))
    return out


def test_vp8_keyframes_are_told_by_the_frame_tag() -> None:
    assert is_vp8_keyframe(KEY)
    assert not is_vp8_keyframe(DELTA)
    assert not is_vp8_keyframe(b"")


def test_frames_go_on_as_sent_from_a_keyframe_and_only_from_the_current_source() -> None:
    async def scenario() -> None:
        feed = _feed()
        follower = PacketTrack("video", Side.VISITOR)
        follower.follow(feed.real)
        asked: list[int] = []
        source, old = _Source(), _Source()
        feed.attach(source, ask_keyframe=lambda: asked.append(1))

        feed.forward(source, DELTA)  # nothing to start from yet
        assert _queued(follower) == []
        feed.forward(source, KEY)
        feed.forward(source, DELTA)
        feed.forward(old, KEY)  # a connection that was replaced
        assert _queued(follower) == [KEY, DELTA]
        assert feed.forwarded == 2
        assert feed.encoded == 0

        # A follower that needs a keyframe (a new monitor, a loss) makes the feed ask the sender.
        follower.request_keyframe()
        assert asked == [1]
        follower.request_keyframe()  # asked a moment ago: not again
        assert asked == [1]

        feed.detach(source)
        feed.forward(source, KEY)
        assert _queued(follower) == []
        follower.stop()

    asyncio.run(scenario())


def test_a_sender_that_does_not_answer_a_keyframe_request_is_encoded_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feeds, "KEYFRAME_WAIT_SECONDS", 0.01)

    async def scenario() -> None:
        feed = _feed()
        follower = PacketTrack("video", Side.VISITOR)
        follower.follow(feed.real)
        source = _Source()
        feed.attach(source, ask_keyframe=lambda: None)
        feed.forward(source, KEY)
        assert _queued(follower) == [KEY]

        follower.request_keyframe()
        await asyncio.sleep(0.05)
        feed.forward(source, DELTA)  # still no keyframe: the feed stops forwarding
        assert _queued(follower) == []
        assert not feed._forwarding
        assert feed._keyframe  # its encoder starts with a keyframe

        feed.forward(source, KEY)  # the sender's own keyframe: forwarded again from here
        assert _queued(follower) == [KEY]
        follower.stop()

    asyncio.run(scenario())


def test_the_answer_asks_each_side_to_send_no_more_than_the_engine_forwards() -> None:
    offer_answer = "\r\n".join(
        [
            "v=0",
            "o=- 1 1 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 0.0.0.0",
            "a=mid:0",
            "m=video 9 UDP/TLS/RTP/SAVPF 96",
            "c=IN IP4 0.0.0.0",
            "b=AS:5000",
            "a=mid:1",
            "",
        ]
    )
    capped = cap_video_bitrate(offer_answer, 600_000).split("\r\n")
    video = capped.index("m=video 9 UDP/TLS/RTP/SAVPF 96")
    assert capped[video + 1 : video + 4] == ["c=IN IP4 0.0.0.0", "b=AS:600", "a=mid:1"]
    assert [line for line in capped if line.startswith("b=")] == ["b=AS:600"]  # not on audio


def test_a_participant_that_does_not_decode_counts_the_pictures_that_reach_it(
    tmp_path: Path, recordings: Path
) -> None:
    async def scenario() -> None:
        async with running(media_settings(tmp_path, workers=0)) as (engine, _events):
            await engine.open_visit(social(1, recordings / "1.webm"))
            counting = Participant(RED, VISITOR_TONE, encoded=True, moving=True, decode=False)
            decoding = Participant(BLUE, RESIDENT_TONE, encoded=True, moving=True)
            try:
                await join(engine, 1, Side.VISITOR, counting)
                await join(engine, 1, Side.RESIDENT, decoding)
                await decoding.video.wait_until(sees(RED), WAIT)
                await counting.video.wait_until(lambda r: r.frames >= 30, WAIT)
                assert counting.video.last is None  # counted as they arrived, none decoded
                assert counting.video.fps() > 0
                status = await engine.status(1)
                assert status is not None
                # The encoded loop's keyframe answers the engine's request: both pictures go on as sent.
                assert status.frames_as_sent[Side.VISITOR] > 0
                assert status.frames_as_sent[Side.RESIDENT] > 0
            finally:
                await close_all(counting, decoding)

    run(scenario())
