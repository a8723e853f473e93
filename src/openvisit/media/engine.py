"""The media engine interface: what the rest of OpenVisit may ask of whatever moves a visit's media.

The embedded engine (`openvisit.media.aiortc_engine`) terminates WebRTC on the server, forwards each side's
media to the other, records social visits and feeds monitors. A forwarding SFU (Janus) can implement the
same interface later. Callers (the signalling hub in `openvisit.realtime`) pass plain data only; no aiortc
or PyAV type crosses this boundary.

Privilege is enforced here, not only above: a visit opened with kind `legal` never gets a recorder, and
`subscribe_monitor` on it raises `PrivilegedVisit` before any media object exists.

Monitors: a monitoring officer's browser offers receive-only media with two video and two audio
transceivers (`addTransceiver("video", {direction: "recvonly"})` twice, and the same for audio). The first
m-line of each kind carries the visitor's media, the second the resident's (`MONITOR_ORDER`); audio and
video m-lines may come in any order relative to each other. The officer's page therefore maps
`pc.getTransceivers()` by kind and position.

Events: `SIDE_CONNECTED` once per admitted connection, when its first media arrives; `SIDE_LOST` when a
side's connection fails or is closed by the far end (not after `drop`, `close_visit`, or when the same
side is admitted again), and for every admitted side of a room whose worker died (detail
`worker_lost`); `RECORDING_FAILED` when the recorder stops writing (detail says why; the file is kept and
`recording_path` names it: pass it to `recover_recordings`). A room whose worker died is gone:
`status` returns None and `open_visit` opens it afresh (with a new recording path).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from openvisit.domain.enums import VisitKind
from openvisit.domain.errors import N_, Conflict, Forbidden, NotFound


class Side(StrEnum):
    """The two ends of a visit. A home visitor (or the link-center booth) is `visitor`; the station is
    `resident`. One connection per side: admitting a side again replaces its older connection."""

    VISITOR = "visitor"
    RESIDENT = "resident"

    @property
    def other(self) -> Side:
        """The side this side sees and hears."""
        return Side.RESIDENT if self is Side.VISITOR else Side.VISITOR


MONITOR_ORDER: tuple[Side, Side] = (Side.VISITOR, Side.RESIDENT)
"""Which side each of a monitor's two video (and two audio) m-lines carries, in order."""


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """An SDP offer or answer, as the browser's RTCSessionDescription carries it."""

    sdp: str
    type: str  # "offer" or "answer"


@dataclass(frozen=True, slots=True)
class VisitMedia:
    """What the engine needs to open a visit's media room."""

    visit_id: int
    kind: VisitKind
    ends_at: datetime
    recording_path: Path | None
    """Where the recorder writes (a new file per opening of the room); ignored, and must be None, for a
    legal visit: the engine refuses a path for one."""


@dataclass(frozen=True, slots=True)
class RecordingResult:
    """A finished (or recovered) recording file."""

    path: Path
    bytes: int
    duration_seconds: float
    sha256: str
    playable: bool
    """False when the file could not be demuxed (it is then kept and marked damaged)."""


@dataclass(frozen=True, slots=True)
class RoomStatus:
    visit_id: int
    kind: VisitKind
    sides_connected: frozenset[Side]
    monitors: int
    recording: bool
    recording_path: Path | None
    frames_forwarded: dict[Side, int] = field(default_factory=dict)
    """Video frames of each side sent on to the other side (black ones while paused included)."""
    frames_as_sent: dict[Side, int] = field(default_factory=dict)
    """Pictures of each side forwarded as that side encoded them (not encoded again by the engine)."""
    paused: frozenset[Side] = frozenset()
    """Sides whose video the other side currently gets as black."""


class MediaEventKind(StrEnum):
    SIDE_CONNECTED = "side_connected"  # ICE/DTLS up and the first media arrived
    SIDE_LOST = "side_lost"  # the side's peer connection failed or closed
    RECORDING_FAILED = "recording_failed"


@dataclass(frozen=True, slots=True)
class MediaEvent:
    visit_id: int
    kind: MediaEventKind
    side: Side | None = None
    detail: str = ""
    recording_path: Path | None = None
    """For RECORDING_FAILED: the file left behind (for `recover_recordings`)."""


MediaEventSink = Callable[[MediaEvent], Awaitable[None]]
"""Called on the caller's event loop for each event the engine reports."""


class MediaError(Conflict):
    default_code = "media.failed"
    default_message = N_("The video connection could not be set up. Please try again.")


class RoomNotOpen(NotFound):
    default_code = "media.room_not_open"
    default_message = N_("This visit is not open for video now.")


class PrivilegedVisit(Forbidden):
    """A monitor asked for a legal visit, or a recorder was asked for one."""

    default_code = "media.privileged"
    default_message = N_("This is a privileged legal visit: nobody may watch or record it.")


class MediaEngine(Protocol):
    """Implemented by each engine. Every method is safe to call from the web server's event loop: the
    engine does its media work elsewhere (worker processes or threads) and only awaits the result."""

    async def start(self, on_event: MediaEventSink) -> None:
        """Start the engine's workers; events are delivered to `on_event`."""

    async def stop(self) -> None:
        """Close every room (finalising recordings) and stop the workers."""

    async def open_visit(self, visit: VisitMedia) -> None:
        """Open (or keep) the room for a visit. Idempotent while the room is open."""

    async def admit(self, visit_id: int, side: Side, offer: SessionDescription) -> SessionDescription:
        """Connect one side from its offer (ICE candidates gathered in the SDP) and return the answer.
        Media from each side goes to the other side, the recorder (social visits) and the monitors."""

    async def drop(self, visit_id: int, side: Side) -> None:
        """Disconnect one side (it may be admitted again later). Nothing happens when the side (or the
        room) is not there."""

    async def subscribe_monitor(
        self, visit_id: int, monitor_key: str, offer: SessionDescription
    ) -> SessionDescription:
        """Send both sides' media to a monitoring officer (receive-only). Raises PrivilegedVisit for a
        legal visit, whatever the caller believes."""

    async def unsubscribe_monitor(self, visit_id: int, monitor_key: str) -> None:
        """Stop sending to that monitor; nothing happens when it is not subscribed."""

    async def warn(self, visit_id: int, text: str) -> None:
        """Mark a warning on the visit's media timeline (the recording's event log); the signalling hub
        shows it to both sides."""

    async def set_video_paused(self, visit_id: int, side: Side, paused: bool) -> None:
        """Stop (or resume) forwarding one side's video to the other side; recording and monitors keep
        it."""

    async def close_visit(self, visit_id: int) -> RecordingResult | None:
        """End the room: cut all media at once, finalise and return the recording (None for a legal
        visit, when nothing was recorded, or when the room is not open)."""

    async def status(self, visit_id: int) -> RoomStatus | None:
        """The room's state, or None when it is not open."""

    async def recover_recordings(self, paths: list[Path]) -> list[RecordingResult]:
        """After a crash: examine recordings left unfinished and return what each holds."""
