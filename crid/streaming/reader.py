"""The read side of an upgraded connection, with the bytes HTTP parsing read ahead.

The HTTP parser reads the socket in chunks, so the first bytes of the
upgraded protocol (a client may send them right behind its request) can sit
in the parser's buffer. ``Reader`` hands those out first, then reads on.
"""

from __future__ import annotations

import asyncio


class Reader:
    def __init__(self, reader: asyncio.StreamReader, prefix: bytes = b"") -> None:
        self._reader = reader
        self._prefix = prefix

    async def read(self, limit: int = 65536) -> bytes:
        if self._prefix:
            chunk, self._prefix = self._prefix[:limit], self._prefix[limit:]
            return chunk
        return await self._reader.read(limit)

    async def readexactly(self, count: int) -> bytes:
        if not self._prefix:
            return await self._reader.readexactly(count)
        head, self._prefix = self._prefix[:count], self._prefix[count:]
        if len(head) == count:
            return head
        try:
            return head + await self._reader.readexactly(count - len(head))
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(head + exc.partial, count) from None
