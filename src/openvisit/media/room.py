"""A visit's media room, inside a worker: one peer connection per side, monitors, the recorder.

Each side's connection receives that side's audio and video (into the side's feeds, see `feeds.py`) and
sends the other side's, through `PacketTrack`s that follow the other side's feeds. Because the feeds
outlive connections, admitting a side again (a new connection replaces the older one) or pausing a side
changes nothing in the other side's connection: no renegotiation.

Privilege: a legal visit's room refuses a recording path before anything is built (and the recorder
refuses a legal visit itself), and refuses monitors before any peer connection exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from av.audio.frame import AudioFrame
from av.frame import Frame
from av.video.frame import VideoFrame

from openvisit.domain.enums import VisitKind
from openvisit.media.engine import (
    MONITOR_ORDER,
    MediaError,
    MediaEvent,
    MediaEventKind,
    PrivilegedVisit,
    RecordingResult,
    RoomNotOpen,
    RoomStatus,
    SessionDescription,
    Side,
    VisitMedia,
)
from openvisit.media.feeds import AudioFeed, PacketTrack, Timeline, VideoFeed, tap_vp8
from openvisit.media.recorder import Recorder, RecorderOptions

log = logging.getLogger(__name__)

CLOSE_SECONDS = 2.0
"""Longest wait for one peer connection to close; media has stopped before that already."""


@dataclass(frozen=True, slots=True)
class MediaTuning:
    """How the engine encodes; the defaults suit 640×480 at 15 fps on a small server."""

    video_bitrate: int = 600_000
    """Each side's picture as the other side and monitors receive it: what a side is asked to send
    (`b=AS` in the answer; its picture is forwarded as sent) and what the feed's encoder aims at when it
    encodes."""
    video_cpu_used: int = 16
    """libvpx speed (0-16 for VP8 in real time). On camera-like pictures 16 costs a third of 6-12 for
    the same quality (41.3 against 41.5 dB PSNR at 640×480, 600 kbit/s); on pictures full of fine noise
    it is visibly worse."""
    audio_bitrate: int = 48_000
    recorder: RecorderOptions = field(default_factory=RecorderOptions)


def ice_configuration(urls: list[str] | tuple[str, ...]) -> RTCConfiguration:
    """The peer connections' ICE servers: exactly those configured. An empty list means host candidates
    only; aiortc would otherwise fall back to a public STUN server. Everything on one transport
    (max-bundle, as browsers offer): with aiortc's "balanced" policy a monitor's second audio or video
    m-line would keep a transport of its own that never connects."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=url) for url in urls], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )


def cap_video_bitrate(sdp: str, bitrate: int) -> str:
    """The answer with `b=AS` on its video section: a side's picture is forwarded as it was sent, so the
    sender is asked to keep to what the other side and monitors are meant to receive."""
    lines = sdp.split("\r\n")
    out: list[str] = []
    video = False
    for line in lines:
        if line.startswith("m="):
            video = line.startswith("m=video")
        elif video and line.startswith("b="):
            continue
        out.append(line)
        if video and line.startswith("c="):
            out.append(f"b=AS:{bitrate // 1000}")
    return "\r\n".join(out)


def _media_kinds(sdp: str) -> list[str]:
    return [line[2:].split(" ", 1)[0] for line in sdp.splitlines() if line.startswith("m=")]


def _prefer(transceiver: RTCRtpTransceiver, kind: str) -> None:
    """Opus and VP8 only: the engine forwards what its shared encoders produce, nothing else."""
    wanted = {"audio": ("audio/opus",), "video": ("video/vp8", "video/rtx")}[kind]
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in wanted])


def _add_sender(pc: RTCPeerConnection, track: PacketTrack, direction: str) -> None:
    transceiver = pc.addTransceiver(track, direction=direction)
    _prefer(transceiver, track.kind)
    if track.kind == "video":
        # aiortc's sender answers a picture loss indication by asking its own encoder for a keyframe;
        # ours is shared and sits in the feed, so the request goes there.
        transceiver.sender._send_keyframe = track.request_keyframe  # type: ignore[method-assign]


@dataclass(eq=False)
class _Peer:
    """One side's current connection."""

    pc: RTCPeerConnection
    outgoing: dict[str, PacketTrack] = field(default_factory=dict)
    incoming: list[MediaStreamTrack] = field(default_factory=list)
    announced: bool = False


