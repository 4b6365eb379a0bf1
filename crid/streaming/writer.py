"""The write side of a connection or pipe crid streams to, with back-pressure.

``Writer`` is the part of ``asyncio.StreamWriter`` crid uses, on public
asyncio APIs only: ``write`` hands bytes to the transport, and ``drain``
waits while the transport has asked its protocol to pause writing (its
buffer is above its high-water mark) and fails once the connection is lost.

It is a protocol for a write-only transport (``loop.connect_write_pipe``,
a terminal's master side); on a socket, the ``crid.streaming.reader.Reader``
that owns the connection passes the transport's pause, resume and
connection-lost calls on to its ``Writer``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any


class Writer(asyncio.BaseProtocol):
    def __init__(self) -> None:
        self._transport: asyncio.WriteTransport | None = None
        self._paused = False
        self._lost = False
        self._error: BaseException | None = None
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def transport(self) -> asyncio.WriteTransport:
        assert self._transport is not None, "not connected"
        return self._transport

    # --- the writer's side ---

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        """Until the transport can take more; ``ConnectionResetError`` once it is gone."""
        if self.transport.is_closing():
            # Let a pending connection_lost run first, so a closed connection
            # fails here rather than a write later (as StreamWriter does).
            await asyncio.sleep(0)
        if self._lost:
            raise ConnectionResetError("Connection lost") from self._error
        if not self._paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)

    def can_write_eof(self) -> bool:
        return self.transport.can_write_eof()

    def write_eof(self) -> None:
        self.transport.write_eof()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    # --- the transport's side ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self._transport = transport

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost, self._error = True, exc
        self._wake(exc)

    def _wake(self, exc: BaseException | None) -> None:
        for waiter in self._waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)
