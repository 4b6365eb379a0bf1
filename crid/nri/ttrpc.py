"""ttrpc (github.com/containerd/ttrpc): the framing and unary calls NRI speaks.

A frame is a 10-byte header (data length, stream id, both big-endian u32;
message type u8; flags u8) and the data. A unary call is one REQUEST frame
from the client on an odd stream id carrying a ``Request`` (service, method,
encoded argument, timeout) and one RESPONSE frame back on the same id with a
``Response`` (a ``google.rpc.Status`` when it failed, else the encoded
result). Data is at most 4 MiB: a larger frame from the peer is a protocol
error that ends the connection (fail closed); a larger message of ours is
refused before it is sent, with RESOURCE_EXHAUSTED as Go's client does.

``Client`` and ``Server`` each own one byte stream (a ``Channel``) and a way
to send bytes; NRI puts one of each on a multiplexed socket
(``crid.nri.multiplex``). Streaming calls (DATA frames) are not used by NRI
and are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from crid.api import ttrpc_pb2

HEADER = struct.Struct(">IIBB")
MAX_DATA = 4 << 20
REQUEST, RESPONSE, DATA = 1, 2, 3

# gRPC status codes used here (google.rpc.Code).
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED = 0, 1, 2, 3, 4
RESOURCE_EXHAUSTED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 12, 13, 14


class RpcError(Exception):
    """A call failed with a gRPC status (from the peer, or locally: timeout, closed)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class ProtocolError(Exception):
    """The peer broke the framing: the connection cannot be trusted any further."""


class Channel(Protocol):
    async def readexactly(self, n: int) -> bytes: ...


Send = Callable[[bytes], Awaitable[None]]
Handler = Callable[[bytes], Awaitable[bytes]]


@dataclasses.dataclass(frozen=True)
class Frame:
    stream_id: int
    kind: int
    flags: int
    data: bytes

    def encode(self) -> bytes:
        if len(self.data) > MAX_DATA:
            raise RpcError(RESOURCE_EXHAUSTED,
                           f"message of {len(self.data)} bytes exceeds the ttrpc maximum "
                           f"of {MAX_DATA}")
        return HEADER.pack(len(self.data), self.stream_id, self.kind, self.flags) + self.data


async def read_frame(channel: Channel) -> Frame:
    length, stream_id, kind, flags = HEADER.unpack(await channel.readexactly(HEADER.size))
    if length > MAX_DATA:
        raise ProtocolError(f"ttrpc frame of {length} bytes exceeds the maximum of {MAX_DATA}")
    data = await channel.readexactly(length) if length else b""
    return Frame(stream_id, kind, flags, data)


def _decode(message_type: type[ttrpc_pb2.Request] | type[ttrpc_pb2.Response],
            data: bytes) -> ttrpc_pb2.Request | ttrpc_pb2.Response:
    message = message_type()
    try:
        message.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ProtocolError(f"undecodable ttrpc {message_type.__name__}: {exc}") from exc
    return message


class Client:
    """Unary calls to the peer's server over one channel."""

    def __init__(self, channel: Channel, send: Send) -> None:
        self._channel = channel
        self._send = send
        self._ids = itertools.count(1, 2)
        self._pending: dict[int, asyncio.Future[ttrpc_pb2.Response]] = {}
        self._closed: RpcError | None = None

    async def call(self, service: str, method: str, payload: bytes, timeout: float) -> bytes:
        """The encoded result of ``service/method``; RpcError when it failed or timed out."""
        if self._closed is not None:
            raise self._closed
        stream_id = next(self._ids)
        request = ttrpc_pb2.Request(service=service, method=method, payload=payload,
                                    timeout_nano=int(timeout * 1e9))
        frame = Frame(stream_id, REQUEST, 0, request.SerializeToString()).encode()
        future: asyncio.Future[ttrpc_pb2.Response] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        try:
            await self._send(frame)
            async with asyncio.timeout(timeout):
                response = await future
        except TimeoutError:
            raise RpcError(DEADLINE_EXCEEDED,
                           f"{service}/{method}: no answer within {timeout:g}s") from None
        finally:
            self._pending.pop(stream_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # seen: a failure set by close() is not an orphan
            else:
                future.cancel()
        if response.HasField("status") and response.status.code != OK:
            raise RpcError(response.status.code, response.status.message)
        return response.payload

    async def run(self) -> None:
        """Read responses until the channel ends; then every pending call fails."""
        try:
            while True:
                frame = await read_frame(self._channel)
                if frame.kind != RESPONSE:
                    raise ProtocolError(f"ttrpc client got a frame of type {frame.kind}")
                future = self._pending.get(frame.stream_id)
                response = _decode(ttrpc_pb2.Response, frame.data)
                if future is not None and not future.done():
                    assert isinstance(response, ttrpc_pb2.Response)
                    future.set_result(response)
        finally:
            self.close("connection closed")

    def close(self, why: str) -> None:
        if self._closed is None:
            self._closed = RpcError(UNAVAILABLE, f"ttrpc: {why}")
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._closed)


class Server:
    """Serves unary calls from the peer: ``handlers`` by (service, method)."""

    def __init__(self, channel: Channel, send: Send,
                 handlers: Mapping[tuple[str, str], Handler], max_in_flight: int = 16) -> None:
        self._channel = channel
        self._send = send
        self._handlers = handlers
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        try:
            while True:
                frame = await read_frame(self._channel)
                if frame.kind != REQUEST or frame.stream_id % 2 == 0:
                    raise ProtocolError(
                        f"ttrpc server got a frame of type {frame.kind} on stream "
                        f"{frame.stream_id}; only unary requests on odd streams are served")
                request = _decode(ttrpc_pb2.Request, frame.data)
                assert isinstance(request, ttrpc_pb2.Request)
                await self._slots.acquire()  # a flood of calls waits here, bounded
                task = asyncio.create_task(self._serve(frame.stream_id, request))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _serve(self, stream_id: int, request: ttrpc_pb2.Request) -> None:
        try:
            response = ttrpc_pb2.Response()
            handler = self._handlers.get((request.service, request.method))
            if handler is None:
                response.status.code = UNIMPLEMENTED
                response.status.message = f"{request.service}/{request.method} is not served"
            else:
                try:
                    response.payload = await handler(request.payload)
                except RpcError as exc:
                    response.status.code, response.status.message = exc.code, exc.message
                except Exception as exc:  # the handler's failure is the caller's answer
                    response.status.code, response.status.message = UNKNOWN, str(exc)
            with contextlib.suppress(ConnectionError, RpcError):
                await self._send(Frame(stream_id, RESPONSE, 0,
                                       response.SerializeToString()).encode())
        finally:
            self._slots.release()
