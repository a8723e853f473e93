"""The live rooms of this process: the one place where the sockets (realtime.hub), the media
(media.engine) and the database (services.live, services.recordings) meet.

The web layer's socket endpoints and REST routes call these coroutines; each decides in the database
first (in a worker thread, so the event loop never waits on a query), then acts on the media and tells
the sockets. What happens, in order:

- join: live.join (rights, window, rules, start) → the room opened if it is not (a new recording row
  and file per opening of a social visit) → the socket attached (an older socket of that side is
  `replaced`) → the visit's timers → `welcome`.
- offer: engine.admit → `answer`. leave / socket lost: engine.drop, a VisitEvent, `peer left`.
- engine events: SIDE_CONNECTED → `peer joined` to the other side; SIDE_LOST → `peer left`;
  RECORDING_FAILED → the visit fails (a social visit is never carried on unrecorded).
- timers: `time` at 5 and 1 minutes left; at the end engine.close_visit, live.end_at_schedule
  (completed, or failed when the station was lost and never came back), `ended` to both sides and the
  monitors, the recording finalised.
- termination: checked, media cut (engine.close_visit) at once, then stored (live.terminate), `ended`
  with the reason to both sides and the monitors.
- watch: live.check_watch (a legal visit: audited, refused) and engine.subscribe_monitor (which refuses
  a legal visit again; that refusal is audited too).

Every visit's steps that open or close its room run under one lock per visit, so an end, a termination
and a join never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from openvisit.domain import live as rules
from openvisit.domain.enums import VisitKind
from openvisit.domain.errors import N_, Conflict
from openvisit.domain.principal import Principal
from openvisit.media.engine import (
    MediaEngine,
    MediaError,
    MediaEvent,
    MediaEventKind,
    PrivilegedVisit,
    RecordingResult,
    RoomNotOpen,
    SessionDescription,
    Side,
    VisitMedia,
)
from openvisit.realtime import messages
from openvisit.realtime.bus import InProcessBus
from openvisit.realtime.hub import CLOSE_NORMAL, Connection, SignallingHub
from openvisit.services import live, recordings
from openvisit.services.context import AppContext, RequestMeta

log = logging.getLogger("openvisit.live")

P = ParamSpec("P")
T = TypeVar("T")

WALL_REFRESH_SECONDS = 30.0
"""How often open walls are sent the list again, so that visits coming up appear without an event."""

ENDED_MESSAGES: dict[rules.Outcome, str] = {
    rules.Outcome.COMPLETED: N_("The visit has ended."),
    rules.Outcome.TERMINATED: N_("Staff ended the visit. Reason: %(reason)s"),
    rules.Outcome.FAILED: N_(
        "The visit was cut short (%(reason)s). It does not count toward your visits, and you can book a "
        "new time with priority."
    ),
}
ENDED_FAILED_RESIDENT = N_("The visit was cut short (%(reason)s). It does not count toward your visits.")


class MediaUnavailable(Conflict):
    default_code = "media.unavailable"
    default_message = N_("Live video is not available on this server.")


@dataclass
class _Room:
    """What this process knows of a visit it runs (or recovered after a restart)."""

    visit_id: int
    facility_id: int
    kind: VisitKind
    ends_at: datetime
    recording_id: int | None = None
    recording_path: Path | None = None
    media_open: bool = False
    recovered: bool = False
    rejoined: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class Seat:
    """A socket's place in a visit once welcomed: which visit, which side."""

    visit_id: int
    side: Side
    facility_id: int


def _reason_label(reason: str) -> str:
    return rules.TERMINATION_REASONS.get(reason) or rules.FAILURE_REASONS.get(reason) or reason


