"""One side's media inside a room: a feed per side and kind, and the tracks that carry it onwards.

A feed reads the decoded frames of the side's *current* connection (aiortc decodes each incoming stream
once, in its receiver's thread) and hands each frame to everything that wants it:

- the recorder gets the decoded frame itself (a reference; it scales and encodes in its own thread);
- everyone who watches or listens over WebRTC (the other side, monitors) gets *encoded packets*, shared by
  all of them: `PacketTrack`s give those packets to aiortc's senders, which only packetise them. Sound
  comes from one encoder per feed. A picture is forwarded as its sender encoded it (`tap_vp8`), from a
  keyframe on, while that side sends; the feed's own encoder takes over, from a keyframe, whenever it
  cannot be: black pictures while the side is absent or stalled, a sender that does not answer a request
  for a keyframe, a receiver that cannot be tapped. So each side is decoded once and its picture is not
  encoded again, however many monitors watch.

The feed's timeline belongs to the room, not to any connection: frames are re-stamped with the time
since the room opened, so a side that reconnects (a new connection, new RTP timestamps) or is absent
(black pictures, silence) never makes the timestamps that the other side receives jump back. That is
what lets a side be replaced, or paused, without renegotiating the other side's connection.

Pausing a side's video: the other side's track follows the feed's `black` stream (a second, tiny
encoder of black pictures) instead of `real`; the recorder and monitors keep the real picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING, Any, TypeAlias

import av
import numpy as np
from aiortc import RTCRtpReceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.codec.context import CodecContext
from av.frame import Frame
from av.packet import Packet
from av.video.codeccontext import VideoCodecContext
from av.video.frame import PictureType, VideoFrame

from openvisit.media.engine import Side

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = Fraction(1, VIDEO_CLOCK)
SAMPLE_RATE = 48_000
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
AUDIO_FRAME_SAMPLES = 960  # 20 ms
FILL_SECONDS = 0.2
"""While a side is absent (or paused) the feed sends a black picture this often."""
STALL_SECONDS = 0.5
"""A connected side that sends no picture for this long is shown black until it sends again."""
AUDIO_STALL_SECONDS = 0.1
"""A connected side that sends no sound for this long is filled with silence."""
BLACK_WIDTH, BLACK_HEIGHT = 320, 240
MAX_QUEUED = 30
"""Packets a sender may fall behind before its track drops them and starts again from a keyframe."""
KEYFRAME_ASK_SECONDS = 0.5
"""A forwarded side is asked for a keyframe (an RTCP picture loss indication) at most this often."""
KEYFRAME_WAIT_SECONDS = 1.5
"""A forwarded side that leaves a request for a keyframe unanswered this long is encoded again (from the
next decoded picture, as a keyframe) until it sends one."""
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
"""aiortc's receiver hands each complete encoded frame to its decoder thread through this queue."""

if TYPE_CHECKING:
    AnyPacket: TypeAlias = Packet[Any]
FrameSink = Callable[[Side, Frame], None]
FirstMedia = Callable[[Side, MediaStreamTrack], None]
SourceEnded = Callable[[Side, MediaStreamTrack], None]


