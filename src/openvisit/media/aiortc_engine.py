"""The embedded media engine: aiortc peer connections in worker processes (or one worker thread).

`AiortcEngine` lives on the caller's event loop (the web server's) and does no media work there: each
room lives in one worker, and each call is a request to that worker whose answer the caller awaits.

- `settings.media_workers` = N > 0: N worker processes, started with the `spawn` method, each with its
  own asyncio loop (`worker.process_main`); a new room goes to the worker with the fewest rooms. A worker
  that dies is noticed at once (its socket closes): its rooms are gone (`status` returns None), every
  admitted side of each is reported `SIDE_LOST` (detail `worker_lost`), a recording it was writing is
  reported `RECORDING_FAILED` with its path, and a new worker takes its place.
- `settings.media_workers` = 0: one dedicated thread with its own asyncio loop (development, tests).

Within a worker, a busy visit does not hold up the others: decoding runs in aiortc's receiver threads,
encoding in the loop's executor, recording in the recorder's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import socket
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiortc.rtcicetransport import parse_stun_turn_uri

from openvisit.domain.enums import VisitKind
from openvisit.media.engine import (
    MediaError,
    MediaEvent,
    MediaEventKind,
    MediaEventSink,
    PrivilegedVisit,
    RecordingResult,
    RoomNotOpen,
    RoomStatus,
    SessionDescription,
    Side,
    VisitMedia,
)
from openvisit.media.recorder import recover_recordings
from openvisit.media.room import MediaTuning
from openvisit.media.worker import (
    WorkerCore,
    WorkerOptions,
    encode_message,
    error_from_payload,
    process_main,
    read_message,
)
from openvisit.settings import Settings

log = logging.getLogger(__name__)

START_SECONDS = 60.0
"""How long a new worker process may take to answer its first request (imports included)."""
STOP_SECONDS = 10.0
"""How long stopping waits for a worker to close its rooms before it is killed."""


class _Worker(Protocol):
    name: str
    rooms: set[int]

    @property
    def alive(self) -> bool: ...

    @property
    def pid(self) -> int: ...

    async def start(self) -> None: ...

    async def call(self, method: str, *args: Any) -> Any: ...

    async def stop(self) -> None: ...


class _ProcessWorker:
    """A worker process and the socket to it."""

    def __init__(self, name: str, options: WorkerOptions, engine: AiortcEngine) -> None:
        self.name = name
        self.rooms: set[int] = set()
        self._options = options
        self._engine = engine
        self._process: multiprocessing.process.BaseProcess | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._alive = False
        self._stopping = False

    @property
    def alive(self) -> bool:
        return self._alive

    @property
    def pid(self) -> int:
        pid = self._process.pid if self._process is not None else None
        return pid or 0

    async def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        ours, theirs = socket.socketpair()
        process = context.Process(
            target=process_main, args=(theirs, self._options), name=f"openvisit {self.name}", daemon=True
        )
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()  # the worker holds its own copy; ours must go, or its death would go unnoticed
        self._process = process
        reader, self._writer = await asyncio.open_unix_connection(sock=ours)
        self._alive = True
        self._reader_task = asyncio.create_task(self._read(reader), name=f"{self.name} reader")
        async with asyncio.timeout(START_SECONDS):
            await self.call("ping")

    async def call(self, method: str, *args: Any) -> Any:
        if not self._alive or self._writer is None:
            raise MediaError()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self._writer.write(encode_message((request_id, method, args)))
            return await future
        except (ConnectionError, RuntimeError) as exc:  # the socket broke as the worker died
            raise MediaError() from exc
        finally:
            self._pending.pop(request_id, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await read_message(reader)
                if message[0] == "event":
                    self._engine._deliver(message[1])
                    continue
                future = self._pending.get(message[1])
                if future is None or future.done():
                    continue
                if message[0] == "result":
                    future.set_result(message[2])
                else:
                    future.set_exception(error_from_payload(message[2]))
        except EOFError:
            pass
        finally:
            self._alive = False
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(MediaError())
            if self._writer is not None:
                self._writer.close()
            if not self._stopping:
                self._engine._worker_died(self)

    async def stop(self) -> None:
        self._stopping = True
        if self._alive:
            with contextlib.suppress(MediaError, TimeoutError):
                async with asyncio.timeout(STOP_SECONDS):
                    await self.call("shutdown")
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, STOP_SECONDS)
            if process.is_alive():
                process.kill()
                await asyncio.to_thread(process.join)
            process.close()
            self._process = None
        if self._reader_task is not None:
            await self._reader_task
            self._reader_task = None
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def reap(self) -> None:
        """After a death: collect the process."""
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join)
            process.close()
            self._process = None
        if self._writer is not None:
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()


class _ThreadWorker:
    """One thread of this process with its own event loop (`media_workers` = 0)."""

    def __init__(self, name: str, options: WorkerOptions, engine: AiortcEngine) -> None:
        self.name = name
        self.rooms: set[int] = set()
        self._options = options
        self._engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._core: WorkerCore | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def pid(self) -> int:
        return os.getpid()

    async def start(self) -> None:
        caller = asyncio.get_running_loop()
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def emit(event: MediaEvent) -> None:
            caller.call_soon_threadsafe(self._engine._deliver, event)

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._core = WorkerCore(self._options, emit)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"openvisit {self.name}", daemon=True)
        self._thread.start()
        await asyncio.to_thread(ready.wait)

    def _submit(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        assert self._loop is not None
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self._loop))

    async def call(self, method: str, *args: Any) -> Any:
        if not self.alive or self._core is None:
            raise MediaError()
        return await self._submit(self._core.call(method, args))

    async def stop(self) -> None:
        if not self.alive or self._core is None or self._loop is None:
            return
        await self._submit(self._core.do_close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        await asyncio.to_thread(self._thread.join)


@dataclass(eq=False)
class _RoomRecord:
    visit: VisitMedia
    worker: _Worker
    opened: asyncio.Future[None]
    sides: set[Side] = field(default_factory=set)


def _check_ice_servers(urls: list[str]) -> tuple[str, ...]:
    for url in urls:
        try:
            parse_stun_turn_uri(url)
        except ValueError as exc:
            raise ValueError(f"OPENVISIT_ICE_SERVERS: {url!r} is not a stun:/turn: address") from exc
    return tuple(urls)


class AiortcEngine:
    """The embedded engine (see the module's docstring); implements `MediaEngine`."""

    def __init__(self, settings: Settings, *, tuning: MediaTuning | None = None) -> None:
        self._settings = settings
        self._options = WorkerOptions(_check_ice_servers(settings.ice_servers), tuning or MediaTuning())
        self._workers: list[_Worker] = []
        self._rooms: dict[int, _RoomRecord] = {}
        self._events: asyncio.Queue[MediaEvent] | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._worker_changed: asyncio.Event | None = None
        self._names = itertools.count(1)
        self._running = False

    # --- life ---------------------------------------------------------------------------------------

    async def start(self, on_event: MediaEventSink) -> None:
        if self._running:
            return
        self._events = asyncio.Queue()
        self._worker_changed = asyncio.Event()
        self._dispatcher = asyncio.create_task(self._dispatch(on_event), name="media events")
        count = self._settings.media_workers
        workers = [self._new_worker() for _ in range(max(count, 1))]
        try:
            await asyncio.gather(*(w.start() for w in workers))
        except BaseException:
            await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
            self._dispatcher.cancel()
            raise
        self._workers = list(workers)
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        await asyncio.gather(*(self.close_visit(v) for v in list(self._rooms)), return_exceptions=True)
        self._running = False
        await asyncio.gather(*self._replacing, return_exceptions=True)
        await asyncio.gather(*(w.stop() for w in self._workers), return_exceptions=True)
        self._workers = []
        assert self._events is not None
        assert self._dispatcher is not None
        await self._events.join()
        self._dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._dispatcher

    def _new_worker(self) -> _Worker:
        name = f"media worker {next(self._names)}"
        if self._settings.media_workers > 0:
            return _ProcessWorker(name, self._options, self)
        return _ThreadWorker(name, self._options, self)

    def worker_pids(self) -> list[int]:
        """The live workers' process ids (the server's own when they are threads): for measurements."""
        return [w.pid for w in self._workers if w.alive]

    def worker_pid(self, visit_id: int) -> int | None:
        """The process id of the worker that holds a visit's room."""
        record = self._rooms.get(visit_id)
        return record.worker.pid if record is not None else None

    # --- events and failures -----------------------------------------------------------------------

    def _deliver(self, event: MediaEvent) -> None:
        """An event from a worker, on the caller's loop: queued, so that the sink sees them in order."""
        record = self._rooms.get(event.visit_id)
        if record is not None and event.kind is MediaEventKind.SIDE_LOST and event.side is not None:
            record.sides.discard(event.side)
        if self._events is not None:
            self._events.put_nowait(event)

    async def _dispatch(self, on_event: MediaEventSink) -> None:
        assert self._events is not None
        while True:
            event = await self._events.get()
            try:
                await on_event(event)
            except Exception:
                log.exception("the media event sink failed on %s", event)
            finally:
                self._events.task_done()

    def _worker_died(self, worker: _Worker) -> None:
        log.error("%s (pid %s) died; its %d room(s) are lost", worker.name, worker.pid, len(worker.rooms))
        for visit_id in sorted(worker.rooms):
            record = self._rooms.pop(visit_id, None)
            if record is None:
                continue
            if not record.opened.done():
                record.opened.set_exception(MediaError())
                record.opened.exception()  # retrieved: the opener re-raises it
            for side in sorted(record.sides):
                self._deliver(MediaEvent(visit_id, MediaEventKind.SIDE_LOST, side=side, detail="worker_lost"))
            if record.visit.recording_path is not None:
                self._deliver(
                    MediaEvent(
                        visit_id,
                        MediaEventKind.RECORDING_FAILED,
                        detail="worker_lost",
                        recording_path=record.visit.recording_path,
                    )
                )
        worker.rooms.clear()
        if self._running and worker in self._workers:
            task = asyncio.create_task(self._replace(worker), name=f"replace {worker.name}")
            self._replacing.add(task)
            task.add_done_callback(self._replacing.discard)

    async def _replace(self, dead: _Worker) -> None:
        if isinstance(dead, _ProcessWorker):
            await dead.reap()
        while self._running:
            fresh = self._new_worker()
            try:
                await fresh.start()
            except Exception:
                log.exception("a new media worker could not be started; trying again")
                await fresh.stop()
                await asyncio.sleep(1)
                continue
            if not self._running:  # the engine stopped meanwhile
                await fresh.stop()
                return
            index = self._workers.index(dead)
            self._workers[index] = fresh
            assert self._worker_changed is not None
            self._worker_changed.set()
            return

    async def _least_loaded(self) -> _Worker:
        assert self._worker_changed is not None
        while True:
            alive = [w for w in self._workers if w.alive]
            if alive:
                return min(alive, key=lambda w: len(w.rooms))
            self._worker_changed.clear()
            async with asyncio.timeout(START_SECONDS):
                await self._worker_changed.wait()

    # --- the interface ------------------------------------------------------------------------------

    def _record(self, visit_id: int) -> _RoomRecord:
        record = self._rooms.get(visit_id)
        if record is None or not record.opened.done() or record.opened.exception() is not None:
            raise RoomNotOpen()
        return record

    async def open_visit(self, visit: VisitMedia) -> None:
        if not self._running:
            raise MediaError()
        if visit.kind is not VisitKind.SOCIAL and visit.recording_path is not None:
            raise PrivilegedVisit()
        record = self._rooms.get(visit.visit_id)
        if record is not None:
            if record.visit.kind is not visit.kind:
                raise MediaError()
            await asyncio.shield(record.opened)
            return
        worker = await self._least_loaded()
        record = _RoomRecord(visit, worker, asyncio.get_running_loop().create_future())
        self._rooms[visit.visit_id] = record
        worker.rooms.add(visit.visit_id)
        try:
            await worker.call("open_visit", visit)
        except BaseException as exc:
            if self._rooms.get(visit.visit_id) is record:
                del self._rooms[visit.visit_id]
                worker.rooms.discard(visit.visit_id)
            if not record.opened.done():
                record.opened.set_exception(exc if isinstance(exc, Exception) else MediaError())
                record.opened.exception()
            raise
        if not record.opened.done():
            record.opened.set_result(None)

    async def admit(self, visit_id: int, side: Side, offer: SessionDescription) -> SessionDescription:
        record = self._record(visit_id)
        answer: SessionDescription = await record.worker.call("admit", visit_id, side, offer)
        record.sides.add(side)
        return answer

    async def drop(self, visit_id: int, side: Side) -> None:
        record = self._rooms.get(visit_id)
        if record is None or not record.worker.alive:
            return
        record.sides.discard(side)
        await record.worker.call("drop", visit_id, side)

    async def subscribe_monitor(
        self, visit_id: int, monitor_key: str, offer: SessionDescription
    ) -> SessionDescription:
        record = self._record(visit_id)
        if record.visit.kind is not VisitKind.SOCIAL:
            raise PrivilegedVisit()  # refused here, and again by the room itself
        answer: SessionDescription = await record.worker.call(
            "subscribe_monitor", visit_id, monitor_key, offer
        )
        return answer

    async def unsubscribe_monitor(self, visit_id: int, monitor_key: str) -> None:
        record = self._rooms.get(visit_id)
        if record is not None and record.worker.alive:
            await record.worker.call("unsubscribe_monitor", visit_id, monitor_key)

    async def warn(self, visit_id: int, text: str) -> None:
        await self._record(visit_id).worker.call("warn", visit_id, text)

    async def set_video_paused(self, visit_id: int, side: Side, paused: bool) -> None:
        await self._record(visit_id).worker.call("set_video_paused", visit_id, side, paused)

    async def close_visit(self, visit_id: int) -> RecordingResult | None:
        record = self._rooms.get(visit_id)
        if record is None:
            return None
        with contextlib.suppress(Exception):
            await asyncio.shield(record.opened)
        if self._rooms.get(visit_id) is not record:
            return None  # lost with its worker meanwhile
        del self._rooms[visit_id]
        record.worker.rooms.discard(visit_id)
        if not record.worker.alive:
            return None
        result: RecordingResult | None = await record.worker.call("close_visit", visit_id)
        return result

    async def status(self, visit_id: int) -> RoomStatus | None:
        record = self._rooms.get(visit_id)
        if record is None or not record.worker.alive or not record.opened.done():
            return None
        try:
            status: RoomStatus | None = await record.worker.call("status", visit_id)
        except MediaError:
            return None
        return status

    async def recover_recordings(self, paths: list[Path]) -> list[RecordingResult]:
        return await asyncio.to_thread(recover_recordings, paths)
