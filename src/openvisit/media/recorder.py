"""The recorder: both sides of a social visit, side by side, in one crash-safe WebM file.

The output is fixed before the file is opened: `RecorderOptions.side_width` × `side_height` per side,
visitor on the left, resident on the right (640×240 by default), at a steady frame rate. Each tick takes
the latest picture of each side (scaled from whatever size arrives, black when a side is missing or has
sent nothing for a second) and stamps it with the time since the recording started (the monotonic clock,
not the senders' RTP timestamps, which restart whenever a side reconnects). Audio is stereo at 48 kHz:
the visitor's voice on the left channel, the resident's on the right, each side through a small jitter
buffer so that network bursts neither drop nor pile up sound.

Crash safety: WebM (Matroska) with VP8 in real-time mode and Opus, a cluster at least every second and
the I/O flushed after each packet, so the file on disk is never more than about a second behind. A
`kill -9` of the worker leaves a file without its index and duration; it still demuxes and plays, and
`recover_recordings` measures what it holds. Warnings (an officer's, or the recorder's own) go to a
sidecar `<file>.events.jsonl`, one JSON object per line, flushed as written.

Encoding runs in the recorder's own thread: the event loop only hands over frame references.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import numpy.typing as npt
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import Interpolation, VideoReformatter
from av.video.stream import VideoStream

from openvisit.domain.enums import VisitKind
from openvisit.media.engine import MediaError, PrivilegedVisit, RecordingResult, Side

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms, Opus's usual frame
VIDEO_TIME_BASE = Fraction(1, 1000)  # Matroska counts milliseconds
AUDIO_TIME_BASE = Fraction(1, SAMPLE_RATE)
# Limited-range black in YUV.
BLACK_Y, BLACK_UV = 16, 128


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    """How recordings are encoded; fixed for the life of a file."""

    side_width: int = 320
    side_height: int = 240
    frame_rate: int = 15
    video_bitrate: int = 400_000
    audio_bitrate: int = 64_000
    cpu_used: int = 16
    """libvpx speed in real-time mode (0-16 for VP8): the fastest costs about a third of the slower
    settings for nearly the same quality on camera pictures."""
    keyframe_seconds: float = 2.0
    """A keyframe at least this often: a damaged file can be played from the next one on."""
    cluster_ms: int = 1000
    """A new Matroska cluster at least this often, so that at most about this much is lost in a crash."""
    stale_seconds: float = 1.0
    """A side whose last picture is older than this is drawn black."""
    jitter_seconds: float = 0.1
    """Sound held back per side before it plays, to absorb network bursts."""
    max_buffer_seconds: float = 0.5
    """More sound than this waiting for one side is cut back to the jitter buffer (it fell behind)."""

    @property
    def width(self) -> int:
        return 2 * self.side_width

    @property
    def height(self) -> int:
        return self.side_height


def events_path(path: Path) -> Path:
    """The sidecar event log of a recording."""
    return path.with_name(path.name + ".events.jsonl")


class _SideAudio:
    """One side's sound on its way into the mix: resampled to 48 kHz mono, buffered, primed."""

    def __init__(self) -> None:
        self.incoming: queue.SimpleQueue[AudioFrame] = queue.SimpleQueue()
        self.resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self.chunks: deque[npt.NDArray[np.int16]] = deque()
        self.buffered = 0
        self.primed = False

    def drain(self) -> None:
        while True:
            try:
                frame = self.incoming.get_nowait()
            except queue.Empty:
                return
            for samples in self._mono(frame):
                self.chunks.append(samples)
                self.buffered += len(samples)

    def _mono(self, frame: AudioFrame) -> list[npt.NDArray[np.int16]]:
        channels = len(frame.layout.channels)
        if frame.sample_rate == SAMPLE_RATE and frame.format.name == "s16" and channels <= 2:
            # What browsers send, as aiortc decodes it: mixed down here without a filter graph.
            samples = frame.to_ndarray().reshape(-1, channels)
            mixed = samples[:, 0] if channels == 1 else (samples.astype(np.int32).sum(axis=1) >> 1)
            return [mixed.astype(np.int16)]
        return [
            out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
            for out in self.resampler.resample(frame)
        ]

    def take(self, count: int, jitter: int, most: int) -> npt.NDArray[np.int16]:
        """`count` samples for the mix: silence until the jitter buffer is full, then what arrived."""
        if self.buffered > most:
            self._discard(self.buffered - jitter)
        if not self.primed:
            if self.buffered < jitter:
                return np.zeros(count, np.int16)
            self.primed = True
        out = np.zeros(count, np.int16)
        filled = 0
        while filled < count and self.chunks:
            chunk = self.chunks[0]
            n = min(count - filled, len(chunk))
            out[filled : filled + n] = chunk[:n]
            filled += n
            if n == len(chunk):
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk[n:]
        self.buffered -= filled
        if filled < count:
            self.primed = False  # ran dry: wait for a full buffer again
        return out

    def _discard(self, count: int) -> None:
        while count > 0 and self.chunks:
            chunk = self.chunks[0]
            if len(chunk) <= count:
                self.chunks.popleft()
                count -= len(chunk)
                self.buffered -= len(chunk)
            else:
                self.chunks[0] = chunk[count:]
                self.buffered -= count
                count = 0


