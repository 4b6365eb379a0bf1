"""GetContainerEvents: container and pod life-cycle events fanned out to subscribers.

Every subscriber has its own bounded queue. Publishing never waits: a
subscriber whose queue is full has fallen behind (kubelet would miss events
and must relist anyway), so it is dropped — its stream ends with
RESOURCE_EXHAUSTED, as kubelet's evented PLEG then relists — and counted in
``crid_container_events_dropped_total``. Publishing may happen on any
thread; queues are only touched on the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable

from cri_api.v1 import api_pb2

from crid import logs
from crid.errors import ResourceExhausted

log = logs.get("crid.events")
QUEUE_SIZE = 1000

Event = api_pb2.ContainerEventResponse


class Subscriber:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending: collections.deque[Event] = collections.deque()
        self.ready = asyncio.Event()
        self.dropped = False

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False (and the subscriber ends) when the queue is full."""
        if self.dropped:
            return True
        if len(self.pending) >= self.limit:
            self.dropped = True
            self.pending.clear()
            self.ready.set()
            return False
        self.pending.append(event)
        self.ready.set()
        return True


class EventHub:
    def __init__(self, on_dropped: Callable[[], None], limit: int = QUEUE_SIZE) -> None:
        self._on_dropped = on_dropped
        self._limit = limit
        self._subscribers: set[Subscriber] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; never blocks."""
        if not self._subscribers or self._loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._deliver(event)
        else:
            self._loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            if not subscriber.offer(event):
                self._subscribers.discard(subscriber)
                self._on_dropped()
                log.warning("dropped a slow event subscriber", queue_limit=self._limit)

    async def subscribe(self) -> AsyncIterator[Event]:
        """Events from now on, until the caller goes away or falls behind."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        subscriber = Subscriber(self._limit)
        self._subscribers.add(subscriber)
        try:
            while True:
                await subscriber.ready.wait()
                subscriber.ready.clear()
                if subscriber.dropped:
                    raise ResourceExhausted(
                        f"this event stream fell more than {self._limit} events behind and "
                        "was dropped; list containers and pods again, then resubscribe")
                while subscriber.pending:
                    yield subscriber.pending.popleft()
        finally:
            self._subscribers.discard(subscriber)
