"""Live visits end to end: the whole app served by uvicorn in a thread, the real aiortc engine (its worker
thread), and real aiortc peers (openvisit.media.synthetic) behind real WebSocket clients as the two sides
and the monitoring officer. Visits last seconds; the server runs on the real clock."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from openvisit.db.database import Database
from openvisit.db.models import Recording
from openvisit.domain.enums import RecordingStatus, Role, VisitKind, VisitStatus
from openvisit.media.engine import SessionDescription
from openvisit.media.synthetic import BLUE, GREEN, RED, RGB, Monitor, Participant, near
from openvisit.services.context import AppContext, utc_now
from openvisit.settings import Settings
from openvisit.web.app import create_app
from tests.live.support import (
    Scene,
    audit_actions,
    build,
    event_kinds,
    load,
    staff,
    token_for,
    visit,
)
from tests.serving import serve_in_thread

T = TypeVar("T")
TEST_SECONDS = 120.0
WAIT = 20.0
"""How long a step may wait for media or a message (generous: the machine is shared)."""


def run(scenario: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(TEST_SECONDS):
            return await scenario

    return asyncio.run(bounded())


@pytest.fixture
def live_ctx(settings: Settings) -> Iterator[AppContext]:
    """The test's database on the real clock, with the media engine in one worker thread."""
    context = AppContext(
        settings=settings.model_copy(update={"media_workers": 0}),
        db=Database.from_url(settings.database_url),
        clock=utc_now,
    )
    yield context
    context.db.dispose()


@pytest.fixture
def server(live_ctx: AppContext) -> Iterator[str]:
    """The app on a free port of 127.0.0.1; its ws:// base."""
    with serve_in_thread(create_app(live_ctx.settings, ctx=live_ctx)) as port:
        yield f"ws://127.0.0.1:{port}"


@dataclass
class End:
    """One side's end of the signalling: a socket, what it was told, and (once joined) its media peer."""

    ws: ClientConnection
    said: list[dict[str, Any]] = field(default_factory=list)
    peer: Participant | None = None
    closed_code: int | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.said.append(json.loads(raw))
                self._changed.set()
        except ConnectionClosed:
            pass
        self.closed_code = self.ws.close_code
        self._changed.set()

    async def send(self, message: dict[str, Any] | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.said if m["type"] == kind]

    async def wait_for(self, kind: str, count: int = 1) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)[count - 1]

    async def wait_closed(self) -> int | None:
        async with asyncio.timeout(WAIT):
            while self.closed_code is None:
                self._changed.clear()
                await self._changed.wait()
        return self.closed_code

    async def join(self, rgb: RGB, tone: float) -> dict[str, Any]:
        """hello, welcome, offer, answer: the side's media is on its way."""
        await self.send({"type": "hello", "rules_accepted": True})
        welcome = await self.wait_for("welcome")
        self.peer = Participant(rgb, tone)
        offer = await self.peer.offer()
        answers = len(self.of("answer"))
        await self.send({"type": "offer", "sdp": offer.sdp})
        answer = await self.wait_for("answer", answers + 1)
        await self.peer.accept(SessionDescription(sdp=answer["sdp"], type="answer"))
        return welcome

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader
        if self.peer is not None:
            await self.peer.close()


async def open_side(base: str, path: str) -> End:
    side = End(await connect(base + path, open_timeout=WAIT, max_size=2**20))
    side.start()
    return side


async def sees(side: End, colour: RGB) -> None:
    assert side.peer is not None
    await side.peer.video.wait_until(lambda r: r.colour() is not None and near(r.colour(), colour), WAIT)


async def join_both(visitor: End, resident: End) -> None:
    """The visitor joins in red at 440 Hz, the resident in blue at 880 Hz, and each sees the other."""
    await visitor.join(RED, 440.0)
    await resident.join(BLUE, 880.0)
    await sees(visitor, BLUE)
    await sees(resident, RED)


async def media_stops(side: End) -> None:
    """The side's incoming video ends or freezes: no new frame for a second and a half."""
    assert side.peer is not None
    reception = side.peer.video
    async with asyncio.timeout(WAIT):
        while True:
            before = reception.frames
            await asyncio.sleep(1.5)
            if reception.ended or reception.frames == before:
                return


@dataclass
class Call:
    scene: Scene
    visit_id: int
    visitor_path: str
    resident_path: str
    monitor_path: str


