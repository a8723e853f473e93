"""The signalling hub: one socket per side, messages through the bus in each reader's language, monitors,
and the visits' timers driven by an injected clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from openvisit.realtime import messages
from openvisit.realtime.bus import InProcessBus
from openvisit.realtime.hub import CLOSE_NORMAL, CLOSE_REPLACED, SignallingHub
from tests.conftest import FrozenClock

T = TypeVar("T")
END = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
_keys = itertools.count(1)


def run(scenario: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(20):
            return await scenario

    return asyncio.run(bounded())


@dataclass
class Socket:
    """A socket as the hub sees it, keeping what it was told."""

    language: str = "en"
    key: str = field(default_factory=lambda: f"socket-{next(_keys)}")
    said: list[dict[str, Any]] = field(default_factory=list)
    closed_with: int | None = None

    async def send(self, message: Mapping[str, Any]) -> None:
        if self.closed_with is None:
            self.said.append(dict(message))

    async def close(self, code: int) -> None:
        if self.closed_with is None:
            self.closed_with = code

    def types(self) -> list[str]:
        return [m["type"] for m in self.said]


def test_each_side_gets_what_is_said_in_its_own_language() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        hub = SignallingHub(bus, FrozenClock(END))
        visitor, resident = Socket("en"), Socket("ru")
        await hub.attach_side(7, "visitor", visitor)
        await hub.attach_side(7, "resident", resident)
        assert hub.sides_here(7) == {"visitor", "resident"}
        await hub.to_sides(
            7, {**messages.ended("completed", "completed", ""), "_msgid": "The visit has ended."}
        )
        assert visitor.said[-1]["message"] == "The visit has ended."
        assert resident.said[-1]["message"] == "Свидание окончено."
        await hub.to_sides(7, messages.peer("resident", "joined"), ["visitor"])
        assert visitor.said[-1] == {"type": "peer", "side": "resident", "state": "joined"}
        assert resident.types() == ["ended"]
        await hub.close_sides(7)
        assert visitor.closed_with == resident.closed_with == CLOSE_NORMAL
        assert hub.visits_here() == frozenset()
        assert bus.topics() == frozenset()

    run(scenario())


def test_a_second_socket_of_a_side_replaces_the_first() -> None:
    async def scenario() -> None:
        hub = SignallingHub(InProcessBus(), FrozenClock(END))
        first, second, other = Socket(), Socket(), Socket()
        await hub.attach_side(7, "visitor", first)
        await hub.attach_side(7, "resident", other)
        await hub.attach_side(7, "visitor", second)
        assert first.types() == ["replaced"]
        assert first.closed_with == CLOSE_REPLACED
        assert second.closed_with is None
        assert other.said == []
        # The replaced socket's departure does not unseat the new one.
        assert not hub.detach_side(7, "visitor", first)
        assert hub.is_current(7, "visitor", second)
        await hub.to_sides(7, messages.time_left(5))
        assert second.said == [{"type": "time", "minutes_left": 5}]
        assert first.types() == ["replaced"]
        assert hub.detach_side(7, "visitor", second)
        assert hub.detach_side(7, "resident", other)
        assert hub.visits_here() == frozenset()

    run(scenario())


def test_monitors_of_a_facility_hear_only_their_facility() -> None:
    async def scenario() -> None:
        bus = InProcessBus()
        hub = SignallingHub(bus, FrozenClock(END))
        mine, theirs = Socket(), Socket()
        hub.attach_monitor(1, mine)
        hub.attach_monitor(2, theirs)
        await hub.to_monitors(1, messages.ended("terminated", "conduct", "", visit_id=5))
        assert mine.said == [{"type": "ended", "outcome": "terminated", "reason": "conduct", "visit_id": 5}]
        assert theirs.said == []
        hub.detach_monitor(1, mine)
        hub.detach_monitor(2, theirs)
        assert hub.walls_here() == frozenset()
        assert bus.topics() == frozenset()

    run(scenario())


def test_timers_say_the_countdown_and_end_the_visit_by_the_clock() -> None:
    async def scenario() -> None:
        clock = FrozenClock(END - timedelta(minutes=6))
        hub = SignallingHub(InProcessBus(), clock, tick=0.01)
        said: list[object] = []
        ended = asyncio.Event()

        async def on_mark(minutes: int) -> None:
            said.append(minutes)

        async def on_end() -> None:
            said.append("end")
            hub.cancel(9)  # an end that forgets its own timer must still run to its end
            await asyncio.sleep(0)
            said.append("after")
            ended.set()

        hub.schedule(9, END, on_mark, on_end)
        assert hub.scheduled(9)
        await asyncio.sleep(0.05)
        assert said == []
        clock.advance(minutes=1)
        await _until(lambda: said == [5])
        clock.advance(minutes=4, seconds=30)
        await _until(lambda: said == [5, 1])
        clock.advance(seconds=30)
        await asyncio.wait_for(ended.wait(), 5)
        assert said == [5, 1, "end", "after"]
        assert not hub.scheduled(9)

    run(scenario())


def test_a_late_start_skips_the_marks_already_passed_and_closing_stops_everything() -> None:
    async def scenario() -> None:
        clock = FrozenClock(END - timedelta(minutes=3))
        hub = SignallingHub(InProcessBus(), clock, tick=0.01)
        said: list[object] = []

        async def on_mark(minutes: int) -> None:
            said.append(minutes)

        async def on_end() -> None:
            said.append("end")

        hub.schedule(9, END, on_mark, on_end)
        clock.advance(minutes=2)
        await _until(lambda: said == [1])
        socket = Socket()
        await hub.attach_side(9, "resident", socket)
        await hub.close()
        assert socket.closed_with == CLOSE_NORMAL
        clock.advance(minutes=5)
        await asyncio.sleep(0.05)
        assert said == [1]
        assert not hub.scheduled(9)
        hub.schedule(9, END, on_mark, on_end)  # a closed hub starts no timer
        assert not hub.scheduled(9)

    run(scenario())


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)
