"""Two SPDY sessions over a socket pair: streams, flow control, ping, goaway."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable

from crid.streaming.reader import open_connection
from crid.streaming.spdy import frames
from crid.streaming.spdy.flow import DEFAULT_WINDOW
from crid.streaming.spdy.session import MAX_DATA_FRAME, READ_BUFFER_LIMIT, Session, Stream

Body = Callable[[Session, Session], Awaitable[None]]


def with_pair(body: Body, max_streams: int | None = None) -> None:
    """Run ``body`` on a server session (with ``max_streams``) and a client session."""
    async def run() -> None:
        left, right = socket.socketpair()
        sessions = []
        for sock, is_server in ((left, True), (right, False)):
            reader, writer = await open_connection(sock=sock)
            sessions.append(Session(reader, writer,
                                    server=is_server,
                                    max_streams=max_streams if is_server else None))
        server, client = sessions
        tasks = [asyncio.create_task(s.run()) for s in sessions]
        try:
            await asyncio.wait_for(body(server, client), 10)
        finally:
            for s in sessions:
                s._close()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


async def opened(server: Session, client: Session, kind: str) -> tuple[Stream, Stream]:
    """A stream the client opens and the server accepts: (the server's end, the client's)."""
    opening = asyncio.create_task(client.open_stream({"streamtype": [kind]}))
    theirs = await server.incoming.get()
    await theirs.reply()
    return theirs, await opening


async def read_until(stream: Stream, size: int) -> bytes:
    received = b""
    while len(received) < size:
        received += await stream.read()
    return received


async def held_back_then_delivered(sender: Stream, receiver: Stream, payload: bytes,
                                   window: int) -> None:
    """``sender`` stops after ``window`` bytes until ``receiver`` reads; then all arrive."""
    writing = asyncio.create_task(sender.write(payload))
    await asyncio.sleep(0.2)
    assert not writing.done()
    assert receiver._buffered == window
    received = await read_until(receiver, len(payload))
    await writing
    assert received == payload


async def accepted(server: Session) -> frames.Headers:
    stream = await server.incoming.get()
    await stream.reply()
    return stream.headers


def test_streams_carry_data_both_ways_and_fin() -> None:
    async def body(server: Session, client: Session) -> None:
        opening = asyncio.create_task(client.open_stream({"streamtype": ["stdout"]}))
        theirs = await server.incoming.get()
        assert theirs.header("streamType") == "stdout"
        await theirs.reply()
        ours = await opening
        await theirs.write(b"to client")
        await theirs.close()
        assert await ours.read() == b"to client"
        assert await ours.read() == b""
        await ours.write(b"to server")
        assert await theirs.read() == b"to server"

    with_pair(body)


def test_a_flow_controlling_peer_gets_no_more_than_its_window() -> None:
    async def body(server: Session, client: Session) -> None:
        await client.send(frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE:
                                           DEFAULT_WINDOW}))
        theirs, ours = await opened(server, client, "stdout")
        await held_back_then_delivered(theirs, ours, bytes(range(256)) * 1024, DEFAULT_WINDOW)

    with_pair(body)


def test_a_peer_that_never_grants_credit_is_not_waited_for() -> None:
    # Go's spdystream neither sends SETTINGS nor WINDOW_UPDATE.
    async def body(server: Session, client: Session) -> None:
        theirs, ours = await opened(server, client, "stdout")
        await theirs.write(b"x" * (4 * DEFAULT_WINDOW))
        await asyncio.sleep(0.1)
        assert ours._buffered == 4 * DEFAULT_WINDOW

    with_pair(body)


def test_ping_is_answered() -> None:
    async def body(server: Session, client: Session) -> None:
        await client.ping()
        await server.ping()

    with_pair(body)


def test_after_goaway_new_streams_are_refused() -> None:
    async def body(server: Session, client: Session) -> None:
        await server.go_away()
        await asyncio.sleep(0.05)
        assert client.going_away
        stream = await client.open_stream({"streamtype": ["error"]})
        assert stream.reset

    with_pair(body)


def test_data_for_an_unknown_stream_is_reset() -> None:
    async def body(server: Session, client: Session) -> None:
        stream = await client.open_stream({"streamtype": ["x"]}, wait_reply=False)
        client.streams[99] = stream  # lie about the id to send on one never opened
        await client.send(frames.Data(99, b"?"))
        await asyncio.sleep(0.05)
        assert 99 not in client.streams
        assert stream.reset

    with_pair(body)


def test_data_that_arrived_before_a_reset_is_still_read() -> None:
    # kubelet's (and containerd's) server writes the exec status on the error
    # stream, then resets it: the status must not be lost.
    async def body(server: Session, client: Session) -> None:
        theirs, ours = await opened(server, client, "error")
        await theirs.write(b'{"status":"Success"}')
        await theirs.abort()
        await asyncio.wait_for(ours._changed.wait(), 5)
        while not ours.reset:
            await asyncio.sleep(0.01)
        assert await ours.read() == b'{"status":"Success"}'
        assert await ours.read() == b""
        assert client.streams == {}

    with_pair(body)


def test_a_session_ignoring_peer_windows_sends_past_them() -> None:
    # As Go's spdystream does, which kubectl uses: our test client's
    # flow_control=False acts the same way.
    async def body(server: Session, client: Session) -> None:
        client.ignore_peer_windows = True
        await server.send(frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: 1024}))
        theirs, ours = await opened(server, client, "stdin")
        await asyncio.wait_for(ours.write(b"x" * (2 * DEFAULT_WINDOW)), 5)
        assert not client.peer_flow_control
        assert await read_until(theirs, 2 * DEFAULT_WINDOW) == b"x" * (2 * DEFAULT_WINDOW)

    with_pair(body)


def test_an_announced_window_lets_a_flow_controlling_peer_send_that_much() -> None:
    announced = 4 * DEFAULT_WINDOW

    async def body(server: Session, client: Session) -> None:
        client.peer_flow_control = True  # as our client with flow_control=True
        await server.announce_window(announced)
        theirs, ours = await opened(server, client, "data")
        assert ours.send_window.available == announced
        # four windows: the client stops at the announced one, not at 64 KiB
        await held_back_then_delivered(ours, theirs, bytes(range(256)) * 4096, announced)

    with_pair(body)


def test_an_announced_window_applies_to_streams_already_open() -> None:
    async def body(server: Session, client: Session) -> None:
        theirs, ours = await opened(server, client, "data")
        await server.announce_window(2 * DEFAULT_WINDOW)
        await asyncio.sleep(0.05)
        assert ours.send_window.available == 2 * DEFAULT_WINDOW
        assert client._send_window.available == 2 * DEFAULT_WINDOW
        assert theirs.receive_window.size == 2 * DEFAULT_WINDOW

    with_pair(body)


def test_a_session_ignoring_peer_windows_grants_no_credit() -> None:
    # Neither does Go's spdystream; our server then never waits for credit.
    async def body(server: Session, client: Session) -> None:
        client.ignore_peer_windows = True
        theirs, ours = await opened(server, client, "stdout")
        await theirs.write(b"x" * (4 * DEFAULT_WINDOW))
        assert await read_until(ours, 4 * DEFAULT_WINDOW) == b"x" * (4 * DEFAULT_WINDOW)
        await client.ping()  # anything the client sent before has been handled
        assert not server.peer_flow_control
        assert server._send_window.available == DEFAULT_WINDOW  # never grown

    with_pair(body)


def test_streams_past_the_cap_are_refused_and_a_persistent_peer_cut_off() -> None:
    async def body(server: Session, client: Session) -> None:
        kept = [await client.open_stream({"streamtype": ["data"]}, wait_reply=False)
                for _ in range(3)]
        refused = [await client.open_stream({"streamtype": ["data"]}, wait_reply=False)
                   for _ in range(3)]
        await asyncio.sleep(0.1)
        assert len(server.streams) == 3 and not any(s.reset for s in kept)
        assert all(s.reset for s in refused)
        assert not server.closed.is_set()
        # One refusal more than the cap: the peer is not listening.
        await client.open_stream({"streamtype": ["data"]}, wait_reply=False)
        await asyncio.wait_for(client.closed.wait(), 5)
        assert client.going_away
        await asyncio.wait_for(server.closed.wait(), 5)

    with_pair(body, max_streams=3)


def test_streams_that_close_free_their_place() -> None:
    async def body(server: Session, client: Session) -> None:
        for _ in range(10):
            theirs, ours = await opened(server, client, "data")
            await ours.close()
            await theirs.close()
            await asyncio.sleep(0.01)
        assert server.streams == {} and not server.closed.is_set()

    with_pair(body, max_streams=2)


def test_unread_bytes_are_bounded_for_the_whole_connection() -> None:
    # A peer that ignores windows spreads data over several streams nobody
    # reads: the server stops reading the socket at READ_BUFFER_LIMIT in all.
    async def body(server: Session, client: Session) -> None:
        client.ignore_peer_windows = True
        streams = [await opened(server, client, "stdin") for _ in range(4)]
        chunk = b"x" * (READ_BUFFER_LIMIT // 2)
        writes = [asyncio.create_task(ours.write(chunk)) for _, ours in streams]
        await asyncio.sleep(0.3)
        held = sum(theirs._buffered for theirs, _ in streams)
        assert READ_BUFFER_LIMIT <= held <= READ_BUFFER_LIMIT + MAX_DATA_FRAME
        assert not all(w.done() for w in writes)
        for theirs, _ in streams:  # reading makes room: everything arrives
            assert await read_until(theirs, len(chunk)) == chunk
        await asyncio.gather(*writes)

    with_pair(body)


def test_a_frame_over_the_size_cap_ends_the_connection() -> None:
    async def body(server: Session, client: Session) -> None:
        theirs, ours = await opened(server, client, "stdin")
        with contextlib.suppress(ConnectionError):  # the server may close mid-frame
            await client.send(frames.Data(ours.id, bytes(frames.MAX_FRAME + 1)))
        await asyncio.wait_for(server.closed.wait(), 5)
        assert theirs._buffered == 0
        await asyncio.wait_for(client.closed.wait(), 5)
        assert client.going_away

    with_pair(body)