def call(ctx: AppContext, *, seconds: float = 90, kind: VisitKind = VisitKind.SOCIAL) -> Call:
    scene = build(ctx)
    now = ctx.clock()
    visit_id = visit(
        ctx, scene, starts_at=now - timedelta(seconds=30), length=timedelta(seconds=30 + seconds), kind=kind
    )
    return Call(
        scene,
        visit_id,
        f"/ws/visits/{visit_id}?token={token_for(ctx, scene.visitor)}",
        f"/ws/visits/{visit_id}?token={token_for(ctx, scene.resident)}",
        f"/ws/monitor?facility_id={scene.place.facility_id}&token={token_for(ctx, scene.officer)}",
    )


def recording_rows(ctx: AppContext, visit_id: int) -> list[Recording]:
    with ctx.db.read() as s:
        return list(
            s.execute(
                sa.select(Recording).where(Recording.visit_id == visit_id).order_by(Recording.id)
            ).scalars()
        )


# --- the tests --------------------------------------------------------------------------------------------


def test_both_sides_see_and_hear_each_other_and_a_monitor_sees_both(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        monitor = await open_side(server, c.monitor_path)
        officer = Monitor()
        try:
            welcome = await visitor.join(RED, 440.0)
            assert (welcome["side"], welcome["kind"], welcome["notice"], welcome["peer_connected"]) == (
                "visitor",
                "social",
                "monitored_recorded",
                False,
            )
            resident_welcome = await resident.join(BLUE, 880.0)
            assert resident_welcome["side"] == "resident"
            await sees(visitor, BLUE)
            await sees(resident, RED)
            assert visitor.peer is not None and resident.peer is not None
            await visitor.peer.audio.wait_until(lambda r: abs(r.tone() - 880.0) < 30, WAIT)
            await resident.peer.audio.wait_until(lambda r: abs(r.tone() - 440.0) < 30, WAIT)
            joined = await visitor.wait_for("peer")
            assert joined == {"type": "peer", "side": "resident", "state": "joined"}
            # The wall shows the visit with both sides, and the officer watches it.
            await monitor.wait_for("visits")
            offer = await officer.offer()
            await monitor.send({"type": "watch", "visit_id": c.visit_id, "sdp": offer.sdp})
            answer = await monitor.wait_for("answer")
            assert answer["visit_id"] == c.visit_id
            await officer.accept(SessionDescription(sdp=answer["sdp"], type="answer"))
            for watched, colour in zip(officer.video, (RED, BLUE), strict=True):
                await officer.video[watched].wait_until(
                    lambda r, colour=colour: r.colour() is not None and near(r.colour(), colour), WAIT
                )
            walls = [m for m in monitor.of("visits") if m["visits"]]
            assert walls[-1]["visits"][0]["sides"] == ["resident", "visitor"]
            # Participants never learn of the monitor.
            told = visitor.said + resident.said
            assert {m["type"] for m in told} == {"welcome", "answer", "peer"}
            assert c.scene.officer.label not in json.dumps(told)
        finally:
            await officer.close()
            for side in (visitor, resident, monitor):
                await side.close()

    run(scenario())
    assert load(live_ctx, c.visit_id).status is VisitStatus.IN_PROGRESS
    assert "visit.watched" in audit_actions(live_ctx, "visit", c.visit_id)


def test_a_second_connection_replaces_the_first_and_the_visit_goes_on(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx)

    async def scenario() -> None:
        first = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        second: End | None = None
        try:
            await first.join(RED, 440.0)
            await resident.join(BLUE, 880.0)
            await sees(resident, RED)
            second = await open_side(server, c.visitor_path)
            await second.join(GREEN, 660.0)
            assert (await first.wait_for("replaced")) == {"type": "replaced"}
            assert await first.wait_closed() == 4000
            await sees(resident, GREEN)
            await sees(second, BLUE)
            # The departure of the replaced socket did not unseat the new one.
            await second.send({"type": "ping"})
            await second.wait_for("pong")
        finally:
            for side in (first, resident, *(s for s in [second] if s is not None)):
                await side.close()

    run(scenario())
    assert load(live_ctx, c.visit_id).status is VisitStatus.IN_PROGRESS


def test_bad_messages_are_refused_while_the_visit_goes_on_and_a_warning_reaches_both(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        monitor = await open_side(server, c.monitor_path)
        try:
            await visitor.join(RED, 440.0)
            await resident.join(BLUE, 880.0)
            await sees(visitor, BLUE)
            for raw, code in (
                ("{not json", "signal.malformed"),
                ('{"type": "hello", "rules_accepted": true}', "signal.out_of_order"),
                ('{"type": "offer", "sdp": "v=0\\r\\nnot an sdp"}', "signal.malformed"),
                ('{"type": "watch", "visit_id": 1, "sdp": "x"}', "signal.unknown_type"),
            ):
                errors = len(visitor.of("error"))
                await visitor.send(raw)
                error = await visitor.wait_for("error", errors + 1)
                assert error["code"] == code, raw
            assert visitor.peer is not None
            frames = visitor.peer.video.frames
            await visitor.peer.video.wait_until(lambda r: r.frames > frames + 10, WAIT)
            await sees(resident, RED)
            await monitor.wait_for("visits")
            await monitor.send({"type": "warn", "visit_id": c.visit_id, "text": "Please keep the phone down"})
            for side in (visitor, resident):
                warning = await side.wait_for("warning")
                assert warning["text"] == "Please keep the phone down"
            await monitor.send({"type": "pause", "visit_id": c.visit_id, "side": "visitor", "paused": True})
            for side in (visitor, resident):
                assert (await side.wait_for("paused")) == {
                    "type": "paused",
                    "side": "visitor",
                    "paused": True,
                }
            assert resident.peer is not None
            await resident.peer.video.wait_until(
                lambda r: r.colour() is not None and near(r.colour(), (0, 0, 0)), WAIT
            )
        finally:
            for side in (visitor, resident, monitor):
                await side.close()

    run(scenario())
    assert load(live_ctx, c.visit_id).status is VisitStatus.IN_PROGRESS
    assert audit_actions(live_ctx, "visit", c.visit_id).count("visit.warned") == 1


def test_termination_ends_both_sides_at_once_and_stores_why(live_ctx: AppContext, server: str) -> None:
    c = call(live_ctx)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        monitor = await open_side(server, c.monitor_path)
        try:
            await join_both(visitor, resident)
            await monitor.wait_for("visits")
            await monitor.send(
                {"type": "terminate", "visit_id": c.visit_id, "reason": "recording_device", "note": "a phone"}
            )
            # Each side is told in its own language (the station's resident reads Russian).
            for side, message in (
                (visitor, "Staff ended the visit. Reason: A recording device"),
                (resident, "Сотрудник прекратил свидание. Причина: Записывающее устройство"),
            ):
                ended = await side.wait_for("ended")
                assert (ended["outcome"], ended["reason"], ended["message"]) == (
                    "terminated",
                    "recording_device",
                    message,
                )
                assert await side.wait_closed() == 1000
            told = await monitor.wait_for("ended")
            assert told == {
                "type": "ended",
                "visit_id": c.visit_id,
                "outcome": "terminated",
                "reason": "recording_device",
            }
            await media_stops(visitor)
            await media_stops(resident)
        finally:
            for side in (visitor, resident, monitor):
                await side.close()

    run(scenario())
    row = load(live_ctx, c.visit_id)
    assert (row.status, row.outcome, row.reason, row.reason_note) == (
        VisitStatus.TERMINATED,
        "terminated",
        "recording_device",
        "a phone",
    )
    (recording,) = recording_rows(live_ctx, c.visit_id)
    assert recording.status is RecordingStatus.FINALISED
    assert recording.sha256 and recording.bytes and Path(recording.path).is_file()


def test_staff_cancelling_a_visit_in_progress_ends_it_for_both_sides_at_once(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx)
    scheduler = staff(live_ctx, Role.SCHEDULER, facility_id=c.scene.place.facility_id)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        try:
            await join_both(visitor, resident)
            cancel = urllib.request.Request(  # noqa: S310 - the test server, over http
                f"{server.replace('ws://', 'http://')}/api/v1/visits/{c.visit_id}/cancel",
                data=json.dumps({"reason": "security", "note": "search of the unit"}).encode(),
                headers={
                    "Authorization": f"Bearer {token_for(live_ctx, scheduler)}",
                    "Content-Type": "application/json",
                },
                method="POST",
            )
            with await asyncio.to_thread(urllib.request.urlopen, cancel) as answer:
                assert answer.status == 200
            for side in (visitor, resident):
                ended = await side.wait_for("ended")
                assert (ended["outcome"], ended["reason"]) == ("terminated", "security")
                assert await side.wait_closed() == 1000
            await media_stops(visitor)
            await media_stops(resident)
        finally:
            for side in (visitor, resident):
                await side.close()

    run(scenario())
    row = load(live_ctx, c.visit_id)
    assert (row.status, row.reason, row.reason_note) == (
        VisitStatus.CANCELLED,
        "security",
        "search of the unit",
    )
    (recording,) = recording_rows(live_ctx, c.visit_id)
    assert recording.status is RecordingStatus.FINALISED


def test_a_short_visit_ends_hard_at_its_end_and_its_recording_is_finalised(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx, seconds=8)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        try:
            await visitor.join(RED, 440.0)
            await resident.join(BLUE, 880.0)
            await sees(resident, RED)
            for side, message in ((visitor, "The visit has ended."), (resident, "Свидание окончено.")):
                ended = await side.wait_for("ended")
                assert (ended["outcome"], ended["reason"], ended["message"]) == (
                    "completed",
                    "completed",
                    message,
                )
                assert await side.wait_closed() == 1000
            await media_stops(visitor)
        finally:
            await visitor.close()
            await resident.close()

    run(scenario())
    row = load(live_ctx, c.visit_id)
    assert (row.status, row.outcome) == (VisitStatus.COMPLETED, "completed")
    (recording,) = recording_rows(live_ctx, c.visit_id)
    assert recording.status is RecordingStatus.FINALISED
    assert recording.duration_seconds is not None and recording.duration_seconds > 1


def test_a_legal_visit_has_no_recording_and_refuses_the_monitor(live_ctx: AppContext, server: str) -> None:
    c = call(live_ctx, seconds=8, kind=VisitKind.LEGAL)
    before = (
        set(live_ctx.settings.recordings_path.glob("*"))
        if live_ctx.settings.recordings_path.exists()
        else set()
    )

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        monitor = await open_side(server, c.monitor_path)
        officer = Monitor()
        try:
            welcome = await visitor.join(RED, 440.0)
            assert welcome["notice"] == "privileged"
            await resident.join(BLUE, 880.0)
            await sees(resident, RED)
            await monitor.wait_for("visits")
            offer = await officer.offer()
            await monitor.send({"type": "watch", "visit_id": c.visit_id, "sdp": offer.sdp})
            error = await monitor.wait_for("error")
            assert (error["code"], error["visit_id"]) == ("media.privileged", c.visit_id)
            assert monitor.of("answer") == []
            await resident.wait_for("ended")
        finally:
            await officer.close()
            for side in (visitor, resident, monitor):
                await side.close()
        assert officer.received() == 0

    run(scenario())
    assert load(live_ctx, c.visit_id).status is VisitStatus.COMPLETED
    assert recording_rows(live_ctx, c.visit_id) == []
    after = (
        set(live_ctx.settings.recordings_path.glob("*"))
        if live_ctx.settings.recordings_path.exists()
        else set()
    )
    assert after == before
    assert audit_actions(live_ctx, "visit", c.visit_id).count("visit.watch_refused") == 1


def test_a_side_that_drops_rejoins_inside_the_window_and_the_visit_carries_on(
    live_ctx: AppContext, server: str
) -> None:
    c = call(live_ctx)

    async def scenario() -> None:
        visitor = await open_side(server, c.visitor_path)
        resident = await open_side(server, c.resident_path)
        back: End | None = None
        try:
            await visitor.join(RED, 440.0)
            await resident.join(BLUE, 880.0)
            await sees(visitor, BLUE)
            # The station's network drops: its socket and its media go without a word.
            await resident.close()
            left = await visitor.wait_for("peer", 2)
            assert left == {"type": "peer", "side": "resident", "state": "left"}
            back = await open_side(server, c.resident_path)
            welcome = await back.join(GREEN, 660.0)
            assert welcome["peer_connected"] is True
            await sees(visitor, GREEN)
            await sees(back, RED)
        finally:
            for side in (visitor, *(s for s in [back] if s is not None)):
                await side.close()

    run(scenario())
    assert load(live_ctx, c.visit_id).status is VisitStatus.IN_PROGRESS
    kinds = event_kinds(live_ctx, c.visit_id)
    assert kinds.index("side_lost") < len(kinds) - 1 - kinds[::-1].index("joined")
    # The room stayed open across the drop: one recording, still being written.
    assert [r.status for r in recording_rows(live_ctx, c.visit_id)] == [RecordingStatus.RECORDING]