class Recorder:
    """Records one social visit into `path` (a new file). Feed it frames from the event loop with
    `push_video` / `push_audio`; `close` (blocking: call it in a thread) finalises the file."""

    created: ClassVar[int] = 0
    """How many recorders this process has constructed: the privilege tests count on it."""

    def __init__(
        self,
        path: Path,
        kind: VisitKind,
        *,
        options: RecorderOptions | None = None,
        on_failure: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if kind is not VisitKind.SOCIAL:
            # Defence in depth: the room never asks for a recorder of a legal visit; if it ever did,
            # no file is opened.
            raise PrivilegedVisit()
        if path.exists():
            # Never write over a recording: each opening of a room gets a new file.
            log.error("refusing to record over %s", path)
            raise MediaError("media.recording_exists")
        Recorder.created += 1
        self.path = path
        self.options = options or RecorderOptions()
        self._on_failure = on_failure
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: dict[Side, tuple[float, VideoFrame]] = {}
        self._audio = {side: _SideAudio() for side in Side}
        self._reformatters = {side: VideoReformatter() for side in Side}
        self._stop = threading.Event()
        self._failure: str | None = None
        self._closed = False
        self._last_pts = -1
        self._written_samples = 0
        self.started_at = self._clock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._events = events_path(path).open("a", encoding="utf-8")
        try:
            self._container, self._video, self._sound = self._open()
        except BaseException:
            self._events.close()
            raise
        self.event("recording_started", width=self.options.width, height=self.options.height)
        self._thread = threading.Thread(target=self._run, name=f"recorder {path.name}", daemon=True)
        self._thread.start()

    # --- the event loop's side ----------------------------------------------------------------------

    def push_video(self, side: Side, frame: VideoFrame) -> None:
        """The latest picture of a side (a reference: it is scaled when the next tick needs it)."""
        if self._closed or self._failure is not None:
            return
        with self._lock:
            self._latest[side] = (self._clock(), frame)

    def push_audio(self, side: Side, frame: AudioFrame) -> None:
        if self._closed or self._failure is not None:
            return  # nobody would take it
        self._audio[side].incoming.put(frame)

    def event(self, event: str, **fields: Any) -> None:
        """Append one line to the sidecar log (thread-safe; a failed write is logged, never raised)."""
        line = {
            "t": round(self._clock() - self.started_at, 3),
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": event,
            **fields,
        }
        try:
            with self._lock:
                if not self._events.closed:
                    self._events.write(json.dumps(line, ensure_ascii=False) + "\n")
                    self._events.flush()
        except OSError:
            log.exception("could not write the event log of %s", self.path)

    def warn(self, text: str) -> None:
        """An officer's warning, on the recording's timeline."""
        self.event("warning", text=text)

    @property
    def failure(self) -> str | None:
        """Why the recorder stopped writing, or None while it works."""
        return self._failure

    def close(self) -> RecordingResult:
        """Stop, flush the encoders, write the index and measure the file. Blocks: call it in a thread."""
        if not self._closed:
            self._closed = True
            self._stop.set()
            self._thread.join()
            if self._failure is None:
                try:
                    self._write_until(self._clock())
                    for stream in (self._video, self._sound):
                        self._container.mux(stream.encode(None))
                except (av.FFmpegError, ValueError, OSError) as exc:
                    self._fail(f"finalising failed: {exc}")
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.close()
            with contextlib.suppress(OSError), self.path.open("rb+") as f:
                os.fsync(f.fileno())
            self.event("recording_closed")
            with self._lock:
                self._events.close()
        return inspect_recording(self.path)

    # --- the recorder's thread ----------------------------------------------------------------------

    def _open(self) -> tuple[OutputContainer, VideoStream, AudioStream]:
        o = self.options
        container = av.open(
            str(self.path),
            mode="w",
            format="webm",
            container_options={"cluster_time_limit": str(o.cluster_ms), "flush_packets": "1"},
        )
        try:
            video = container.add_stream("libvpx", rate=o.frame_rate)
            video.width, video.height, video.pix_fmt = o.width, o.height, "yuv420p"
            video.bit_rate = o.video_bitrate
            video.time_base = VIDEO_TIME_BASE
            ctx = video.codec_context
            ctx.time_base = VIDEO_TIME_BASE
            ctx.gop_size = max(1, round(o.keyframe_seconds * o.frame_rate))
            ctx.thread_count = 1
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": str(o.cpu_used),
                "lag-in-frames": "0",
                "static-thresh": "1",
                "error-resilient": "1",
            }
            sound = container.add_stream("libopus", rate=SAMPLE_RATE, layout="stereo")
            sound.bit_rate = o.audio_bitrate
            sound.time_base = AUDIO_TIME_BASE
            sound.codec_context.options = {"application": "voip"}
            container.start_encoding()
        except BaseException:
            container.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        return container, video, sound

    def _run(self) -> None:
        interval = 1 / self.options.frame_rate
        next_tick = self.started_at
        while not self._stop.is_set():
            now = self._clock()
            if now < next_tick:
                self._stop.wait(next_tick - now)
                continue
            # Behind schedule (a busy machine): skip ticks rather than write a burst of stale frames.
            next_tick = max(next_tick + interval, now)
            try:
                self._write_until(now)
            except (av.FFmpegError, ValueError, OSError) as exc:
                self._fail(f"writing failed: {exc}")
                return

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason
            log.error("recording %s: %s", self.path, reason)
            self.event("recording_failed", reason=reason)
            if self._on_failure is not None:
                self._on_failure(reason)

    def _write_until(self, now: float) -> None:
        elapsed = now - self.started_at
        self._write_audio(elapsed)
        pts = int(elapsed * 1000)
        if pts <= self._last_pts:
            return
        self._last_pts = pts
        frame = self._compose(now)
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self._container.mux(self._video.encode(frame))

    def _compose(self, now: float) -> VideoFrame:
        o = self.options
        w, h = o.side_width, o.side_height
        buf = np.empty((h * 3 // 2, 2 * w), np.uint8)
        luma = buf[:h]
        chroma = buf[h:].reshape(2, h // 2, w)  # U then V planes, each (h/2) × w for the whole picture
        with self._lock:
            latest = dict(self._latest)
        for i, side in enumerate((Side.VISITOR, Side.RESIDENT)):
            columns = slice(i * w, (i + 1) * w)
            half = slice(i * w // 2, (i + 1) * w // 2)
            seen = latest.get(side)
            if seen is None or now - seen[0] > o.stale_seconds:
                luma[:, columns] = BLACK_Y
                chroma[:, :, half] = BLACK_UV
                continue
            scaled = self._reformatters[side].reformat(
                seen[1], width=w, height=h, format="yuv420p", interpolation=Interpolation.FAST_BILINEAR
            )
            planes = scaled.to_ndarray()  # (h * 3/2, w): Y rows, then U and V packed two rows a line
            luma[:, columns] = planes[:h]
            chroma[0, :, half] = planes[h : h + h // 4].reshape(h // 2, w // 2)
            chroma[1, :, half] = planes[h + h // 4 :].reshape(h // 2, w // 2)
        return VideoFrame.from_ndarray(buf, format="yuv420p")

    def _write_audio(self, elapsed: float) -> None:
        o = self.options
        due = int(elapsed * SAMPLE_RATE) // AUDIO_FRAME_SAMPLES * AUDIO_FRAME_SAMPLES
        count = due - self._written_samples
        if count <= 0:
            return
        jitter = int(o.jitter_seconds * SAMPLE_RATE)
        most = int(o.max_buffer_seconds * SAMPLE_RATE)
        mix = np.empty((count, 2), np.int16)
        for channel, side in enumerate((Side.VISITOR, Side.RESIDENT)):
            audio = self._audio[side]
            audio.drain()
            mix[:, channel] = audio.take(count, jitter, most)
        packets: list[av.Packet[Any]] = []
        for start in range(0, count, AUDIO_FRAME_SAMPLES):
            chunk = np.ascontiguousarray(mix[start : start + AUDIO_FRAME_SAMPLES]).reshape(1, -1)
            frame = AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._written_samples + start
            frame.time_base = AUDIO_TIME_BASE
            packets.extend(self._sound.encode(frame))
        self._written_samples = due
        self._container.mux(packets)


# --- measuring a file -------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inspect_recording(path: Path) -> RecordingResult:
    """Size, hash, and what demuxing finds: the duration (end of the last packet) and whether it plays
    (a video keyframe that decodes, and sound). A damaged tail ends the count; it does not fail it."""
    size = path.stat().st_size
    sha = _sha256(path)
    duration = 0.0
    playable = False
    try:
        with av.open(str(path), mode="r") as container:
            kinds = {s.index: s.type for s in container.streams}
            decoded_video = False
            seen_audio = False
            video = container.streams.video[0] if container.streams.video else None
            try:
                for packet in container.demux():
                    if packet.pts is None or packet.time_base is None:
                        continue
                    end = (packet.pts + (packet.duration or 0)) * packet.time_base
                    duration = max(duration, float(end))
                    kind = kinds.get(packet.stream.index)
                    if kind == "audio":
                        seen_audio = True
                    elif kind == "video" and not decoded_video and video is not None:
                        decoded_video = any(isinstance(f, VideoFrame) for f in video.decode(packet))
            except (av.FFmpegError, EOFError) as exc:
                log.warning("%s: demuxing stopped early (%s)", path, exc)
            playable = decoded_video and seen_audio
    except (av.FFmpegError, OSError) as exc:
        log.warning("%s: cannot be demuxed (%s)", path, exc)
    return RecordingResult(
        path=path, bytes=size, duration_seconds=round(duration, 3), sha256=sha, playable=playable
    )


def recover_recordings(paths: Iterable[Path]) -> list[RecordingResult]:
    """What each file left by a crash holds (blocking). Each check is noted in the file's event log."""
    results = []
    for path in paths:
        result = inspect_recording(path)
        line = {
            "t": None,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": "recording_recovered",
            "duration_seconds": result.duration_seconds,
            "playable": result.playable,
            "sha256": result.sha256,
        }
        try:
            with events_path(path).open("a", encoding="utf-8") as f:
                f.write(json.dumps(line) + "\n")
        except OSError:
            log.exception("could not write the event log of %s", path)
        results.append(result)
    return results
