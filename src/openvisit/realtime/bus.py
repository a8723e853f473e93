"""The event bus: topics carrying JSON-able events between the parts of the live service.

In one process the bus is a dictionary of handlers (`InProcessBus`). Several web nodes would share a
Redis pub/sub bus with the same interface: an event is published once and every node's handlers
subscribed to its topic receive it, so a node delivers to the sockets it holds itself. Events are plain
mappings of JSON values for that reason: nothing published may depend on living in one process."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("openvisit.realtime")

Event = Mapping[str, Any]
Handler = Callable[[Event], Awaitable[None]]


class Subscription(Protocol):
    def close(self) -> None:
        """Stop receiving; idempotent."""


class EventBus(Protocol):
    """Publish events to topics; every handler subscribed to a topic receives each of its events."""

    async def publish(self, topic: str, event: Event) -> None: ...

    def subscribe(self, topic: str, handler: Handler) -> Subscription: ...


class _LocalSubscription:
    def __init__(self, bus: InProcessBus, topic: str, handler: Handler) -> None:
        self._bus = bus
        self._topic = topic
        self._handler = handler
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self._bus._remove(self._topic, self._handler)


class InProcessBus:
    """The bus of a single process: publish awaits every handler of the topic in turn, so events of one
    topic are delivered in the order they were published. A failing handler is logged and does not keep
    the event from the others."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    async def publish(self, topic: str, event: Event) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                await handler(event)
            except Exception:
                log.exception("bus handler for %s failed", topic)

    def subscribe(self, topic: str, handler: Handler) -> Subscription:
        self._handlers.setdefault(topic, []).append(handler)
        return _LocalSubscription(self, topic, handler)

    def _remove(self, topic: str, handler: Handler) -> None:
        handlers = self._handlers.get(topic)
        if handlers is None:
            return
        try:
            handlers.remove(handler)
        except ValueError:
            return
        if not handlers:
            del self._handlers[topic]

    def topics(self) -> frozenset[str]:
        """Topics with at least one handler (to see that nothing leaks)."""
        return frozenset(self._handlers)
