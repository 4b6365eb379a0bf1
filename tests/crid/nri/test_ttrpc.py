"""ttrpc and NRI's multiplexer against frames a Go plugin really sent, and their limits."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from crid.api import nri_pb2, ttrpc_pb2

from crid.nri import multiplex, ttrpc
from crid.nri.multiplex import Mux
from tests.crid.nri import recorded


async def _pair() -> tuple[Mux, asyncio.StreamReader, asyncio.StreamWriter]:
    """A Mux on one end of a socket pair; the raw other end for the test."""
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    peer_reader, peer_writer = await asyncio.open_unix_connection(sock=theirs)
    return Mux(reader, writer), peer_reader, peer_writer


def _run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_recorded_register_request_is_demultiplexed_and_decoded() -> None:
    async def test() -> None:
        mux, _, peer = await _pair()
        runtime = mux.open(multiplex.RUNTIME_SERVICE_CONN)
        running = asyncio.create_task(mux.run())
        peer.write(recorded.REGISTER_PLUGIN)
        frame = await ttrpc.read_frame(runtime)
        assert (frame.stream_id, frame.kind, frame.flags) == (1, ttrpc.REQUEST, 0)
        request = ttrpc_pb2.Request.FromString(frame.data)
        assert (request.service, request.method) == ("nri.pkg.api.v1alpha1.Runtime",
                                                     "RegisterPlugin")
        register = nri_pb2.RegisterPluginRequest.FromString(request.payload)
        assert (register.plugin_name, register.plugin_idx, register.NRI_version) == (
            "cri-test-nri-create", "00", "v0.12.1")
        peer.close()
        await running
    _run(test)


def test_our_encoding_of_the_recorded_request_is_byte_identical() -> None:
    """What we would send for the same call is exactly what Go sent."""
    register = nri_pb2.RegisterPluginRequest(plugin_name="cri-test-nri-create",
                                             plugin_idx="00", NRI_version="v0.12.1")
    request = ttrpc_pb2.Request(service="nri.pkg.api.v1alpha1.Runtime",
                                method="RegisterPlugin", payload=register.SerializeToString(),
                                timeout_nano=4999992173)
    frame = ttrpc.Frame(1, ttrpc.REQUEST, 0, request.SerializeToString()).encode()
    mux_header = struct.pack(">II", multiplex.RUNTIME_SERVICE_CONN, len(frame))
    assert mux_header + frame == recorded.REGISTER_PLUGIN


def test_client_gets_recorded_replies_and_the_plugins_error() -> None:
    async def test() -> None:
        mux, _, peer = await _pair()
        sent: list[bytes] = []

        async def send(data: bytes) -> None:
            sent.append(data)
        client = ttrpc.Client(mux.open(multiplex.PLUGIN_SERVICE_CONN), send)
        demux = asyncio.create_task(mux.run())
        reading = asyncio.create_task(client.run())
        # the recorded replies answer streams 1 and 7: make calls that use those ids
        configure = asyncio.create_task(client.call("svc", "Configure", b"", 5))
        unanswered = [asyncio.create_task(client.call("svc", "Other", b"", 5))
                      for _ in range(2)]  # streams 3 and 5
        create = asyncio.create_task(client.call("svc", "CreateContainer", b"", 5))
        await asyncio.sleep(0)
        peer.write(recorded.CONFIGURE_REPLY + recorded.ERROR_REPLY)
        reply = nri_pb2.ConfigureResponse.FromString(await configure)
        assert reply.events == 0x62F
        with pytest.raises(ttrpc.RpcError) as failed:
            await create
        assert failed.value.code == ttrpc.UNKNOWN
        assert failed.value.message == "induced NRI CreateContainer failure"
        assert len(sent) == 4
        peer.close()
        with pytest.raises(asyncio.IncompleteReadError):  # the channel ended
            await reading
        await demux
        for call in unanswered:
            with pytest.raises(ttrpc.RpcError):
                await call
    _run(test)


def test_mux_sends_frames_go_can_read() -> None:
    """Go's ttrpc reads through a 4096-byte buffer: no frame of ours is bigger."""
    async def test() -> None:
        mux, peer_reader, _ = await _pair()
        message = bytes(range(256)) * 40  # 10240 bytes
        await mux.send(multiplex.PLUGIN_SERVICE_CONN, message)
        received = b""
        while len(received) < len(message):
            conn_id, length = struct.unpack(">II", await peer_reader.readexactly(8))
            assert conn_id == multiplex.PLUGIN_SERVICE_CONN
            assert length <= multiplex.CHUNK
            received += await peer_reader.readexactly(length)
        assert received == message
    _run(test)


