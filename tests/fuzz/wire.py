"""A connection for the streaming targets: the client's bytes in, ours thrown away.

``reader_of(data)`` is a ``crid.streaming.reader.Reader`` that has received
``data`` and then EOF, fed through its protocol methods as the transport
would; ``Sink`` stands in for the ``Writer`` the server answers on.
"""

from __future__ import annotations

import asyncio
from typing import cast

from crid.streaming.reader import Reader
from crid.streaming.writer import Writer

CHUNK = 4096  # fed in pieces, as a socket delivers them


def reader_of(data: bytes) -> Reader:
    reader = Reader()
    view = memoryview(data)
    while view:
        buffer = reader.get_buffer(len(view))
        count = min(len(buffer), len(view), CHUNK)
        buffer[:count] = view[:count]
        reader.buffer_updated(count)
        view = view[count:]
    reader.eof_received()
    return reader


class Sink:
    """The writing half: takes everything, never blocks."""

    def __init__(self) -> None:
        self.written = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("written after close")
        self.written += len(data)

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writer(self) -> Writer:
        return cast(Writer, self)