def black_frame() -> VideoFrame:
    """A new black picture (each is encoded, and stamped, once)."""
    buf = np.empty((BLACK_HEIGHT * 3 // 2, BLACK_WIDTH), np.uint8)
    buf[:BLACK_HEIGHT] = 16
    buf[BLACK_HEIGHT:] = 128
    return VideoFrame.from_ndarray(buf, format="yuv420p")


def silence_frame() -> AudioFrame:
    frame = AudioFrame(format="s16", layout="stereo", samples=AUDIO_FRAME_SAMPLES)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = SAMPLE_RATE
    return frame


def is_vp8_keyframe(data: bytes) -> bool:
    """Whether a VP8 frame is a key frame: the lowest bit of its frame tag is 0 (RFC 6386, 9.1)."""
    return bool(data) and not data[0] & 1


class _EncodedTee:
    """Stands in for a receiver's decoder queue: each complete VP8 frame goes to `on_frame`, on the event
    loop, as the receiver assembles it, and (with `decode`) on to the decoder thread as before."""

    def __init__(self, queue: Any, on_frame: Callable[[bytes], None], decode: bool) -> None:
        self._queue = queue
        self._on_frame = on_frame
        self._decode = decode

    def put(self, item: Any, *args: Any, **kwargs: Any) -> None:
        if item is not None:
            codec, encoded = item
            if codec.mimeType.lower() == "video/vp8":
                try:
                    self._on_frame(encoded.data)
                except Exception:
                    log.exception("an encoded frame could not be forwarded")
            if not self._decode:
                return
        self._queue.put(item, *args, **kwargs)  # None ends the decoder thread

    def get(self, *args: Any, **kwargs: Any) -> Any:
        """The decoder thread reads through the stand-in when it starts after the tap."""
        return self._queue.get(*args, **kwargs)


def tap_vp8(
    receiver: RTCRtpReceiver, on_frame: Callable[[bytes], None], *, decode: bool = True
) -> Callable[[], None] | None:
    """Give `on_frame` every complete VP8 frame that `receiver` receives, as the sender encoded it (with
    `decode` it is decoded as before, else not at all), and return what asks the sender for a keyframe.
    None when this aiortc's receiver does not have the parts this relies on (private ones): the feed then
    encodes what it decodes."""
    queue = getattr(receiver, _DECODER_QUEUE, None)
    send_pli = getattr(receiver, "_send_rtcp_pli", None)
    if queue is None or not hasattr(queue, "put") or send_pli is None:
        return None
    setattr(receiver, _DECODER_QUEUE, _EncodedTee(queue, on_frame, decode))
    pending: set[asyncio.Task[None]] = set()

    def ask_keyframe() -> None:
        sources = receiver.getSynchronizationSources()
        if not sources:
            return
        task = asyncio.ensure_future(send_pli(sources[-1].source))
        pending.add(task)
        task.add_done_callback(pending.discard)

    return ask_keyframe


class Timeline:
    """The room's clock: seconds since it opened, on the worker's monotonic clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._origin = loop.time()

    def seconds(self) -> float:
        return self._loop.time() - self._origin


class EncodedStream:
    """The packets of one encoder, for every track that follows it."""

    def __init__(self, kind: str, on_keyframe_request: Callable[[], None]) -> None:
        self.kind = kind
        self.followers: set[PacketTrack] = set()
        self._on_keyframe_request = on_keyframe_request

    def follow(self, track: PacketTrack) -> None:
        self.followers.add(track)
        self.request_keyframe()

    def unfollow(self, track: PacketTrack) -> None:
        self.followers.discard(track)

    def request_keyframe(self) -> None:
        if self.kind == "video":
            self._on_keyframe_request()

    def publish(self, packets: list[AnyPacket]) -> None:
        for track in list(self.followers):
            for packet in packets:
                track.deliver(packet)


class PacketTrack(MediaStreamTrack):
    """A track whose `recv` returns encoded packets of whichever stream it follows; aiortc's sender
    packetises them without encoding. Video starts (and restarts) at a keyframe."""

    def __init__(self, kind: str, side: Side) -> None:
        super().__init__()
        self.kind = kind
        self.side = side
        """Whose media this track carries."""
        self.frames = 0
        self._queue: asyncio.Queue[AnyPacket | None] = asyncio.Queue()
        self._stream: EncodedStream | None = None
        self._await_keyframe = kind == "video"
        self._reading = False

    @property
    def stream(self) -> EncodedStream | None:
        return self._stream

    def follow(self, stream: EncodedStream) -> None:
        """Take packets from `stream` from its next keyframe on (it is asked for one)."""
        if stream is self._stream or self.readyState != "live":
            return
        if self._stream is not None:
            self._stream.unfollow(self)
        self._drop_queued()
        self._await_keyframe = self.kind == "video"
        self._stream = stream
        stream.follow(self)

    def deliver(self, packet: AnyPacket) -> None:
        if self.readyState != "live":
            return
        if self._await_keyframe:
            if not packet.is_keyframe:
                return
            self._await_keyframe = False
        if self._queue.qsize() >= MAX_QUEUED:
            # Nobody reads fast enough (or not yet: the connection is still being set up). Drop what
            # waits and start again from a keyframe, asked for once the sender reads.
            self._drop_queued()
            if self.kind == "video":
                self._await_keyframe = True
                if self._reading:
                    self.request_keyframe()
            return
        self._queue.put_nowait(packet)

    def request_keyframe(self) -> None:
        """Called for the far end's picture loss indications (see `Room`)."""
        if self._stream is not None:
            self._stream.request_keyframe()

    async def recv(self) -> AnyPacket:
        if self.readyState != "live":
            raise MediaStreamError
        if not self._reading:
            self._reading = True
            if self._await_keyframe:
                self.request_keyframe()
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        self.frames += 1
        return packet

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.unfollow(self)
            self._stream = None
        if self.readyState == "live":
            self._queue.put_nowait(None)
        super().stop()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()


class VideoEncoder:
    """VP8 for WebRTC: real time, one thread, a keyframe when asked and at least every `gop` frames."""

    def __init__(self, bitrate: int, cpu_used: int, gop: int = 150) -> None:
        self.bitrate = bitrate
        self.cpu_used = cpu_used
        self.gop = gop
        self._codec: VideoCodecContext | None = None

    def encode(self, frame: VideoFrame, keyframe: bool) -> list[AnyPacket]:
        codec = self._codec
        if codec is None or codec.width != frame.width or codec.height != frame.height:
            codec = self._codec = self._open(frame.width, frame.height)
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pict_type = PictureType.I if keyframe else PictureType.NONE
        return list(codec.encode(frame))

    def _open(self, width: int, height: int) -> VideoCodecContext:
        codec = CodecContext.create("libvpx", "w")
        assert isinstance(codec, VideoCodecContext)
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.bit_rate = self.bitrate
        codec.time_base = VIDEO_TIME_BASE
        codec.gop_size = self.gop
        codec.qmin, codec.qmax = 4, 56
        codec.thread_count = 1
        codec.options = {
            "deadline": "realtime",
            "cpu-used": str(self.cpu_used),
            "lag-in-frames": "0",
            "static-thresh": "1",
            "error-resilient": "1",
            "maxrate": str(self.bitrate),
            "minrate": str(self.bitrate // 4),
            "bufsize": str(self.bitrate),
            "undershoot-pct": "100",
            "overshoot-pct": "15",
        }
        return codec


class VideoFeed:
    """One side's picture: the current connection's frames (forwarded as sent, or encoded again from the
    decoded ones), black when there are none."""

    kind = "video"

    def __init__(
        self,
        side: Side,
        timeline: Timeline,
        *,
        bitrate: int,
        cpu_used: int,
        on_first: FirstMedia,
        on_ended: SourceEnded,
        sink: FrameSink | None,
    ) -> None:
        self.side = side
        self.real = EncodedStream("video", self._want_keyframe)
        self.black = EncodedStream("video", self._want_black_keyframe)
        self._timeline = timeline
        self._on_first, self._on_ended, self._sink = on_first, on_ended, sink
        self._encoder = VideoEncoder(bitrate, cpu_used)
        self._black_encoder = VideoEncoder(100_000, 16, gop=600)
        self._source: MediaStreamTrack | None = None
        self._source_seen = False
        self._changed = asyncio.Event()
        self._waiting: asyncio.Timeout | None = None
        self._pending: VideoFrame | None = None
        self._pending_ready = asyncio.Event()
        self._keyframe = True
        self._black_keyframe = True
        self._black_wanted = asyncio.Event()
        self._last_pts = -1
        self._last_black_pts = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._ask_source: Callable[[], None] | None = None
        self._forwarding = False
        self._asked_at: float | None = None
        self._wanted_since: float | None = None
        self.forwarded = 0
        """Pictures of this side sent on as their sender encoded them."""
        self.encoded = 0
        """Pictures of this side encoded by the feed (black ones included)."""

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._pump(), name=f"video feed {self.side}"),
            asyncio.create_task(self._encode(), name=f"video encoder {self.side}"),
            asyncio.create_task(self._black(), name=f"black video {self.side}"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def attach(self, track: MediaStreamTrack, *, ask_keyframe: Callable[[], None] | None = None) -> None:
        """Read from this connection's track from now on. With `ask_keyframe` (see `tap_vp8`), its
        encoded frames come to `forward` and are sent on as they are, from its next keyframe."""
        self._source, self._source_seen = track, False
        self._ask_source = ask_keyframe
        self._stop_forwarding()
        self._wake()

    def detach(self, track: MediaStreamTrack | None = None) -> None:
        if track is None or self._source is track:
            self._source = None
            self._ask_source = None
            self._stop_forwarding()
            self._wake()

    def forward(self, track: MediaStreamTrack, data: bytes) -> None:
        """A complete VP8 frame of `track`, as its sender encoded it."""
        if track is not self._source or self._ask_source is None:
            return
        keyframe = is_vp8_keyframe(data)
        now = asyncio.get_running_loop().time()
        if keyframe:
            self._wanted_since = None
        elif self._wanted_since is not None and now - self._wanted_since > KEYFRAME_WAIT_SECONDS:
            # Asked for a keyframe that does not come: the feed's encoder gives one, and goes on
            # encoding until the sender sends a keyframe of its own.
            self._wanted_since = None
            self._stop_forwarding()
        if not self._forwarding:
            if not keyframe:
                return
            self._forwarding = True
        packet = Packet(data)
        packet.is_keyframe = keyframe
        self._last_pts = self._stamp(packet, self._last_pts)
        self.forwarded += 1
        if self.real.followers:
            self.real.publish([packet])

    def _stop_forwarding(self) -> None:
        """The feed's encoder carries the picture again, starting with a keyframe."""
        if self._forwarding:
            self._forwarding = False
            self._keyframe = True

    def _ask_for_keyframe(self) -> None:
        """Ask the forwarded side for a keyframe, at most every KEYFRAME_ASK_SECONDS."""
        ask = self._ask_source
        if ask is None:
            return
        now = asyncio.get_running_loop().time()
        if self._asked_at is not None and now - self._asked_at < KEYFRAME_ASK_SECONDS:
            return
        self._asked_at = now
        ask()

    def _wake(self) -> None:
        """Stop waiting for the old source now (an expiring wait ends by itself)."""
        self._changed.set()
        if self._waiting is not None and not self._waiting.expired():
            self._waiting.reschedule(asyncio.get_running_loop().time())

    def _want_keyframe(self) -> None:
        if self._forwarding:
            if self._wanted_since is None:
                self._wanted_since = asyncio.get_running_loop().time()
            self._ask_for_keyframe()
        else:
            self._keyframe = True

    def _want_black_keyframe(self) -> None:
        self._black_keyframe = True
        self._black_wanted.set()

    def _stamp(self, item: VideoFrame | AnyPacket, last: int) -> int:
        pts = max(int(self._timeline.seconds() * VIDEO_CLOCK), last + 1)
        item.pts, item.time_base = pts, VIDEO_TIME_BASE
        return pts

    def _offer(self, frame: VideoFrame) -> None:
        """The frame the shared encoder takes next (a newer one replaces it if the encoder is busy)."""
        self._stop_forwarding()
        self._offer_decoded(frame)

    def _offer_decoded(self, frame: VideoFrame) -> None:
        self._last_pts = self._stamp(frame, self._last_pts)
        self._pending = frame
        self._pending_ready.set()

    async def _pump(self) -> None:
        while True:
            self._changed.clear()
            source = self._source
            if source is None:
                try:
                    async with asyncio.timeout(FILL_SECONDS):
                        await self._changed.wait()
                except TimeoutError:
                    self._offer(black_frame())
                continue
            try:
                async with asyncio.timeout(STALL_SECONDS) as waiting:
                    self._waiting = waiting
                    frame = await source.recv()
            except TimeoutError:
                if self._source is source and not self._changed.is_set():
                    self._offer(black_frame())
                continue
            except MediaStreamError:
                if self._source is source:
                    self._source = None
                    self._on_ended(self.side, source)
                continue
            finally:
                self._waiting = None
            if not isinstance(frame, VideoFrame) or self._source is not source:
                continue
            if not self._source_seen:
                self._source_seen = True
                self._on_first(self.side, source)
            if not self._forwarding:
                # Encoded here until the side's next keyframe can be forwarded; ask for one.
                self._offer_decoded(frame)
                self._ask_for_keyframe()
            if self._sink is not None:
                self._sink(self.side, frame)
            await asyncio.sleep(0)  # a burst of queued frames must not hold the loop

    async def _encode(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._pending_ready.wait()
            self._pending_ready.clear()
            frame, self._pending = self._pending, None
            if frame is None or not self.real.followers or self._forwarding:
                continue
            keyframe, self._keyframe = self._keyframe, False
            try:
                packets = await loop.run_in_executor(None, self._encoder.encode, frame, keyframe)
            except (av.FFmpegError, ValueError):
                log.exception("video of %s could not be encoded", self.side)
                self._keyframe = True
                continue
            if self._forwarding:
                continue  # the side's own keyframe went out meanwhile: this picture would follow it
            self.encoded += 1
            self.real.publish(packets)

    async def _black(self) -> None:
        while True:
            if not self.black.followers:
                self._black_wanted.clear()
                await self._black_wanted.wait()
                continue
            keyframe, self._black_keyframe = self._black_keyframe, False
            frame = black_frame()
            self._last_black_pts = self._stamp(frame, self._last_black_pts)
            self.black.publish(self._black_encoder.encode(frame, keyframe))
            self._black_wanted.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FILL_SECONDS):
                    await self._black_wanted.wait()


class AudioFeed:
    """One side's sound: the current connection's decoded audio, silence when there is none."""

    kind = "audio"

    def __init__(
        self,
        side: Side,
        timeline: Timeline,
        *,
        bitrate: int,
        on_first: FirstMedia,
        on_ended: SourceEnded,
        sink: FrameSink | None,
    ) -> None:
        self.side = side
        self.stream = EncodedStream("audio", lambda: None)
        self._timeline = timeline
        self._on_first, self._on_ended, self._sink = on_first, on_ended, sink
        self._bitrate = bitrate
        self._codec: AudioCodecContext | None = None
        self._resampler: AudioResampler | None = None
        self._source: MediaStreamTrack | None = None
        self._source_seen = False
        self._changed = asyncio.Event()
        self._waiting: asyncio.Timeout | None = None
        self._samples = 0  # the feed's sound so far, in samples at 48 kHz
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump(), name=f"audio feed {self.side}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def attach(self, track: MediaStreamTrack) -> None:
        self._source, self._source_seen = track, False
        self._wake()

    def detach(self, track: MediaStreamTrack | None = None) -> None:
        if track is None or self._source is track:
            self._source = None
            self._wake()

    def _wake(self) -> None:
        """Stop waiting for the old source now (an expiring wait ends by itself)."""
        self._changed.set()
        if self._waiting is not None and not self._waiting.expired():
            self._waiting.reschedule(asyncio.get_running_loop().time())

    def _due(self) -> int:
        return int(self._timeline.seconds() * SAMPLE_RATE)

    def _fill_silence(self, until: int) -> None:
        while self._samples + AUDIO_FRAME_SAMPLES <= until:
            self._send(silence_frame())

    async def _pump(self) -> None:
        while True:
            self._changed.clear()
            source = self._source
            if source is None:
                self._fill_silence(self._due())
                wait = (self._samples + AUDIO_FRAME_SAMPLES) / SAMPLE_RATE - self._timeline.seconds()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(wait, 0.001)):
                        await self._changed.wait()
                continue
            try:
                async with asyncio.timeout(AUDIO_STALL_SECONDS) as waiting:
                    self._waiting = waiting
                    frame = await source.recv()
            except TimeoutError:
                if self._source is source and not self._changed.is_set():
                    self._fill_silence(self._due())
                continue
            except MediaStreamError:
                if self._source is source:
                    self._source = None
                    self._on_ended(self.side, source)
                continue
            finally:
                self._waiting = None
            if not isinstance(frame, AudioFrame) or self._source is not source:
                continue
            if not self._source_seen:
                self._source_seen = True
                self._on_first(self.side, source)
            # Stamped on the feed's own count, so whoever reads it sees one steady timeline.
            frame.pts, frame.time_base = self._samples, Fraction(1, frame.sample_rate or SAMPLE_RATE)
            if self._sink is not None:
                self._sink(self.side, frame)
            self._send(frame)

    def _send(self, frame: AudioFrame) -> None:
        """Encode (when anyone listens) and advance the feed's count."""
        plain = (
            self._resampler is None
            and frame.samples == AUDIO_FRAME_SAMPLES
            and frame.sample_rate == SAMPLE_RATE
            and frame.format.name == "s16"
            and frame.layout.name == "stereo"
        )
        if plain:
            frames = [frame]
        else:
            # Other sizes, rates or layouts go through a resampler that cuts 20 ms frames; once used it
            # stays, so that nothing it holds back is overtaken.
            if self._resampler is None:
                self._resampler = AudioResampler(
                    format="s16", layout="stereo", rate=SAMPLE_RATE, frame_size=AUDIO_FRAME_SAMPLES
                )
            frames = self._resampler.resample(frame)
        packets: list[AnyPacket] = []
        for out in frames:
            out.pts, out.time_base = self._samples, AUDIO_TIME_BASE
            self._samples += out.samples
            if self.stream.followers:
                packets.extend(self._encoder().encode(out))
        if packets:
            self.stream.publish(packets)

    def _encoder(self) -> AudioCodecContext:
        if self._codec is None:
            codec = CodecContext.create("libopus", "w")
            assert isinstance(codec, AudioCodecContext)
            codec.bit_rate = self._bitrate
            codec.format = "s16"
            codec.layout = "stereo"
            codec.sample_rate = SAMPLE_RATE
            codec.time_base = AUDIO_TIME_BASE
            codec.options = {"application": "voip"}
            self._codec = codec
        return self._codec