class LiveRooms:
    """Runs live visits in this process (see the module's docstring)."""

    def __init__(
        self,
        ctx: AppContext,
        engine: MediaEngine | None,
        *,
        hub: SignallingHub | None = None,
        tick: float = 1.0,
        wall_refresh_seconds: float = WALL_REFRESH_SECONDS,
        eager: bool = False,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.hub = hub or SignallingHub(InProcessBus(), ctx.clock, tick=tick)
        self._rooms: dict[int, _Room] = {}
        self._engine_started = False
        self._engine_lock = asyncio.Lock()
        self._watching: dict[str, set[int]] = {}
        self._wall_refresh_seconds = wall_refresh_seconds
        self._refresher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._eager = eager

    @property
    def available(self) -> bool:
        """Whether this server carries live video at all (settings.media_engine)."""
        return self.engine is not None

    async def _db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _media(self) -> MediaEngine:
        """The engine, started on first use (a server that never hosts a visit never starts workers)."""
        if self.engine is None:
            raise MediaUnavailable()
        if not self._engine_started:
            async with self._engine_lock:
                if not self._engine_started:
                    await self.engine.start(self._on_media_event)
                    self._engine_started = True
        return self.engine

    # --- life of the process ----------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a restart left behind and start refreshing the monitoring walls; with `eager`, start
        the engine's workers in the background, so the first visit of the day does not wait for them."""
        await self.recover()
        if self._eager and self.engine is not None:
            self._spawn(self._start_engine())
        if self._wall_refresh_seconds > 0:
            self._refresher = asyncio.create_task(self._refresh_walls_forever(), name="live-wall-refresh")

    async def stop(self) -> None:
        """Stop the timers, close the sockets and the engine (which finalises open recordings)."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.hub.close()
        if self.engine is not None and self._engine_started:
            open_rooms = [room for room in self._rooms.values() if room.media_open]
            for room in open_rooms:
                with contextlib.suppress(Exception):
                    result = await self.engine.close_visit(room.visit_id)
                    await self._finish_recording(room, result)
            await self.engine.stop()
            self._engine_started = False
        # Visits left in progress are found by the next start's recovery.
        self._rooms.clear()

    async def recover(self) -> live.Recovery:
        """After a restart: visits in progress whose end passed fail (credited); those with time left get
        their timers, for the sides to rejoin; recordings left RECORDING are examined by the engine and
        finalised or marked damaged."""
        recovery = await self._db(live.recover_after_restart, self.ctx)
        for ended in recovery.failed:
            log.info("visit %s failed: the server restarted during it", ended.visit_id)
        if recovery.recordings and self.engine is not None:
            # Examining files needs no worker: the engine is not started for it.
            # A file never written (its room did not open) has nothing to examine: it is marked damaged.
            paths = [Path(path) for _, path in recovery.recordings if Path(path).is_file()]
            results = await self.engine.recover_recordings(paths) if paths else []
            await self._db(recordings.recover, self.ctx, recovery.recordings, results)
        for item in recovery.open:
            room = _Room(item.visit_id, item.facility_id, item.kind, item.ends_at, recovered=True)
            self._rooms[item.visit_id] = room
            self._schedule(room)
        return recovery

    # --- participants ---------------------------------------------------------------------------------

    async def check_join(self, p: Principal, visit_id: int, meta: RequestMeta) -> live.JoinGrant:
        """Whether `p` may connect to the visit now and as which side (nothing is changed)."""
        grant = await self._db(live.check_join, self.ctx, p, visit_id, meta)
        if self.engine is None:
            raise MediaUnavailable()
        return grant

    async def join(self, p: Principal, visit_id: int, conn: Connection, meta: RequestMeta) -> Seat:
        """The side behind `conn` accepted the rules and joins: the visit starts if it was approved, its
        room opens if it is not, the socket takes the side's seat and is welcomed."""
        engine = await self._media()
        grant = await self._db(live.join, self.ctx, p, visit_id, meta)
        room = self._rooms.get(visit_id)
        if room is None:
            room = _Room(visit_id, grant.facility_id, grant.kind, grant.ends_at)
            self._rooms[visit_id] = room
        async with room.lock:
            if self._rooms.get(visit_id) is not room:
                raise Conflict("live.over", N_("This visit is over."))
            await self._open_media(engine, room)
            if room.recovered:
                room.rejoined = True
            await self.hub.attach_side(visit_id, grant.side.value, conn)
            self._schedule(room)
            status = await engine.status(visit_id)
        peer_connected = status is not None and grant.side.other in status.sides_connected
        await conn.send(
            messages.welcome(
                visit_id=visit_id,
                side=grant.side.value,
                kind=grant.kind.value,
                notice=grant.notice.value,
                starts_at=grant.starts_at,
                ends_at=grant.ends_at,
                server_time=self.ctx.clock(),
                peer_connected=peer_connected,
            )
        )
        await self.refresh_wall(grant.facility_id)
        return Seat(visit_id, grant.side, grant.facility_id)

    async def _open_media(self, engine: MediaEngine, room: _Room) -> None:
        if room.media_open and await engine.status(room.visit_id) is not None:
            return
        if room.media_open:
            # The engine lost the room (its worker died): what was recorded is examined, a new file starts.
            room.media_open = False
            await self._recover_recording(engine, room)
        start = None
        if room.kind is VisitKind.SOCIAL:
            start = await self._db(recordings.begin, self.ctx, room.visit_id)
            room.recording_id, room.recording_path = start.recording_id, start.path
        try:
            await engine.open_visit(
                VisitMedia(
                    visit_id=room.visit_id,
                    kind=room.kind,
                    ends_at=room.ends_at,
                    recording_path=start.path if start else None,
                )
            )
        except Exception:
            log.exception("the room of visit %s could not be opened", room.visit_id)
            await self._recover_recording(engine, room)
            raise MediaError() from None
        room.media_open = True

    async def offer(self, seat: Seat, conn: Connection, sdp: str) -> None:
        """A side's offer: admitted by the engine, answered on the socket."""
        if not self.hub.is_current(seat.visit_id, seat.side.value, conn):
            raise messages.OutOfOrder()
        engine = await self._media()
        answer = await engine.admit(seat.visit_id, seat.side, SessionDescription(sdp=sdp, type="offer"))
        if self.hub.is_current(seat.visit_id, seat.side.value, conn):
            await conn.send(messages.answer(answer.sdp))

    async def leave(self, seat: Seat, conn: Connection) -> None:
        """The side leaves on purpose (it may rejoin inside the window)."""
        await self._gone(seat, conn, "left")

    async def disconnected(self, seat: Seat, conn: Connection) -> None:
        """The side's socket closed without `leave`: its connection is lost. Nothing happens when the socket
        had already been replaced by a newer one of the same side."""
        await self._gone(seat, conn, "lost")

    async def _gone(self, seat: Seat, conn: Connection, what: str) -> None:
        if not self.hub.detach_side(seat.visit_id, seat.side.value, conn):
            return
        room = self._rooms.get(seat.visit_id)
        if self.engine is not None and room is not None and room.media_open:
            with contextlib.suppress(Exception):
                await self.engine.drop(seat.visit_id, seat.side)
        await self._db(live.record_side, self.ctx, seat.visit_id, seat.side, what)
        await self.hub.to_sides(
            seat.visit_id, messages.peer(seat.side.value, "left"), [seat.side.other.value]
        )
        await self.refresh_wall(seat.facility_id)

    # --- the engine's events --------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_engine(self) -> None:
        try:
            await self._media()
        except Exception:
            log.exception("the media engine could not be started; the first join will try again")

    async def _on_media_event(self, event: MediaEvent) -> None:
        # The engine's own task delivers events; the work is done beside it so the engine never waits.
        self._spawn(self._handle_media_event(event))

    async def _handle_media_event(self, event: MediaEvent) -> None:
        room = self._rooms.get(event.visit_id)
        if room is None:
            return
        try:
            if event.kind is MediaEventKind.SIDE_CONNECTED and event.side is not None:
                await self._db(live.record_side, self.ctx, event.visit_id, event.side, "connected")
                await self.hub.to_sides(
                    event.visit_id, messages.peer(event.side.value, "joined"), [event.side.other.value]
                )
                await self.refresh_wall(room.facility_id)
            elif event.kind is MediaEventKind.SIDE_LOST and event.side is not None:
                await self._db(live.record_side, self.ctx, event.visit_id, event.side, "lost")
                await self.hub.to_sides(
                    event.visit_id, messages.peer(event.side.value, "left"), [event.side.other.value]
                )
                await self.refresh_wall(room.facility_id)
            elif event.kind is MediaEventKind.RECORDING_FAILED:
                log.error("the recording of visit %s failed: %s", event.visit_id, event.detail)
                await self.fail(
                    event.visit_id, rules.FailureReason.TECHNICAL, note=f"recording: {event.detail}"[:200]
                )
        except Exception:
            log.exception("media event %s of visit %s could not be handled", event.kind, event.visit_id)

    # --- endings --------------------------------------------------------------------------------------

    def _schedule(self, room: _Room) -> None:
        visit_id = room.visit_id

        async def on_mark(minutes: int) -> None:
            await self.hub.to_sides(visit_id, messages.time_left(minutes))

        async def on_end() -> None:
            await self._end_at_schedule(visit_id)

        self.hub.schedule(visit_id, room.ends_at, on_mark, on_end)

    async def _close_media(self, room: _Room) -> RecordingResult | None:
        if self.engine is None or not room.media_open:
            return None
        room.media_open = False
        try:
            return await self.engine.close_visit(room.visit_id)
        except Exception:
            log.exception("the room of visit %s could not be closed cleanly", room.visit_id)
            return None

    async def _finish_recording(self, room: _Room, result: RecordingResult | None) -> None:
        if room.recording_id is None:
            return
        recording_id, room.recording_id = room.recording_id, None
        if (
            result is None
            and room.recording_path is not None
            and room.recording_path.is_file()
            and self.engine is not None
        ):
            # Nothing came back from closing the room: whatever is in the file is examined.
            with contextlib.suppress(Exception):
                found = await self.engine.recover_recordings([room.recording_path])
                result = found[0] if found else None
        await self._db(recordings.finish, self.ctx, recording_id, result)

    async def _recover_recording(self, engine: MediaEngine, room: _Room) -> None:
        if room.recording_id is None:
            return
        recording_id, room.recording_id = room.recording_id, None
        result = None
        if room.recording_path is not None and room.recording_path.is_file():
            with contextlib.suppress(Exception):
                found = await engine.recover_recordings([room.recording_path])
                result = found[0] if found else None
        await self._db(recordings.finish, self.ctx, recording_id, result)

    async def _announce_end(self, ended: live.Ended | None, visit_id: int, facility_id: int) -> None:
        if ended is not None:
            outcome, reason = ended.ending.outcome, ended.ending.reason
        else:
            outcome, reason = await self._db(live.outcome_of, self.ctx, visit_id)
        label = _reason_label(reason)
        text = {"_msgid": ENDED_MESSAGES[outcome], "_tparams": {"reason": label}}
        if outcome is rules.Outcome.FAILED:
            await self.hub.to_sides(
                visit_id, {**messages.ended(outcome.value, reason, ""), **text}, ["visitor"]
            )
            resident = {"_msgid": ENDED_FAILED_RESIDENT, "_tparams": {"reason": label}}
            await self.hub.to_sides(
                visit_id, {**messages.ended(outcome.value, reason, ""), **resident}, ["resident"]
            )
        else:
            await self.hub.to_sides(visit_id, {**messages.ended(outcome.value, reason, ""), **text})
        await self.hub.close_sides(visit_id, CLOSE_NORMAL)
        await self.hub.to_monitors(facility_id, messages.ended(outcome.value, reason, "", visit_id=visit_id))

    async def _finish(self, room: _Room, result: RecordingResult | None, ended: live.Ended | None) -> None:
        self.hub.cancel(room.visit_id)
        if self._rooms.get(room.visit_id) is room:
            del self._rooms[room.visit_id]
        await self._announce_end(ended, room.visit_id, room.facility_id)
        await self._finish_recording(room, result)
        await self.refresh_wall(room.facility_id)

    async def _end_room(
        self, visit_id: int, store: Callable[[_Room], Awaitable[live.Ended | None]] | None = None
    ) -> None:
        """Close a room still open: its media first, then `store` the end (None: the database has it
        already), then tell everyone."""
        room = self._rooms.get(visit_id)
        if room is None:
            return
        async with room.lock:
            if self._rooms.get(visit_id) is not room:
                return
            result = await self._close_media(room)
            ended = await store(room) if store is not None else None
            await self._finish(room, result, ended)

    async def _end_at_schedule(self, visit_id: int) -> None:
        async def store(room: _Room) -> live.Ended | None:
            return await self._db(
                live.end_at_schedule, self.ctx, visit_id, recovered=room.recovered, rejoined=room.rejoined
            )

        await self._end_room(visit_id, store)

    async def terminate(
        self, p: Principal, visit_id: int, reason: str | None, note: str, meta: RequestMeta
    ) -> live.Ended:
        """An officer ends a live visit: checked, media cut at once, then stored with the reason; both
        sides and the monitors are told why."""
        rules.check_termination_reason(reason)
        await self._db(live.check_may_terminate, self.ctx, p, visit_id)
        room = self._rooms.get(visit_id)
        if room is None:
            return await self._terminate_without_room(p, visit_id, reason, note, meta)
        async with room.lock:
            if self._rooms.get(visit_id) is not room:
                # It ended while we waited for the lock: the database says so (not in progress).
                return await self._terminate_without_room(p, visit_id, reason, note, meta)
            result = await self._close_media(room)
            try:
                ended = await self._db(live.terminate, self.ctx, p, visit_id, reason, note, meta)
            except Exception:
                # Stored nothing (it ended otherwise meanwhile, or the database failed): the room is over
                # for its media anyway, so its end is told as it is in the database.
                await self._finish(room, result, None)
                raise
            await self._finish(room, result, ended)
            return ended

    async def _terminate_without_room(
        self, p: Principal, visit_id: int, reason: str | None, note: str, meta: RequestMeta
    ) -> live.Ended:
        ended = await self._db(live.terminate, self.ctx, p, visit_id, reason, note, meta)
        await self._announce_end(ended, visit_id, ended.facility_id)
        await self.refresh_wall(ended.facility_id)
        return ended

    async def report_station_failure(
        self, p: Principal, visit_id: int, note: str, meta: RequestMeta
    ) -> live.Ended:
        """Staff say the station failed: a live visit is ended as FAILED (credited); a completed one is
        turned FAILED."""
        room = self._rooms.get(visit_id)
        if room is None:
            ended = await self._db(live.report_station_failure, self.ctx, p, visit_id, note, meta)
            return ended
        async with room.lock:
            ended = await self._db(live.report_station_failure, self.ctx, p, visit_id, note, meta)
            if self._rooms.get(visit_id) is room:
                result = await self._close_media(room)
                await self._finish(room, result, ended)
            return ended

    async def fail(self, visit_id: int, reason: rules.FailureReason, note: str = "") -> live.Ended | None:
        """The system cannot carry the visit on: media closed, FAILED (credited, priority re-booking)."""
        room = self._rooms.get(visit_id)
        if room is None:
            return await self._db(live.fail, self.ctx, visit_id, reason, note)
        async with room.lock:
            if self._rooms.get(visit_id) is not room:
                return None
            result = await self._close_media(room)
            ended = await self._db(live.fail, self.ctx, visit_id, reason, note)
            await self._finish(room, result, ended)
            return ended

    # --- officers -------------------------------------------------------------------------------------

    async def warn(self, p: Principal, visit_id: int, text: str | None, meta: RequestMeta) -> live.Warned:
        """An officer's warning, shown to both sides (nobody is disconnected) and marked on the recording."""
        warned = await self._db(live.warn, self.ctx, p, visit_id, text, meta)
        room = self._rooms.get(visit_id)
        if self.engine is not None and room is not None and room.media_open:
            with contextlib.suppress(Exception):
                await self.engine.warn(visit_id, warned.text)
        await self.hub.to_sides(visit_id, messages.warning(warned.text, warned.at))
        return warned

    async def pause(self, p: Principal, visit_id: int, side: Side, paused: bool, meta: RequestMeta) -> None:
        """An officer stops (or resumes) one side's video to the other side; both sides are told."""
        await self._db(live.pause, self.ctx, p, visit_id, side, paused, meta)
        room = self._rooms.get(visit_id)
        if self.engine is not None and room is not None and room.media_open:
            await self.engine.set_video_paused(visit_id, side, paused)
        await self.hub.to_sides(visit_id, messages.paused(side.value, paused))

    async def open_wall(self, p: Principal, facility_id: int, conn: Connection) -> list[live.WallVisit]:
        """A monitoring officer's socket joins the facility's wall and gets its visits."""
        await self._db(live.check_monitor, self.ctx, p, facility_id)
        self.hub.attach_monitor(facility_id, conn)
        self._watching[conn.key] = set()
        tiles = await self.wall(p, facility_id)
        await conn.send(messages.visits([t.as_message() for t in tiles]))
        return tiles

    async def close_wall(self, facility_id: int, conn: Connection) -> None:
        """The officer's socket closed: every watch of it ends."""
        self.hub.detach_monitor(facility_id, conn)
        watched = self._watching.pop(conn.key, set())
        if self.engine is not None and self._engine_started:
            for visit_id in watched:
                with contextlib.suppress(Exception):
                    await self.engine.unsubscribe_monitor(visit_id, conn.key)

    async def wall(self, p: Principal, facility_id: int) -> list[live.WallVisit]:
        """The facility's live and imminent visits with the sides connected now (for its officers)."""
        tiles = await self._db(live.live_wall, self.ctx, p, facility_id)
        return await self._with_sides(tiles)

    async def _with_sides(self, tiles: list[live.WallVisit]) -> list[live.WallVisit]:
        if self.engine is None or not self._engine_started:
            return tiles
        out = []
        for tile in tiles:
            status = await self.engine.status(tile.id) if tile.id in self._rooms else None
            out.append(tile if status is None else replace(tile, sides=status.sides_connected))
        return out

    async def refresh_wall(self, facility_id: int) -> None:
        """Send the facility's open walls the list again (after a join, a departure, an end)."""
        if facility_id not in self.hub.walls_here():
            return
        tiles = await self._with_sides(await self._db(live.wall_of, self.ctx, facility_id))
        await self.hub.to_monitors(facility_id, messages.visits([t.as_message() for t in tiles]))

    async def close_ended(self) -> None:
        """Close the rooms of visits that ended outside them (a staff cancellation, a lockdown, another
        server): their media is cut, and both sides and the monitors are told how the visit ended."""
        if not self._rooms:
            return
        for visit_id in await self._db(live.not_live, self.ctx, list(self._rooms)):
            await self._end_room(visit_id)

    async def _refresh_walls_forever(self) -> None:
        while True:
            await asyncio.sleep(self._wall_refresh_seconds)
            try:
                await self.close_ended()
            except Exception:
                log.exception("rooms of visits that ended elsewhere could not be closed")
            for facility_id in self.hub.walls_here():
                try:
                    await self.refresh_wall(facility_id)
                except Exception:
                    log.exception("the wall of facility %s could not be refreshed", facility_id)

    async def watch(
        self, p: Principal, facility_id: int, conn: Connection, visit_id: int, sdp: str, meta: RequestMeta
    ) -> None:
        """An officer watches a visit of the wall's facility: checked in the database (a legal visit is
        refused and audited) and by the engine (which refuses a legal visit whatever it is told)."""
        visit_facility = await self._db(live.check_watch, self.ctx, p, visit_id, meta)
        if visit_facility != facility_id:
            raise Conflict("live.other_facility", N_("This visit is not on this wall."))
        room = self._rooms.get(visit_id)
        if room is None or not room.media_open:
            raise RoomNotOpen()
        engine = await self._media()
        try:
            answer = await engine.subscribe_monitor(
                visit_id, conn.key, SessionDescription(sdp=sdp, type="offer")
            )
        except PrivilegedVisit:
            await self._db(live.record_watch_refused, self.ctx, p, visit_id, facility_id, meta)
            raise
        self._watching.setdefault(conn.key, set()).add(visit_id)
        await self._db(live.record_watch, self.ctx, p, visit_id, facility_id, meta)
        await conn.send(messages.answer(answer.sdp, visit_id=visit_id))

    async def unwatch(self, conn: Connection, visit_id: int) -> None:
        """The officer stops watching a visit."""
        self._watching.get(conn.key, set()).discard(visit_id)
        if self.engine is not None and self._engine_started:
            await self.engine.unsubscribe_monitor(visit_id, conn.key)
