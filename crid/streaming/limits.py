"""The streaming server's limits, and the idle timeout both wire protocols share.

One client must not be able to take the daemon's memory, threads or file
descriptors from the other pods: every phase of a connection is bounded in
time and size. ``Limits`` gathers the settings (``crid.streaming.*`` in the
config, defaults there); SECURITY.md lists them with kubelet's equivalents.

``IdleWatch`` is kubelet's stream idle timeout (4 h by default): a session
whose connection has moved no frame in either direction for that long is
ended. A write counts once the socket has taken it, so a client that stops
reading while we have output for it goes idle too, and is cut off instead of
holding its process and buffers for ever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from crid import logs
from crid.config import Config

log = logs.get("crid.streaming")


@dataclasses.dataclass(frozen=True)
class Limits:
    handshake_timeout: float = Config.stream_handshake_timeout
    max_handshakes: int = Config.stream_max_handshakes
    stream_creation_timeout: float = Config.stream_creation_timeout
    stream_idle_timeout: float = Config.stream_idle_timeout
    max_streams_per_connection: int = Config.stream_max_streams_per_connection
    max_port_forwards_per_pod: int = Config.stream_max_port_forwards_per_pod
    websocket_max_message: int = Config.stream_websocket_max_message

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(
            handshake_timeout=config.stream_handshake_timeout,
            max_handshakes=config.stream_max_handshakes,
            stream_creation_timeout=config.stream_creation_timeout,
            stream_idle_timeout=config.stream_idle_timeout,
            max_streams_per_connection=config.stream_max_streams_per_connection,
            max_port_forwards_per_pod=config.stream_max_port_forwards_per_pod,
            websocket_max_message=config.stream_websocket_max_message,
        )


class IdleWatch:
    """Aborts ``transport`` once ``touch`` has not been called for ``timeout`` seconds."""

    def __init__(self, transport: asyncio.WriteTransport, timeout: float, kind: str) -> None:
        self._transport = transport
        self._timeout = timeout
        self._kind = kind
        self._last = time.monotonic()

    def touch(self) -> None:
        self._last = time.monotonic()

    async def run(self) -> None:
        while (left := self._last + self._timeout - time.monotonic()) > 0:
            await asyncio.sleep(left)
        log.info("streaming session idle; closing it", kind=self._kind,
                 idle_seconds=self._timeout)
        # abort, not close: a client that stopped reading never lets a close finish.
        self._transport.abort()


class PodForwards:
    """How many forwarded connections each pod has open, all clients together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, pod_sandbox_id: str) -> bool:
        """Count one more for the pod; False (nothing counted) if it is at the limit."""
        if self._open.get(pod_sandbox_id, 0) >= self.limit:
            return False
        self._open[pod_sandbox_id] = self._open.get(pod_sandbox_id, 0) + 1
        return True

    def release(self, pod_sandbox_id: str) -> None:
        left = self._open.get(pod_sandbox_id, 0) - 1
        if left > 0:
            self._open[pod_sandbox_id] = left
        else:
            self._open.pop(pod_sandbox_id, None)

    def refusal(self, pod_sandbox_id: str) -> str:
        return (f"pod {pod_sandbox_id} has {self.limit} forwarded connections open, the most "
                "crid allows (crid.streaming.max_port_forwards_per_pod)")