def test_oversized_ttrpc_frame_is_a_protocol_error() -> None:
    async def test() -> None:
        mux, _, peer = await _pair()
        channel = mux.open(1)
        demux = asyncio.create_task(mux.run())
        header = struct.pack(">IIBB", ttrpc.MAX_DATA + 1, 1, ttrpc.RESPONSE, 0)
        peer.write(struct.pack(">II", 1, len(header)) + header)
        with pytest.raises(ttrpc.ProtocolError):
            await ttrpc.read_frame(channel)
        demux.cancel()
    _run(test)


def test_oversized_mux_frame_ends_the_connection() -> None:
    async def test() -> None:
        mux, _, peer = await _pair()
        channel = mux.open(1)
        peer.write(struct.pack(">II", 1, multiplex.MAX_PAYLOAD + 1))
        with pytest.raises(ttrpc.ProtocolError):
            await mux.run()
        with pytest.raises(asyncio.IncompleteReadError):
            await channel.readexactly(1)
    _run(test)


def test_oversized_message_is_refused_before_sending() -> None:
    with pytest.raises(ttrpc.RpcError) as refused:
        ttrpc.Frame(1, ttrpc.REQUEST, 0, b"x" * (ttrpc.MAX_DATA + 1)).encode()
    assert refused.value.code == ttrpc.RESOURCE_EXHAUSTED


def test_server_answers_unknown_methods_and_handler_errors() -> None:
    async def test() -> None:
        mux, _, _ = await _pair()
        replies: asyncio.Queue[bytes] = asyncio.Queue()

        async def send(data: bytes) -> None:
            replies.put_nowait(data)

        async def broken(payload: bytes) -> bytes:
            raise ValueError("no such pod")
        channel = mux.open(2)
        server = ttrpc.Server(channel, send, {("svc", "Broken"): broken})
        serving = asyncio.create_task(server.run())
        for stream_id, method in ((1, "Missing"), (3, "Broken")):
            request = ttrpc_pb2.Request(service="svc", method=method)
            channel.feed(ttrpc.Frame(stream_id, ttrpc.REQUEST, 0,
                                     request.SerializeToString()).encode())
        answers = {}
        for _ in range(2):
            data = await replies.get()
            _length, stream_id, kind, _flags = struct.unpack(">IIBB", data[:10])
            assert kind == ttrpc.RESPONSE
            answers[stream_id] = ttrpc_pb2.Response.FromString(data[10:]).status
        assert answers[1].code == ttrpc.UNIMPLEMENTED
        assert (answers[3].code, answers[3].message) == (ttrpc.UNKNOWN, "no such pod")
        serving.cancel()
    _run(test)


def test_client_call_times_out_and_closed_connection_fails_calls() -> None:
    async def test() -> None:
        mux, _, peer = await _pair()

        async def send(data: bytes) -> None:
            pass
        client = ttrpc.Client(mux.open(1), send)
        demux = asyncio.create_task(mux.run())
        reading = asyncio.create_task(client.run())
        with pytest.raises(ttrpc.RpcError) as late:
            await client.call("svc", "Hang", b"", 0.05)
        assert late.value.code == ttrpc.DEADLINE_EXCEEDED
        pending = asyncio.create_task(client.call("svc", "Hang", b"", 5))
        await asyncio.sleep(0)
        peer.close()
        with pytest.raises(ttrpc.RpcError) as closed:
            await pending
        assert closed.value.code == ttrpc.UNAVAILABLE
        with pytest.raises(asyncio.IncompleteReadError):
            await reading
        await demux
    _run(test)


def test_garbage_request_is_a_protocol_error() -> None:
    async def test() -> None:
        mux, _, _ = await _pair()

        async def send(data: bytes) -> None:
            pass
        channel = mux.open(2)
        server = ttrpc.Server(channel, send, {})
        channel.feed(ttrpc.Frame(1, ttrpc.REQUEST, 0, b"\xff\xff\xff").encode())
        with pytest.raises(ttrpc.ProtocolError):
            await server.run()
        channel.feed(ttrpc.Frame(2, ttrpc.REQUEST, 0, b"").encode())  # even: not a client's
        with pytest.raises(ttrpc.ProtocolError):
            await ttrpc.Server(channel, send, {}).run()
    _run(test)
