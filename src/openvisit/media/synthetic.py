"""Synthetic participants: aiortc peers that stand in for browsers, to test the engine, measure it, and
check a deployment. A participant sends a picture of one colour (plain, or textured and moving, which
costs an encoder what a camera does) and a sine tone; it measures what it receives: frames, frame rate,
the time to the first frame, the colour of the latest picture and the loudest frequency of the sound.

`encoded=True` sends a short loop of packets encoded once at the start (keyframe first), so that many
participants can run on one machine without each spending a core on encoding; `decode=False` counts the
pictures it receives as they arrive complete, without decoding them (a browser would, on its own
machine), so that they take little of a machine that measures a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.codec.context import CodecContext
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.frame import VideoFrame

from openvisit.media.engine import MONITOR_ORDER, SessionDescription, Side
from openvisit.media.feeds import tap_vp8

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
SAMPLE_RATE = 48_000
AUDIO_SAMPLES = 960
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)

RGB = tuple[int, int, int]
RED: RGB = (200, 30, 30)
BLUE: RGB = (30, 60, 200)
GREEN: RGB = (40, 180, 60)
BLACK: RGB = (0, 0, 0)


def picture(rgb: RGB, width: int, height: int, texture: npt.NDArray[np.int16] | None = None) -> VideoFrame:
    """A yuv420p picture of one colour; with `texture`, its brightness varies by that much per pixel."""
    rgb_frame = VideoFrame.from_ndarray(np.full((height, width, 3), rgb, np.uint8), format="rgb24")
    yuv = rgb_frame.reformat(format="yuv420p").to_ndarray()
    if texture is not None:
        luma = yuv[:height].astype(np.int16) + texture[:height, :width]
        yuv[:height] = np.clip(luma, 16, 235).astype(np.uint8)
    return VideoFrame.from_ndarray(yuv, format="yuv420p")


def mean_rgb(frame: VideoFrame) -> RGB:
    """The average colour of a picture (or of a part cut out of one)."""
    small = frame.reformat(width=32, height=24, format="rgb24").to_ndarray()
    r, g, b = (int(v) for v in small.reshape(-1, 3).mean(axis=0))
    return (r, g, b)


def near(seen: RGB, wanted: RGB, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(seen, wanted, strict=True))


def dominant_frequency(samples: npt.NDArray[Any], rate: int = SAMPLE_RATE) -> float:
    """The loudest frequency in a stretch of sound (0 for silence)."""
    if len(samples) == 0 or not np.any(samples):
        return 0.0
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(samples))


def _texture(width: int, height: int) -> npt.NDArray[np.int16]:
    """Brightness variations twice as wide as the picture, so that scrolling them looks like motion: smooth
    shapes with a little grain, about what a camera sees of a room (uniform per-pixel noise would be far
    harder to encode than any camera picture)."""
    y, x = np.mgrid[0:height, 0 : 2 * width]
    shapes = 40 * np.sin(x / 37.0) * np.cos(y / 23.0) + 30 * np.sin((x + y) / 61.0)
    grain = np.random.default_rng(7).integers(-3, 4, size=(height, 2 * width))
    return np.asarray(shapes + grain, np.int16)


class _Paced:
    """Waits for the next frame's moment on a steady clock."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.count = 0
        self.start: float | None = None

    async def next(self) -> int:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        else:
            self.count += 1
            await asyncio.sleep(max(0.0, self.start + self.count * self.interval - loop.time()))
        return self.count


class PatternTrack(MediaStreamTrack):
    """A picture of one colour at a steady frame rate; `moving` scrolls a texture across it."""

    kind = "video"

    def __init__(self, rgb: RGB, width: int, height: int, fps: int, moving: bool = False) -> None:
        super().__init__()
        self._frames = _pattern_frames(rgb, width, height, fps, moving)
        self._pace = _Paced(1 / fps)
        self._fps = fps

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        source = self._frames[n % len(self._frames)]
        frame = VideoFrame.from_ndarray(source.to_ndarray(), format="yuv420p")
        frame.pts, frame.time_base = n * 90_000 // self._fps, VIDEO_TIME_BASE
        return frame


def _pattern_frames(rgb: RGB, width: int, height: int, fps: int, moving: bool) -> list[VideoFrame]:
    if not moving:
        return [picture(rgb, width, height)]
    texture = _texture(width, height)
    frames = []
    for i in range(2 * fps):  # a two-second loop
        shift = (i * width) // (2 * fps)
        frames.append(picture(rgb, width, height, np.roll(texture, -shift, axis=1)))
    return frames


