"""The read side of a connection that carries bulk data, straight from its socket.

An upgraded connection carries SPDY or WebSocket frames after the 101, and a
forwarded connection to a pod carries whatever the pod sends, both often in
bulk (port-forward, ``kubectl cp``). ``Reader.take_over`` swaps the
transport's protocol for a ``BufferedProtocol`` that receives into one
reusable buffer (``recv_into``), instead of a ``StreamReader`` that copies
every received chunk into its buffer and again out of it.

The HTTP parser reads the socket in chunks, so the first bytes of the
upgraded protocol (a client may send them right behind its request) can sit
in the parser's buffer or still in the ``StreamReader``: those come first.

Back-pressure: once more than ``high_water`` bytes wait unread, reading
from the socket pauses (TCP then pushes back on the peer) until the
consumer has taken them.

Writing stays with the ``StreamWriter``: its ``drain`` listens to the old
protocol, so the pause/resume-writing and connection-lost calls the
transport now makes to us are passed on to it.
"""

from __future__ import annotations

import asyncio

HIGH_WATER = 256 * 1024
CHUNK = 256 * 1024  # room for one receive on top of the high water mark
# Exec sessions carry little: start small, since bytearray(n) zeroes all n
# bytes; bulk transfers grow it.
INITIAL = 64 * 1024


class Reader(asyncio.BufferedProtocol):
    def __init__(self, high_water: int = HIGH_WATER) -> None:
        self._buffer = bytearray(INITIAL)
        self._largest = high_water + CHUNK  # unless one frame is larger
        self._start = self._end = 0  # unread bytes are _buffer[_start:_end]
        self._high_water = high_water
        self._wanted = 0  # what a waiting readexactly needs in total
        self._waiter: asyncio.Future[None] | None = None
        self._eof = False
        self._error: BaseException | None = None
        self._transport: asyncio.Transport | None = None
        self._writing_side: asyncio.BaseProtocol | None = None
        self._paused = False

    @classmethod
    def take_over(cls, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                  prefix: bytes = b"", high_water: int = HIGH_WATER) -> Reader:
        """Read ``writer``'s connection from now on; ``prefix``, then what ``reader`` held, first.

        ``reader`` gets nothing more; nobody may read it afterwards.
        """
        self = cls(high_water)
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        # StreamReader has no public way to take its buffered bytes and EOF.
        held = getattr(reader, "_buffer", bytearray())
        self._append(prefix + bytes(held))
        held.clear()
        self._eof = bool(getattr(reader, "_eof", False))
        self._error = reader.exception()
        self._transport = transport
        self._writing_side = transport.get_protocol()
        transport.set_protocol(self)
        if not self._eof and not transport.is_reading():
            transport.resume_reading()  # the StreamReader may have paused it when full
        return self

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
        if self._writing_side is not None:
            self._writing_side.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._writing_side is not None:
            self._writing_side.pause_writing()

    def resume_writing(self) -> None:
        if self._writing_side is not None:
            self._writing_side.resume_writing()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
