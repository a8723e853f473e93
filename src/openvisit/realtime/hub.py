"""The signalling hub: the sockets of live visits and of monitoring officers, and the timers of live
visits. It knows rooms, sides, monitors and time; it does not know the database or the media engine —
`services.live_rooms` drives it and decides what is said.

- One socket per side: attaching a side's new socket tells the older one `replaced` and closes it (4000).
- Everything said to sockets goes through the event bus (topic `visit.{id}` for a visit's sides,
  `monitors.{facility_id}` for a facility's monitors); each hub delivers to the sockets it holds, so with a
  shared bus the sides of one visit may sit on different nodes.
- Messages may carry an English msgid under `_msgid` (with `_params`, whose values under `_tparams` are
  msgids too): each socket gets it translated into its own language as `message`.
- Timers: per visit, the countdown marks (domain.live.COUNTDOWN_MINUTES) and the hard end. They sleep
  by the injected clock in steps of at most `tick` seconds, so a clock moved by a test (or by NTP) is
  noticed within a step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from openvisit.domain.live import countdown_marks
from openvisit.i18n import translate
from openvisit.realtime import messages
from openvisit.realtime.bus import Event, EventBus, Subscription

log = logging.getLogger("openvisit.realtime")

CLOSE_NORMAL = 1000
CLOSE_REPLACED = 4000
CLOSE_FORBIDDEN = 4403
CLOSE_STATE = 4409

SIDES = ("visitor", "resident")
Clock = Callable[[], datetime]


class Connection(Protocol):
    """A socket as the hub sees it (web/ws.py adapts Starlette's WebSocket)."""

    @property
    def key(self) -> str:
        """Unique for the life of the process (and across nodes when the bus is shared)."""

    @property
    def language(self) -> str: ...

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one JSON message; a socket already gone is ignored."""

    async def close(self, code: int) -> None:
        """Close the socket with `code`; closing twice does nothing."""


def localise(message: Mapping[str, Any], language: str) -> dict[str, Any]:
    """The message as one reader gets it: `_msgid` translated into `message`, private keys removed."""
    out = {k: v for k, v in message.items() if not k.startswith("_")}
    msgid = message.get("_msgid")
    if isinstance(msgid, str):
        params = dict(message.get("_params") or {})
        for name, inner in dict(message.get("_tparams") or {}).items():
            params[name] = translate(language, str(inner))
        out["message"] = translate(language, msgid, params or None)
    return out


@dataclass
class _Room:
    sides: dict[str, Connection] = field(default_factory=dict)
    subscription: Subscription | None = None


@dataclass
class _Wall:
    monitors: dict[str, Connection] = field(default_factory=dict)
    subscription: Subscription | None = None


MarkHandler = Callable[[int], Awaitable[None]]
EndHandler = Callable[[], Awaitable[None]]


class SignallingHub:
    """Rooms of sides, walls of monitors and the visits' timers of one process."""

    def __init__(self, bus: EventBus, clock: Clock, *, tick: float = 1.0) -> None:
        self.bus = bus
        self.clock = clock
        self.tick = tick
        self._rooms: dict[int, _Room] = {}
        self._walls: dict[int, _Wall] = {}
        self._timers: dict[int, asyncio.Task[None]] = {}
        self._closed = False

    # --- sides ----------------------------------------------------------------------------------

    async def attach_side(self, visit_id: int, side: str, conn: Connection) -> None:
        """`conn` becomes the side's socket; the side's older socket, here or on another node, is told
        `replaced` and closed."""
        room = self._rooms.setdefault(visit_id, _Room())
        if room.subscription is None:
            room.subscription = self.bus.subscribe(f"visit.{visit_id}", self._room_handler(visit_id))
        previous = room.sides.get(side)
        room.sides[side] = conn
        if previous is not None and previous.key != conn.key:
            await self._replace(previous)
        await self.bus.publish(f"visit.{visit_id}", {"kind": "claim", "side": side, "key": conn.key})

    def detach_side(self, visit_id: int, side: str, conn: Connection) -> bool:
        """Forget `conn` as the side's socket; False when it was not (any more) the side's socket — it had
        been replaced — so that its closing must not disturb the newer one."""
        room = self._rooms.get(visit_id)
        if room is None or room.sides.get(side) is not conn:
            return False
        del room.sides[side]
        self._drop_room_if_empty(visit_id)
        return True

    def is_current(self, visit_id: int, side: str, conn: Connection) -> bool:
        room = self._rooms.get(visit_id)
        return room is not None and room.sides.get(side) is conn

    def sides_here(self, visit_id: int) -> frozenset[str]:
        """Sides of the visit with a socket on this node."""
        room = self._rooms.get(visit_id)
        return frozenset(room.sides) if room else frozenset()

    def visits_here(self) -> frozenset[int]:
        return frozenset(self._rooms)

    async def to_sides(self, visit_id: int, message: Mapping[str, Any], sides: Iterable[str] = SIDES) -> None:
        """Say `message` to the visit's sides (both unless named)."""
        await self.bus.publish(
            f"visit.{visit_id}", {"kind": "send", "sides": list(sides), "message": dict(message)}
        )

    async def close_sides(self, visit_id: int, code: int = CLOSE_NORMAL) -> None:
        """Close every socket of the visit (after `ended`)."""
        await self.bus.publish(f"visit.{visit_id}", {"kind": "close", "code": code})

    def _room_handler(self, visit_id: int) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            room = self._rooms.get(visit_id)
            if room is None:
                return
            kind = event.get("kind")
            if kind == "send":
                message = event["message"]
                for side in event.get("sides", SIDES):
                    conn = room.sides.get(side)
                    if conn is not None:
                        await conn.send(localise(message, conn.language))
            elif kind == "claim":
                conn = room.sides.get(event["side"])
                if conn is not None and conn.key != event["key"]:
                    del room.sides[event["side"]]
                    await self._replace(conn)
                    self._drop_room_if_empty(visit_id)
            elif kind == "close":
                conns = list(room.sides.values())
                room.sides.clear()
                self._drop_room_if_empty(visit_id)
                for conn in conns:
                    await conn.close(int(event.get("code", CLOSE_NORMAL)))

        return handle

    async def _replace(self, conn: Connection) -> None:
        await conn.send(messages.replaced())
        await conn.close(CLOSE_REPLACED)

    def _drop_room_if_empty(self, visit_id: int) -> None:
        room = self._rooms.get(visit_id)
        if room is not None and not room.sides:
            if room.subscription is not None:
                room.subscription.close()
            del self._rooms[visit_id]

    # --- monitors -------------------------------------------------------------------------------

    def attach_monitor(self, facility_id: int, conn: Connection) -> None:
        """A monitoring officer's socket joins the facility's wall."""
        wall = self._walls.setdefault(facility_id, _Wall())
        if wall.subscription is None:
            wall.subscription = self.bus.subscribe(f"monitors.{facility_id}", self._wall_handler(facility_id))
        wall.monitors[conn.key] = conn

    def detach_monitor(self, facility_id: int, conn: Connection) -> None:
        wall = self._walls.get(facility_id)
        if wall is None:
            return
        wall.monitors.pop(conn.key, None)
        if not wall.monitors:
            if wall.subscription is not None:
                wall.subscription.close()
            del self._walls[facility_id]

    def walls_here(self) -> frozenset[int]:
        """Facilities with a monitor connected to this node."""
        return frozenset(self._walls)

    async def to_monitors(self, facility_id: int, message: Mapping[str, Any]) -> None:
        """Say `message` to every monitor of the facility."""
        await self.bus.publish(f"monitors.{facility_id}", {"kind": "send", "message": dict(message)})

    def _wall_handler(self, facility_id: int) -> Callable[[Event], Awaitable[None]]:
        async def handle(event: Event) -> None:
            wall = self._walls.get(facility_id)
            if wall is None or event.get("kind") != "send":
                return
            for conn in list(wall.monitors.values()):
                await conn.send(localise(event["message"], conn.language))

        return handle

    # --- timers ---------------------------------------------------------------------------------

    def schedule(self, visit_id: int, ends_at: datetime, on_mark: MarkHandler, on_end: EndHandler) -> None:
        """Run `on_mark(minutes)` at each countdown mark still ahead and `on_end()` at `ends_at`. A visit
        already scheduled keeps its timer (its end does not move)."""
        if self._closed or visit_id in self._timers:
            return
        # The marks still ahead are fixed now, not when the task first runs.
        marks = countdown_marks(ends_at, self.clock())
        task = asyncio.create_task(
            self._run(visit_id, marks, ends_at, on_mark, on_end), name=f"visit-{visit_id}-timer"
        )
        self._timers[visit_id] = task

    def scheduled(self, visit_id: int) -> bool:
        return visit_id in self._timers

    def cancel(self, visit_id: int) -> None:
        """Stop the visit's timer (the visit ended some other way). Safe from inside the timer itself,
        which is then only forgotten, not cancelled, so its handler runs to its end."""
        task = self._timers.pop(visit_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def sleep_until(self, at: datetime) -> None:
        """Sleep until the clock reads `at`, checking it at least every `tick` seconds."""
        while True:
            remaining = (at - self.clock()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, self.tick))

    async def _run(
        self,
        visit_id: int,
        marks: list[tuple[int, datetime]],
        ends_at: datetime,
        on_mark: MarkHandler,
        on_end: EndHandler,
    ) -> None:
        try:
            for minutes, at in marks:
                await self.sleep_until(at)
                try:
                    await on_mark(minutes)
                except Exception:
                    log.exception("countdown of visit %s failed", visit_id)
            await self.sleep_until(ends_at)
            try:
                await on_end()
            except Exception:
                log.exception("the end of visit %s failed", visit_id)
        finally:
            if self._timers.get(visit_id) is asyncio.current_task():
                del self._timers[visit_id]

    # --- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop every timer and close every socket (the server is stopping)."""
        self._closed = True
        timers = list(self._timers.values())
        self._timers.clear()
        for task in timers:
            task.cancel()
        for task in timers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for visit_id in list(self._rooms):
            room = self._rooms.pop(visit_id)
            if room.subscription is not None:
                room.subscription.close()
            for conn in room.sides.values():
                await conn.close(CLOSE_NORMAL)
        for facility_id in list(self._walls):
            wall = self._walls.pop(facility_id)
            if wall.subscription is not None:
                wall.subscription.close()
            for conn in wall.monitors.values():
                await conn.close(CLOSE_NORMAL)
