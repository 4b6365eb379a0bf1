"""A connection's reader and writer, over a real socket pair."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable

import pytest

from crid.streaming.reader import CHUNK, INITIAL, Reader, open_connection, start_server
from crid.streaming.writer import Writer

# (our reader and writer, the raw socket of the peer)
Body = Callable[[Reader, Writer, socket.socket], Awaitable[None]]


def with_connection(body: Body, *, high_water: int = 64 * 1024) -> None:
    async def run() -> None:
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        reader, writer = await open_connection(sock=ours, high_water=high_water)
        try:
            await asyncio.wait_for(body(reader, writer, theirs), 10)
        finally:
            writer.close()
            theirs.close()

    asyncio.run(run())


def test_unread_bytes_come_first_then_what_is_held_then_the_socket() -> None:
    async def body(reader: Reader, _: Writer, theirs: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(theirs, b"request\r\n\r\nheld-")
        seen = await reader.readexactly(len(b"request\r\n\r\n"))
        reader.unread(b"parsed-")  # as the HTTP parser gives back what it read too far
        assert seen == b"request\r\n\r\n"
        await loop.sock_sendall(theirs, b"after")
        assert await reader.readexactly(len(b"parsed-held-after")) == b"parsed-held-after"
        reader.unread(b"")
        reader.unread(b"x" * (3 * CHUNK))  # more than the buffer has room for
        assert await reader.readexactly(3 * CHUNK) == b"x" * (3 * CHUNK)

    with_connection(body)


def test_read_returns_what_is_there_and_empty_at_eof() -> None:
    async def body(reader: Reader, _: Writer, theirs: socket.socket) -> None:
        await asyncio.get_running_loop().sock_sendall(theirs, b"abcdef")
        assert await reader.read(4) == b"abcd"
        assert await reader.read() == b"ef"
        theirs.shutdown(socket.SHUT_WR)
        assert await reader.read() == b""

    with_connection(body)


def test_eof_part_way_is_an_incomplete_read_with_the_partial_bytes() -> None:
    async def body(reader: Reader, _: Writer, theirs: socket.socket) -> None:
        await asyncio.get_running_loop().sock_sendall(theirs, b"12345")
        theirs.shutdown(socket.SHUT_WR)
        with pytest.raises(asyncio.IncompleteReadError) as caught:
            await reader.readexactly(8)
        assert caught.value.partial == b"12345"

    with_connection(body)


def test_small_messages_keep_the_buffer_small() -> None:
    async def body(reader: Reader, _: Writer, theirs: socket.socket) -> None:
        for _round in range(50):
            await asyncio.get_running_loop().sock_sendall(theirs, b"z" * 3000)
            assert await reader.readexactly(3000) == b"z" * 3000
        assert len(reader._buffer) == INITIAL

    with_connection(body)


def test_a_frame_larger_than_the_buffer_is_read_whole() -> None:
    payload = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # > high water + CHUNK

    async def body(reader: Reader, _: Writer, theirs: socket.socket) -> None:
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

    async def body(reader: Reader, writer: Writer, theirs: socket.socket) -> None:
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
    async def body(reader: Reader, writer: Writer, theirs: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        writer.write(b"y" * (4 << 20))  # far more than the socket buffers hold
        draining = asyncio.create_task(writer.drain())
        await asyncio.sleep(0.1)
        assert not draining.done()  # pause_writing reached the Writer
        received = 0
        while received < 4 << 20:
            received += len(await loop.sock_recv(theirs, 1 << 20))
        await draining
        theirs.close()
        assert await reader.read() == b""
        writer.write(b"z" * (1 << 20))
        with pytest.raises(ConnectionError):  # connection_lost reached it too
            for _round in range(10):
                await writer.drain()
                await asyncio.sleep(0.05)

    with_connection(body)


def test_a_served_connection_is_ours_from_its_first_byte_to_its_eof() -> None:
    # A peer that sends and half-closes at once (a pod's server answering a
    # port-forward): the bytes and the EOF both reach the handler.
    async def run() -> None:
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(reader: Reader, writer: Writer) -> None:
            data = b""
            while chunk := await reader.read():
                data += chunk
            writer.write(b"bye")
            await writer.drain()
            writer.close()
            got.set_result(data)

        server = await start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with socket.create_connection(("127.0.0.1", port)) as peer:
                peer.sendall(b"hello" * 1000)
                peer.shutdown(socket.SHUT_WR)
                assert await asyncio.wait_for(got, 10) == b"hello" * 1000
                peer.settimeout(10)
                assert peer.recv(10) == b"bye"
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(run())


def test_a_pipe_writer_waits_while_the_pipe_is_full_and_fails_once_it_is_gone() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        transport, writer = await loop.connect_write_pipe(
            Writer, os.fdopen(write_end, "wb", buffering=0))
        try:
            writer.write(b"p" * (4 << 20))  # far more than a pipe holds
            draining = asyncio.create_task(writer.drain())
            await asyncio.sleep(0.1)
            assert not draining.done()
            received = 0
            while received < 4 << 20:
                try:
                    received += len(os.read(read_end, 1 << 20))
                except BlockingIOError:
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(draining, 10)
            os.close(read_end)
            read_end = -1
            writer.write(b"p" * (1 << 20))
            with pytest.raises(ConnectionError):
                for _round in range(20):
                    await writer.drain()
                    await asyncio.sleep(0.05)
        finally:
            transport.close()
            if read_end >= 0:
                os.close(read_end)

    asyncio.run(run())
