"""The streaming limits: from the config, the idle watch, per-pod forward counts."""

from __future__ import annotations

import asyncio

import pytest

from crid.config import Config
from crid.streaming import websocket
from crid.streaming.limits import IdleWatch, Limits, PodForwards


def test_limits_come_from_the_config_and_default_to_kubelets() -> None:
    assert Limits() == Limits.from_config(Config())
    assert (Limits().stream_creation_timeout, Limits().stream_idle_timeout) == (30, 4 * 3600)
    assert Limits().websocket_max_message == 32 * 1024 * 1024
    configured = Limits.from_config(Config(stream_idle_timeout=7, stream_max_handshakes=3))
    assert (configured.stream_idle_timeout, configured.max_handshakes) == (7, 3)


class FakeTransport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.aborted_at: float | None = None

    def abort(self) -> None:
        self.aborted_at = asyncio.get_running_loop().time()


def test_the_idle_watch_aborts_only_after_a_quiet_timeout() -> None:
    async def run() -> None:
        transport = FakeTransport()
        watch = IdleWatch(transport, 0.3, "exec")
        loop = asyncio.get_running_loop()
        started = loop.time()
        watching = asyncio.create_task(watch.run())
        for _ in range(5):  # activity keeps it alive past the timeout
            await asyncio.sleep(0.1)
            watch.touch()
        assert transport.aborted_at is None
        await asyncio.wait_for(watching, 2)
        assert transport.aborted_at is not None
        assert transport.aborted_at - started >= 0.5 + 0.3 - 0.05

    asyncio.run(run())


def test_pod_forwards_count_per_pod_up_to_the_limit() -> None:
    forwards = PodForwards(2)
    assert forwards.acquire("a") and forwards.acquire("a")
    assert not forwards.acquire("a")
    assert forwards.acquire("b")  # other pods have their own count
    forwards.release("a")
    assert forwards.acquire("a")
    assert "max_port_forwards_per_pod" in forwards.refusal("a")


def test_a_websocket_port_forward_asks_for_at_most_the_pods_limit() -> None:
    assert websocket.ports_from_query({"ports": ["80,81"]}, 2) == [80, 81]
    with pytest.raises(ValueError, match="at most 2"):
        websocket.ports_from_query({"ports": ["80,81", "82"]}, 2)
