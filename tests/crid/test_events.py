"""The event hub: fan-out, order, and dropping a subscriber that falls behind."""

from __future__ import annotations

import asyncio
import threading

import pytest
from cri_api.v1 import api_pb2

from crid.errors import ResourceExhausted
from crid.events import EventHub


def event(n: int) -> api_pb2.ContainerEventResponse:
    return api_pb2.ContainerEventResponse(container_id=str(n))


async def take(stream: object, count: int) -> list[str]:
    found = []
    async for item in stream:  # type: ignore[attr-defined]
        found.append(item.container_id)
        if len(found) == count:
            break
    return found


def test_every_subscriber_gets_every_event_in_order() -> None:
    async def scenario() -> None:
        hub = EventHub(on_dropped=lambda: None)
        readers = [asyncio.create_task(take(hub.subscribe(), 3)) for _ in range(2)]
        await asyncio.sleep(0)
        assert hub.subscribers == 2
        for n in range(3):
            hub.publish(event(n))
        assert [await r for r in readers] == [["0", "1", "2"]] * 2

    asyncio.run(scenario())


def test_events_published_from_another_thread_arrive() -> None:
    async def scenario() -> None:
        hub = EventHub(on_dropped=lambda: None)
        reader = asyncio.create_task(take(hub.subscribe(), 1))
        await asyncio.sleep(0)
        thread = threading.Thread(target=hub.publish, args=(event(7),))
        thread.start()
        thread.join()
        assert await asyncio.wait_for(reader, 5) == ["7"]

    asyncio.run(scenario())


def test_a_slow_subscriber_is_dropped_and_counted_without_blocking_others() -> None:
    async def scenario() -> None:
        dropped: list[int] = []
        hub = EventHub(on_dropped=lambda: dropped.append(1), limit=2)
        slow = hub.subscribe()
        fast = asyncio.create_task(take(hub.subscribe(), 3))
        first = asyncio.create_task(take(slow, 1))  # registers, then stops reading
        await asyncio.sleep(0)
        hub.publish(event(0))
        assert await first == ["0"]
        hub.publish(event(1))
        await asyncio.sleep(0)  # the fast one reads; the slow one does not
        hub.publish(event(2))
        hub.publish(event(3))  # the slow one already holds 1 and 2: it overflows
        assert dropped == [1]
        assert hub.subscribers == 1
        with pytest.raises(ResourceExhausted, match="fell more than 2 events behind"):
            await take(slow, 1)
        assert await fast == ["0", "1", "2"]

    asyncio.run(scenario())


def test_publishing_with_nobody_listening_does_nothing() -> None:
    EventHub(on_dropped=lambda: None).publish(event(1))
