"""NRI's connection multiplexer (github.com/containerd/nri, pkg/net/multiplex).

One socket (the trunk) carries several byte streams: each frame is an
8-byte header (connection id, payload length; big-endian u32) and the
payload. NRI uses connection 1 for the Plugin service (the runtime is the
ttrpc client) and 2 for the Runtime service (the plugin is the client).

Go's reader hands each frame whole to the ttrpc reader above it, which
reads through a 4096-byte buffer: a frame larger than what it asks for is an
error (ENOMEM) there. So frames sent here are at most ``CHUNK`` bytes, which
is always safe; what is received may be any size up to a ttrpc message plus
its header, and frames for a connection id nobody opened are dropped, as Go
does. Each connection queues at most ``QUEUE_FRAMES`` frames; a peer that
sends more than that without them being read is cut off (Go does the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

from crid.nri.ttrpc import MAX_DATA, ProtocolError

HEADER = struct.Struct(">II")
PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN = 1, 2
CHUNK = 4096
MAX_PAYLOAD = 10 + MAX_DATA
QUEUE_FRAMES = 256


class MuxChannel:
    """One connection id's byte stream, read with ``readexactly``."""

    def __init__(self) -> None:
        self._frames: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_FRAMES)
        self._buffer = bytearray()
        self._eof = False

    def feed(self, payload: bytes) -> bool:
        """Queue a frame's payload; False when the reader has fallen too far behind."""
        try:
            self._frames.put_nowait(payload)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._frames.put_nowait(None)
        self._eof = True

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            if self._eof and self._frames.empty():
                raise asyncio.IncompleteReadError(bytes(self._buffer), n)
            payload = await self._frames.get()
            if payload is None:
                raise asyncio.IncompleteReadError(bytes(self._buffer), n)
            self._buffer += payload
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


class Mux:
    """The trunk: demultiplexes reads into channels, frames writes per connection id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._channels: dict[int, MuxChannel] = {}
        self._write_lock = asyncio.Lock()

    def open(self, conn_id: int) -> MuxChannel:
        return self._channels.setdefault(conn_id, MuxChannel())

    async def send(self, conn_id: int, data: bytes) -> None:
        """Write ``data`` to the peer's connection ``conn_id``, in frames of at most CHUNK."""
        async with self._write_lock:  # one message's frames are never interleaved
            for start in range(0, max(len(data), 1), CHUNK):
                chunk = data[start:start + CHUNK]
                self._writer.write(HEADER.pack(conn_id, len(chunk)) + chunk)
            await self._writer.drain()

    async def run(self) -> None:
        """Read the trunk until it ends or breaks the framing; then every channel ends."""
        try:
            while True:
                try:
                    header = await self._reader.readexactly(HEADER.size)
                except asyncio.IncompleteReadError:
                    return
                conn_id, length = HEADER.unpack(header)
                if length > MAX_PAYLOAD:
                    raise ProtocolError(f"mux frame of {length} bytes exceeds {MAX_PAYLOAD}")
                payload = await self._reader.readexactly(length)
                channel = self._channels.get(conn_id)
                if channel is not None and not channel.feed(payload):
                    raise ProtocolError(f"mux connection {conn_id} fell behind; closing")
        finally:
            for channel in self._channels.values():
                channel.end()
            self.close()

    def close(self) -> None:
        self._writer.close()