class EncodedPatternTrack(MediaStreamTrack):
    """The same picture, encoded once (VP8, a two-second loop starting with a keyframe)."""

    kind = "video"

    def __init__(self, rgb: RGB, width: int, height: int, fps: int, moving: bool = True) -> None:
        super().__init__()
        codec = CodecContext.create("libvpx", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.bit_rate = 600_000
        codec.time_base = VIDEO_TIME_BASE
        codec.gop_size = 10_000
        codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
        self._payloads: list[bytes] = []
        for i, frame in enumerate(_pattern_frames(rgb, width, height, fps, moving) * (1 if moving else 30)):
            frame.pts, frame.time_base = i * 90_000 // fps, VIDEO_TIME_BASE
            self._payloads += [bytes(p) for p in codec.encode(frame)]
        self._pace = _Paced(1 / fps)
        self._fps = fps
        self._restart_at: int | None = None
        self._origin = 0

    def request_keyframe(self) -> None:
        """A picture loss indication: as a browser's encoder would, send a keyframe next (the loop
        starts again from its first frame)."""
        self._restart_at = self._pace.count + 1

    async def recv(self) -> Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        if self._restart_at is not None and n >= self._restart_at:
            self._origin, self._restart_at = n, None
        packet: Packet[Any] = Packet(self._payloads[(n - self._origin) % len(self._payloads)])
        packet.pts, packet.time_base = n * 90_000 // self._fps, VIDEO_TIME_BASE
        return packet


class ToneTrack(MediaStreamTrack):
    """A sine tone, 20 ms at a time."""

    kind = "audio"

    def __init__(self, hz: float, level: float = 0.3) -> None:
        super().__init__()
        self._hz, self._level = hz, level
        self._pace = _Paced(AUDIO_SAMPLES / SAMPLE_RATE)

    def samples(self, n: int) -> npt.NDArray[np.int16]:
        t = np.arange(n * AUDIO_SAMPLES, (n + 1) * AUDIO_SAMPLES) / SAMPLE_RATE
        return (np.sin(2 * np.pi * self._hz * t) * self._level * 32767).astype(np.int16)

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        frame = AudioFrame.from_ndarray(self.samples(n).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, n * AUDIO_SAMPLES, AUDIO_TIME_BASE
        return frame


class EncodedToneTrack(ToneTrack):
    """The same tone, encoded once (Opus, one second looped)."""

    def __init__(self, hz: float, level: float = 0.3) -> None:
        super().__init__(hz, level)
        codec = CodecContext.create("libopus", "w")
        codec.bit_rate = 48_000
        codec.format = "s16"
        codec.layout = "mono"
        codec.sample_rate = SAMPLE_RATE
        codec.time_base = AUDIO_TIME_BASE
        self._payloads: list[bytes] = []
        for n in range(50):
            frame = AudioFrame.from_ndarray(self.samples(n).reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, n * AUDIO_SAMPLES, AUDIO_TIME_BASE
            self._payloads += [bytes(p) for p in codec.encode(frame)]

    async def recv(self) -> Packet[Any]:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        n = await self._pace.next()
        packet: Packet[Any] = Packet(self._payloads[n % len(self._payloads)])
        packet.pts, packet.time_base = n * AUDIO_SAMPLES, AUDIO_TIME_BASE
        return packet


class Reception:
    """What arrives on one received track."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.frames = 0
        self.first_at: float | None = None
        self.last: VideoFrame | None = None
        self._times: deque[float] = deque(maxlen=600)
        self._sound: deque[npt.NDArray[np.int16]] = deque(maxlen=50)  # the last second
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.create_task(self._consume(track))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()

    async def _consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.monotonic()
            if self.first_at is None:
                self.first_at = now
            self.frames += 1
            self._times.append(now)
            if isinstance(frame, VideoFrame):
                self.last = frame
            elif isinstance(frame, AudioFrame):
                mono = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0]
                self._sound.append(mono.astype(np.int16))
            self._arrived.set()

    def arrived_encoded(self, data: bytes) -> None:
        """A complete encoded picture arrived (counted, not decoded)."""
        del data
        now = time.monotonic()
        if self.first_at is None:
            self.first_at = now
        self.frames += 1
        self._times.append(now)
        self._arrived.set()

    def fps(self, seconds: float = 2.0) -> float:
        """Frames per second over the last `seconds`."""
        now = time.monotonic()
        return sum(1 for t in self._times if now - t <= seconds) / seconds

    def colour(self) -> RGB | None:
        return mean_rgb(self.last) if self.last is not None else None

    def tone(self) -> float:
        """The loudest frequency of the last second of sound."""
        return dominant_frequency(np.concatenate(list(self._sound))) if self._sound else 0.0

    async def wait_until(self, check: Any, timeout: float = 10.0) -> None:
        """Wait until `check(self)` holds (checked on every frame), or raise TimeoutError."""
        async with asyncio.timeout(timeout):
            while not check(self):
                self._arrived.clear()
                await self._arrived.wait()


def _no_ice_servers() -> RTCConfiguration:
    """Host candidates only, one transport for everything (as browsers do; aiortc's "balanced" policy
    would leave a second m-line of a kind on a transport that never connects)."""
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


async def _answer(pc: RTCPeerConnection, answer: SessionDescription) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type=answer.type))


class Participant:
    """A browser on one side of a visit: sends its colour and tone, receives the other side."""

    def __init__(
        self,
        rgb: RGB,
        tone_hz: float,
        *,
        width: int = 320,
        height: int = 240,
        fps: int = 15,
        moving: bool = False,
        encoded: bool = False,
        decode: bool = True,
    ) -> None:
        self.pc = RTCPeerConnection(_no_ice_servers())
        self.video = Reception("video")
        self.audio = Reception("audio")
        video: MediaStreamTrack = (
            EncodedPatternTrack(rgb, width, height, fps, moving)
            if encoded
            else PatternTrack(rgb, width, height, fps, moving)
        )
        audio: MediaStreamTrack = EncodedToneTrack(tone_hz) if encoded else ToneTrack(tone_hz)
        self.pc.addTrack(audio)
        sender = self.pc.addTrack(video)
        if isinstance(video, EncodedPatternTrack):
            # aiortc's sender would ask its own encoder; the loop is encoded already.
            sender._send_keyframe = video.request_keyframe  # type: ignore[method-assign]
        self.offered_at: float | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video" and not decode:
                receiver = next(t.receiver for t in self.pc.getTransceivers() if t.receiver.track is track)
                if tap_vp8(receiver, self.video.arrived_encoded, decode=False) is not None:
                    return
            (self.video if track.kind == "video" else self.audio).start(track)

    async def offer(self) -> SessionDescription:
        """The offer, ICE gathered (non-trickle), as the signalling protocol carries it."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.offered_at = time.monotonic()
        return SessionDescription(sdp=self.pc.localDescription.sdp, type="offer")

    async def accept(self, answer: SessionDescription) -> None:
        await _answer(self.pc, answer)

    async def close(self) -> None:
        await self.pc.close()
        await self.video.stop()
        await self.audio.stop()


class Monitor:
    """A monitoring officer's browser: receive-only, two video and two audio transceivers."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(_no_ice_servers())
        for kind in ("video", "video", "audio", "audio"):
            self.pc.addTransceiver(kind, direction="recvonly")
        self.video = {side: Reception("video") for side in MONITOR_ORDER}
        self.audio = {side: Reception("audio") for side in MONITOR_ORDER}

    async def offer(self) -> SessionDescription:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return SessionDescription(sdp=self.pc.localDescription.sdp, type="offer")

    async def accept(self, answer: SessionDescription) -> None:
        await _answer(self.pc, answer)
        position = {"video": 0, "audio": 0}
        for transceiver in self.pc.getTransceivers():
            kind = transceiver.kind
            side: Side = MONITOR_ORDER[position[kind]]
            position[kind] += 1
            (self.video if kind == "video" else self.audio)[side].start(transceiver.receiver.track)

    def received(self) -> int:
        return sum(r.frames for r in [*self.video.values(), *self.audio.values()])

    async def close(self) -> None:
        await self.pc.close()
        for reception in [*self.video.values(), *self.audio.values()]:
            await reception.stop()


@dataclass(frozen=True, slots=True)
class RecordingCheck:
    """What a recording of two synthetic participants holds."""

    pictures: int
    both_sides: int
    """Pictures whose left half has the visitor's colour and right half the resident's."""
    left_hz: float
    right_hz: float
    """The loudest frequency of each channel over the recording's second half."""

    def holds(self, left_hz: float, right_hz: float) -> bool:
        return self.both_sides > 0 and abs(self.left_hz - left_hz) < 20 and abs(self.right_hz - right_hz) < 20


def check_recording(path: str, left: RGB, right: RGB) -> RecordingCheck:
    """Decode a recording (stopping quietly at a damaged tail) and look for both participants."""
    pictures = both = 0
    sound: list[npt.NDArray[np.float64]] = []
    with av.open(path) as container, contextlib.suppress(av.FFmpegError):
        for frame in container.decode(*container.streams):
            if isinstance(frame, VideoFrame):
                pictures += 1
                half = frame.width // 2
                rgb = frame.to_ndarray(format="rgb24")
                seen = [
                    tuple(int(v) for v in part.reshape(-1, 3).mean(axis=0))
                    for part in (rgb[:, :half], rgb[:, half:])
                ]
                both += near(seen[0], left) and near(seen[1], right)  # type: ignore[arg-type]
            elif isinstance(frame, AudioFrame):
                samples = frame.to_ndarray()
                samples = samples.T if frame.format.is_planar else samples.reshape(-1, 2)
                sound.append(samples.astype(np.float64))
    stereo = np.concatenate(sound) if sound else np.zeros((0, 2))
    later = stereo[len(stereo) // 2 :]
    return RecordingCheck(pictures, both, dominant_frequency(later[:, 0]), dominant_frequency(later[:, 1]))
