"""The upgraded connection's reader, over a real socket pair."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from crid.streaming.reader import CHUNK, INITIAL, Reader

# (our reader and writer after the take-over, the raw socket of the peer)
Body = Callable[[Reader, asyncio.StreamWriter, socket.socket], Awaitable[None]]


def with_connection(body: Body, *, before: bytes = b"", prefix: bytes = b"",
                    high_water: int = 64 * 1024) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        reader.feed_data(before)  # as if received before the take-over
        upgraded = Reader.take_over(reader, writer, prefix, high_water=high_water)
        try:
            await asyncio.wait_for(body(upgraded, writer, theirs), 10)
        finally:
            writer.close()
            theirs.close()

    asyncio.run(run())


def test_the_prefix_then_what_the_stream_reader_held_come_first() -> None:
    async def body(reader: Reader, _: asyncio.StreamWriter, theirs: socket.socket) -> None:
        await asyncio.get_running_loop().sock_sendall(theirs, b"after")
        assert await reader.readexactly(len(b"parsed-held-after")) == b"parsed-held-after"

    with_connection(body, before=b"held-", prefix=b"parsed-")


def test_read_returns_what_is_there_and_empty_at_eof() -> None:
    async def body(reader: Reader, _: asyncio.StreamWriter, theirs: socket.socket) -> None:
        await asyncio.get_running_loop().sock_sendall(theirs, b"abcdef")
        assert await reader.read(4) == b"abcd"
        assert await reader.read() == b"ef"
        theirs.shutdown(socket.SHUT_WR)
        assert await reader.read() == b""

    with_connection(body)


def test_eof_part_way_is_an_incomplete_read_with_the_partial_bytes() -> None:
    async def body(reader: Reader, _: asyncio.StreamWriter, theirs: socket.socket) -> None:
        await asyncio.get_running_loop().sock_sendall(theirs, b"12345")
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(asyncio.IncompleteReadError) as caught:
            await reader.readexactly(8)
        assert caught.value.partial == b"12345"

    with_connection(body)


def test_small_messages_keep_the_buffer_small() -> None:
    async def body(reader: Reader, _: asyncio.StreamWriter, theirs: socket.socket) -> None:
        for _round in range(50):
            await asyncio.get_running_loop().sock_sendall(theirs, b"z" * 3000)
            assert await reader.readexactly(3000) == b"z" * 3000
        assert len(reader._buffer) == INITIAL

    with_connection(body)


def test_a_frame_larger_than_the_buffer_is_read_whole() -> None:
    payload = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # > high water + CHUNK

    async def body(reader: Reader, _: asyncio.StreamWriter, theirs: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sending = asyncio.create_task(loop.sock_sendall(theirs, payload))
        assert await reader.readexactly(len(payload)) == payload
        await sending
        await loop.sock_sendall(theirs, b"next")
        assert await reader.readexactly(4) == b"next"
        assert len(reader._buffer) == INITIAL  # the huge buffer was let go

    with_connection(body)


def test_reading_pauses_at_the_high_water_mark_and_resumes_when_consumed() -> None:
    high_water = 64 * 1024

    async def body(reader: Reader, writer: asyncio.StreamWriter, theirs: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sending = asyncio.create_task(loop.sock_sendall(theirs, b"x" * (8 * high_water)))
        await asyncio.sleep(0.2)
        assert not sending.done()  # nobody reads: the peer is held back by TCP
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)
        assert not transport.is_reading()
        # what we hold is bounded: the high water mark plus at most one receive
        assert reader._end - reader._start < high_water + CHUNK
        received = 0
        while received < 8 * high_water:
            received += len(await reader.read(16 * 1024))
        await sending
        assert transport.is_reading()

    with_connection(body, high_water=high_water)


def test_the_writer_still_waits_for_a_slow_peer_and_sees_the_close() -> None:
    async def body(reader: Reader, writer: asyncio.StreamWriter, theirs: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        writer.write(b"y" * (4 << 20))  # far more than the socket buffers hold
        draining = asyncio.create_task(writer.drain())
        await asyncio.sleep(0.1)
        assert not draining.done()  # pause_writing reached the StreamWriter
        received = 0
        while received < 4 << 20:
            received += len(await loop.sock_recv(theirs, 1 << 20))
        await draining
        theirs.close()
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()  # connection_lost reached it too

    with_connection(body)