class Room:
    """The media of one visit while it is open."""

    def __init__(
        self,
        visit: VisitMedia,
        ice_servers: list[str] | tuple[str, ...],
        tuning: MediaTuning,
        emit: Callable[[MediaEvent], None],
    ) -> None:
        if visit.kind is not VisitKind.SOCIAL and visit.recording_path is not None:
            raise PrivilegedVisit()
        self.visit = visit
        self.kind = visit.kind
        self._ice = list(ice_servers)
        self._tuning = tuning
        self._emit = emit
        self.recorder: Recorder | None = None
        self._peers: dict[Side, _Peer] = {}
        self._monitors: dict[str, RTCPeerConnection] = {}
        self._monitor_tracks: dict[str, list[PacketTrack]] = {}
        self._paused: set[Side] = set()
        self._forwarded: dict[Side, int] = dict.fromkeys(Side, 0)
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False
        self._video: dict[Side, VideoFeed] = {}
        self._audio: dict[Side, AudioFeed] = {}

    # --- life ---------------------------------------------------------------------------------------

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if self.kind is VisitKind.SOCIAL and self.visit.recording_path is not None:
            path = self.visit.recording_path

            def failed(reason: str) -> None:
                loop.call_soon_threadsafe(self._recording_failed, reason)

            self.recorder = await asyncio.to_thread(
                Recorder, path, self.kind, options=self._tuning.recorder, on_failure=failed
            )
        sink = self._to_recorder if self.recorder is not None else None
        timeline = Timeline(loop)
        t = self._tuning
        for side in Side:
            self._video[side] = VideoFeed(
                side,
                timeline,
                bitrate=t.video_bitrate,
                cpu_used=t.video_cpu_used,
                on_first=self._first_media,
                on_ended=self._source_ended,
                sink=sink,
            )
            self._audio[side] = AudioFeed(
                side,
                timeline,
                bitrate=t.audio_bitrate,
                on_first=self._first_media,
                on_ended=self._source_ended,
                sink=sink,
            )
            self._video[side].start()
            self._audio[side].start()

    async def close(self) -> RecordingResult | None:
        """Cut every connection at once, then finalise the recording."""
        if self._closed:
            return None
        self._closed = True
        # Senders stop at once: their tracks end before the connections are torn down.
        peers = list(self._peers.values())
        self._peers.clear()
        for peer in peers:
            for track in peer.outgoing.values():
                track.stop()
        for tracks in self._monitor_tracks.values():
            for track in tracks:
                track.stop()
        pcs = [p.pc for p in peers] + list(self._monitors.values())
        self._monitors.clear()
        self._monitor_tracks.clear()
        await asyncio.gather(*(self._close_pc(pc) for pc in pcs), *self._retiring)
        feeds: list[VideoFeed | AudioFeed] = [*self._video.values(), *self._audio.values()]
        for feed in feeds:
            await feed.close()
        if self.recorder is None:
            return None
        return await asyncio.to_thread(self.recorder.close)

    # --- sides --------------------------------------------------------------------------------------

    async def admit(self, side: Side, offer: SessionDescription) -> SessionDescription:
        self._check_open()
        kinds = _media_kinds(offer.sdp)
        pc = RTCPeerConnection(ice_configuration(self._ice))
        peer = _Peer(pc)
        previous = self._peers.get(side)
        self._peers[side] = peer
        if previous is not None:
            self._retire(side, previous)
        other = side.other
        if "audio" in kinds:
            track = PacketTrack("audio", other)
            track.follow(self._audio[other].stream)
            peer.outgoing["audio"] = track
            _add_sender(pc, track, "sendrecv")
        if "video" in kinds:
            track = PacketTrack("video", other)
            feed = self._video[other]
            track.follow(feed.black if other in self._paused else feed.real)
            peer.outgoing["video"] = track
            _add_sender(pc, track, "sendrecv")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if self._peers.get(side) is not peer:
                return
            peer.incoming.append(track)
            if track.kind == "video":
                feed = self._video[side]
                receiver = next((t.receiver for t in pc.getTransceivers() if t.receiver.track is track), None)
                ask = None
                if receiver is not None:
                    ask = tap_vp8(receiver, lambda data: feed.forward(track, data))
                feed.attach(track, ask_keyframe=ask)
            elif track.kind == "audio":
                self._audio[side].attach(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self._peers.get(side) is peer:
                self._lose(side, peer, pc.connectionState)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            log.warning("visit %s: the %s side's offer failed: %s", self.visit.visit_id, side, exc)
            if self._peers.get(side) is peer:
                del self._peers[side]
                self._retire(side, peer)
            else:
                await self._close_pc(pc)
            raise MediaError() from exc
        if self._peers.get(side) is not peer:
            raise MediaError()  # replaced (or the room closed) while this offer was answered
        answer = cap_video_bitrate(pc.localDescription.sdp, self._tuning.video_bitrate)
        return SessionDescription(sdp=answer, type=pc.localDescription.type)

    async def drop(self, side: Side) -> None:
        peer = self._peers.pop(side, None)
        if peer is not None:
            self._retire(side, peer)

    def _retire(self, side: Side, peer: _Peer) -> None:
        """Stop using a connection of `side` now and close it in the background."""
        for track in peer.incoming:
            (self._video if track.kind == "video" else self._audio)[side].detach(track)
        video = peer.outgoing.get("video")
        if video is not None:
            self._forwarded[side.other] += video.frames
        for track in peer.outgoing.values():
            track.stop()
        task = asyncio.create_task(self._close_pc(peer.pc))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _lose(self, side: Side, peer: _Peer, why: str) -> None:
        del self._peers[side]
        self._retire(side, peer)
        self._emit(MediaEvent(self.visit.visit_id, MediaEventKind.SIDE_LOST, side=side, detail=why))

    def _first_media(self, side: Side, track: MediaStreamTrack) -> None:
        peer = self._peers.get(side)
        if peer is not None and not peer.announced and track in peer.incoming:
            peer.announced = True
            self._emit(MediaEvent(self.visit.visit_id, MediaEventKind.SIDE_CONNECTED, side=side))

    def _source_ended(self, side: Side, track: MediaStreamTrack) -> None:
        log.info("visit %s: the %s side's %s stopped", self.visit.visit_id, side, track.kind)

    def set_video_paused(self, side: Side, paused: bool) -> None:
        self._check_open()
        if paused:
            self._paused.add(side)
        else:
            self._paused.discard(side)
        peer = self._peers.get(side.other)
        track = peer.outgoing.get("video") if peer is not None else None
        if track is not None:
            feed = self._video[side]
            track.follow(feed.black if paused else feed.real)
        if self.recorder is not None:
            self.recorder.event("video_paused" if paused else "video_resumed", side=str(side))

    # --- monitors -----------------------------------------------------------------------------------

    async def subscribe_monitor(self, key: str, offer: SessionDescription) -> SessionDescription:
        if self.kind is not VisitKind.SOCIAL:
            raise PrivilegedVisit()  # before any peer connection exists
        self._check_open()
        pc = RTCPeerConnection(ice_configuration(self._ice))
        tracks: list[PacketTrack] = []
        for kind in ("video", "audio"):
            for side in MONITOR_ORDER:
                track = PacketTrack(kind, side)
                track.follow(self._video[side].real if kind == "video" else self._audio[side].stream)
                tracks.append(track)
                _add_sender(pc, track, "sendonly")

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "failed" and self._monitors.get(key) is pc:
                self._forget_monitor(key)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type=offer.type))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            log.warning("visit %s: a monitor's offer failed: %s", self.visit.visit_id, exc)
            for track in tracks:
                track.stop()
            await self._close_pc(pc)
            raise MediaError() from exc
        if self._closed:
            for track in tracks:
                track.stop()
            await self._close_pc(pc)
            raise RoomNotOpen()
        self._forget_monitor(key)
        self._monitors[key], self._monitor_tracks[key] = pc, tracks
        if self.recorder is not None:
            self.recorder.event("monitor_joined")
        return SessionDescription(sdp=pc.localDescription.sdp, type=pc.localDescription.type)

    async def unsubscribe_monitor(self, key: str) -> None:
        self._forget_monitor(key)

    def _forget_monitor(self, key: str) -> None:
        pc = self._monitors.pop(key, None)
        for track in self._monitor_tracks.pop(key, []):
            track.stop()
        if pc is not None:
            task = asyncio.create_task(self._close_pc(pc))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    # --- the rest -----------------------------------------------------------------------------------

    def warn(self, text: str) -> None:
        self._check_open()
        if self.recorder is not None:
            self.recorder.warn(text)

    def status(self) -> RoomStatus:
        forwarded = dict(self._forwarded)
        for side, peer in self._peers.items():
            video = peer.outgoing.get("video")
            if video is not None:
                forwarded[side.other] += video.frames
        return RoomStatus(
            visit_id=self.visit.visit_id,
            kind=self.kind,
            sides_connected=frozenset(
                side for side, peer in self._peers.items() if peer.pc.connectionState == "connected"
            ),
            monitors=len(self._monitors),
            recording=self.recorder is not None and self.recorder.failure is None,
            recording_path=self.recorder.path if self.recorder is not None else None,
            frames_forwarded=forwarded,
            frames_as_sent={side: feed.forwarded for side, feed in self._video.items()},
            paused=frozenset(self._paused),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise RoomNotOpen()

    def _to_recorder(self, side: Side, frame: Frame) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        if isinstance(frame, VideoFrame):
            recorder.push_video(side, frame)
        elif isinstance(frame, AudioFrame):
            recorder.push_audio(side, frame)

    def _recording_failed(self, reason: str) -> None:
        self._emit(
            MediaEvent(
                self.visit.visit_id,
                MediaEventKind.RECORDING_FAILED,
                detail=reason,
                recording_path=self.visit.recording_path,
            )
        )

    @staticmethod
    async def _close_pc(pc: RTCPeerConnection) -> None:
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await pc.close()
        except TimeoutError:
            log.warning("a peer connection took more than %s s to close", CLOSE_SECONDS)
        except Exception:
            log.exception("closing a peer connection failed")
        with contextlib.suppress(Exception):
            pc.remove_all_listeners()
