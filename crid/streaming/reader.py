"""The read side of a connection that carries bulk data, straight from its socket.

The streaming server's connections carry an HTTP request and then, after
the 101, SPDY or WebSocket frames; a forwarded connection to a pod carries
whatever the pod sends; both often in bulk (port-forward, ``kubectl cp``).
``Reader`` is the connection's protocol from the start (``start_server``,
``open_connection``): a ``BufferedProtocol`` that receives into one reusable
buffer (``recv_into``), instead of a ``StreamReader`` that copies every
received chunk into its buffer and again out of it.

The HTTP parser reads the socket in chunks, so the first bytes of the
upgraded protocol (a client may send them right behind its request) can sit
in the parser's buffer: ``unread`` puts them back in front.

Back-pressure: once more than ``high_water`` bytes wait unread, reading
from the socket pauses (TCP then pushes back on the peer) until the
consumer has taken them.

Writing goes through the connection's ``crid.streaming.writer.Writer``
(``Reader.writer``), to which the transport's pause/resume-writing and
connection-lost calls are passed on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from crid.streaming.writer import Writer

HIGH_WATER = 256 * 1024
CHUNK = 256 * 1024  # room for one receive on top of the high water mark
# Exec sessions carry little: start small, since bytearray(n) zeroes all n
# bytes; bulk transfers grow it.
INITIAL = 64 * 1024


class Reader(asyncio.BufferedProtocol):
    def __init__(self, high_water: int = HIGH_WATER,
                 on_connected: Callable[[Reader], object] | None = None) -> None:
        self._buffer = bytearray(INITIAL)
        self._largest = high_water + CHUNK  # unless one frame is larger
        self._start = self._end = 0  # unread bytes are _buffer[_start:_end]
        self._high_water = high_water
        self._wanted = 0  # what a waiting readexactly needs in total
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._error: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self.writer = Writer()
        self._paused = False
        self._on_connected = on_connected

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of what is unread (bytes a parser read too far)."""
        if data:
            self._append(data + self._take(self._end - self._start))

    # --- the consumer's side ---

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes, at least one; b'' at EOF."""
        if self._start == self._end:
            await self._wait_for(1)
            if self._start == self._end:
                return b""
        return self._take(min(limit, self._end - self._start))

    async def readexactly(self, count: int) -> bytes:
        if self._end - self._start < count:
            await self._wait_for(count)
            if self._end - self._start < count:
                partial = self._take(self._end - self._start)
                raise asyncio.IncompleteReadError(partial, count)
        return self._take(count)

    async def _wait_for(self, count: int) -> None:
        """Until ``count`` bytes are unread, or EOF; raises what broke the connection."""
        self._wanted = count
        self._resume()
        try:
            while self._end - self._start < count:
                if self._error is not None:
                    raise self._error
                if self._eof:
                    return
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
        finally:
            self._waiter = None
            self._wanted = 0

    def _take(self, count: int) -> bytes:
        with memoryview(self._buffer) as view:
            data = bytes(view[self._start:self._start + count])
        self._start += count
        if self._end - self._start < self._high_water:
            self._resume()
        return data

    def _resume(self) -> None:
        if self._paused and self._transport is not None and not self._transport.is_closing():
            self._paused = False
            self._transport.resume_reading()

    # --- the transport's side ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.writer.connection_made(transport)
        if self._on_connected is not None:
            self._on_connected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        unread = self._end - self._start
        if unread == 0:
            self._start = self._end = 0
            if len(self._buffer) > self._largest:  # it held one huge frame
                self._buffer = bytearray(INITIAL)
        # Room for a large receive (once the buffer has grown to bulk size),
        # or for the rest of the frame a reader waits for.
        need = max(min(CHUNK, len(self._buffer) // 2), self._wanted - unread)
        if len(self._buffer) - self._end < need:
            size = len(self._buffer)
            if unread + need > size // 2:  # moving the unread bytes down frees too little
                size = max(min(2 * size, self._largest), unread + need)
            if size == len(self._buffer):
                self._buffer[:unread] = self._buffer[self._start:self._end]
            else:  # a new buffer: the old one may still be exported
                grown = bytearray(size)
                grown[:unread] = self._buffer[self._start:self._end]
                self._buffer = grown
            self._start, self._end = 0, unread
        return memoryview(self._buffer)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        unread = self._end - self._start
        if unread >= self._high_water and unread >= self._wanted and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        if unread >= self._wanted:
            self._wake()

    def _append(self, data: bytes) -> None:
        self._wanted = self._end - self._start + len(data)
        self.get_buffer(-1)[:len(data)] = data
        self._wanted = 0
        self._end += len(data)

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep the writing half open: we still answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._error = exc
        self._wake()
        self.writer.connection_lost(exc)

    def pause_writing(self) -> None:
        self.writer.pause_writing()

    def resume_writing(self) -> None:
        self.writer.resume_writing()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


Handler = Callable[[Reader, Writer], Coroutine[Any, Any, None]]


async def start_server(handler: Handler, host: str | None, port: int,
                       high_water: int = HIGH_WATER) -> asyncio.Server:
    """Listen on ``host:port``; each connection runs ``handler`` in a task of its own.

    As ``asyncio.start_server``, with ``Reader`` as the connections' protocol.
    """
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    def connected(reader: Reader) -> None:
        task = loop.create_task(handler(reader, reader.writer))
        tasks.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(tasks.discard)

    return await loop.create_server(lambda: Reader(high_water, connected), host, port)


async def open_connection(host: str = "", port: int = 0, *,
                          sock: socket.socket | None = None,
                          high_water: int = HIGH_WATER) -> tuple[Reader, Writer]:
    """As ``asyncio.open_connection`` (to ``host:port``, or over a connected
    ``sock``), with ``Reader`` as the connection's protocol."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        _transport, reader = await loop.create_connection(lambda: Reader(high_water), sock=sock)
    else:
        _transport, reader = await loop.create_connection(lambda: Reader(high_water), host, port)
    return reader, reader.writer
