"""A media worker: the rooms of some visits, on an event loop of their own.

This is the process (or thread) boundary of the engine. `AiortcEngine` (in the web server's process)
sends plain requests — the engine interface's own dataclasses — and awaits the answers; everything
aiortc and PyAV do happens here. In a worker process the requests arrive over a socket pair as
length-prefixed pickles (both ends are our own code); in a worker thread they are handed over through
`asyncio.run_coroutine_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openvisit.domain.errors import DomainError
from openvisit.media.engine import (
    MediaError,
    MediaEvent,
    PrivilegedVisit,
    RecordingResult,
    RoomNotOpen,
    RoomStatus,
    SessionDescription,
    Side,
    VisitMedia,
)
from openvisit.media.room import MediaTuning, Room

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls for cls in (MediaError, PrivilegedVisit, RoomNotOpen)
}
"""The errors that cross the process boundary as themselves; any other failure arrives as MediaError."""


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """What a worker needs to know, sent to it when it starts."""

    ice_servers: tuple[str, ...]
    tuning: MediaTuning


class WorkerCore:
    """The rooms of one worker. Every method runs on the worker's own event loop."""

    def __init__(self, options: WorkerOptions, emit: Callable[[MediaEvent], None]) -> None:
        self._options = options
        self._emit = emit
        self._rooms: dict[int, Room] = {}
        self._opening: dict[int, asyncio.Task[Room]] = {}

    async def call(self, method: str, args: tuple[Any, ...]) -> Any:
        handler = getattr(self, f"do_{method}", None)
        if handler is None:
            log.error("media worker: unknown request %r", method)
            raise MediaError("media.unknown_request")
        return await handler(*args)

    def _room(self, visit_id: int) -> Room:
        room = self._rooms.get(visit_id)
        if room is None:
            raise RoomNotOpen()
        return room

    async def do_ping(self) -> int:
        return os.getpid()

    async def do_open_visit(self, visit: VisitMedia) -> None:
        if visit.visit_id in self._rooms:
            return
        opening = self._opening.get(visit.visit_id)
        if opening is None:
            room = Room(visit, self._options.ice_servers, self._options.tuning, self._emit)
            opening = asyncio.create_task(self._open(room))
            self._opening[visit.visit_id] = opening
        await opening

    async def _open(self, room: Room) -> Room:
        try:
            await room.open()
            self._rooms[room.visit.visit_id] = room
            return room
        finally:
            del self._opening[room.visit.visit_id]

    async def do_admit(self, visit_id: int, side: Side, offer: SessionDescription) -> SessionDescription:
        return await self._room(visit_id).admit(side, offer)

    async def do_drop(self, visit_id: int, side: Side) -> None:
        room = self._rooms.get(visit_id)
        if room is not None:
            await room.drop(side)

    async def do_subscribe_monitor(
        self, visit_id: int, key: str, offer: SessionDescription
    ) -> SessionDescription:
        return await self._room(visit_id).subscribe_monitor(key, offer)

    async def do_unsubscribe_monitor(self, visit_id: int, key: str) -> None:
        room = self._rooms.get(visit_id)
        if room is not None:
            await room.unsubscribe_monitor(key)

    async def do_warn(self, visit_id: int, text: str) -> None:
        self._room(visit_id).warn(text)

    async def do_set_video_paused(self, visit_id: int, side: Side, paused: bool) -> None:
        self._room(visit_id).set_video_paused(side, paused)

    async def do_close_visit(self, visit_id: int) -> RecordingResult | None:
        room = self._rooms.pop(visit_id, None)
        return await room.close() if room is not None else None

    async def do_status(self, visit_id: int) -> RoomStatus | None:
        room = self._rooms.get(visit_id)
        return room.status() if room is not None else None

    async def do_close_all(self) -> None:
        rooms = list(self._rooms.values())
        self._rooms.clear()
        await asyncio.gather(*(room.close() for room in rooms), return_exceptions=True)


# --- the wire between the engine and a worker process ---------------------------------------------


def encode_message(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> Any:
    """The next message, or EOFError when the other end has gone."""
    try:
        (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise EOFError from exc
    return pickle.loads(body)  # noqa: S301 - written by our own engine over a private socket pair


def error_payload(exc: BaseException) -> tuple[str, str, str]:
    if isinstance(exc, DomainError) and type(exc).__name__ in ERRORS:
        return type(exc).__name__, exc.code, exc.message
    return MediaError.__name__, MediaError.default_code, MediaError.default_message


def error_from_payload(payload: tuple[str, str, str]) -> DomainError:
    name, code, message = payload
    return ERRORS.get(name, MediaError)(code, message)


async def serve(sock: socket.socket, options: WorkerOptions) -> None:
    """Answer the engine's requests until it says stop or goes away (then every room is closed)."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)

    def send(message: object) -> None:
        if not writer.is_closing():
            writer.write(encode_message(message))

    core = WorkerCore(options, lambda event: send(("event", event)))
    running: set[asyncio.Task[None]] = set()

    async def handle(request_id: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            result = await core.call(method, args)
        except Exception as exc:
            if not isinstance(exc, DomainError):
                log.exception("media worker: %s failed", method)
            send(("error", request_id, error_payload(exc)))
        else:
            send(("result", request_id, result))

    try:
        while True:
            try:
                request_id, method, args = await read_message(reader)
            except EOFError:
                break
            if method == "shutdown":
                await asyncio.gather(*running, return_exceptions=True)
                await core.do_close_all()
                send(("result", request_id, None))
                break
            task = asyncio.create_task(handle(request_id, method, args))
            running.add(task)
            task.add_done_callback(running.discard)
    finally:
        await core.do_close_all()
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def process_main(sock: socket.socket, options: WorkerOptions) -> None:
    """The entry point of a worker process (started with the spawn method)."""
    # Ctrl-C in a terminal reaches the whole process group; the engine decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="media worker %(process)d: %(levelname)s %(message)s")
    asyncio.run(serve(sock, options))
