"""Exec, attach and port-forward over WebSocket (the ``*.channel.k8s.io`` protocols).

Every message starts with a channel number, then the bytes. For exec and
attach the channels are 0 stdin, 1 stdout, 2 stderr, 3 error (the status),
4 resize (JSON sizes). Sub-protocols:

- ``v5.channel.k8s.io``: as v4, plus the close signal: a message
  ``[255, channel]`` from the client closes that channel (0 = stdin EOF).
- ``v4.channel.k8s.io``: binary messages; the error channel carries a JSON
  ``metav1.Status`` with the exit code.
- ``channel.k8s.io``: as v4 but the error channel carries plain text.
- ``base64.channel.k8s.io`` / ``v4.base64.channel.k8s.io``: text messages,
  the channel as an ASCII digit and the bytes base64-encoded.

Port-forward: the ``ports`` query parameter lists the ports; port i gets a
data channel 2i and an error channel 2i+1, and the first message we send on
each carries the port as 2 little-endian bytes.

wsproto does the framing; this module owns the channels.

Bounds: a client message is reassembled up to ``max_message`` bytes (kubelet,
through golang.org/x/net/websocket, allows 32 MiB); a larger one closes the
connection with 1009 (message too big). No extension is negotiated, so no
message is inflated. Port-forward takes as many ports as a pod may have
forwards open, and each counts against that limit (``PodForwards``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

from crid import logs
from crid.errors import CridError
from crid.streaming import remotecommand
from crid.streaming.backend import Backend
from crid.streaming.limits import PodForwards
from crid.streaming.reader import Reader
from crid.streaming.tokens import AttachRequest, ExecRequest, PortForwardRequest
from crid.streaming.writer import Writer

log = logs.get("crid.streaming.websocket")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
                  "channel.k8s.io", "base64.channel.k8s.io")
PORTFORWARD_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io",
                         "channel.k8s.io", "base64.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE_SIGNAL = 0, 1, 2, 3, 4, 255
MAX_MESSAGE = 64 * 1024
CLOSE_LINGER = 5.0


class ChannelSocket:
    """A server-side WebSocket whose messages are (channel, bytes) pairs."""

    def __init__(self, reader: Reader, writer: Writer, protocol: str, *,
                 max_message: int, activity: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._ws = Connection(ConnectionType.SERVER)
        self._base64 = "base64" in protocol
        self._lock = asyncio.Lock()
        self._max_message = max_message
        self._activity = activity or (lambda: None)
        self.closed = asyncio.Event()

    async def send(self, channel: int, data: bytes) -> None:
        """One message per ``MAX_MESSAGE`` bytes (a lone channel byte if ``data`` is b'')."""
        for at in range(0, max(len(data), 1), MAX_MESSAGE):
            chunk = data[at:at + MAX_MESSAGE]
            event: BytesMessage | TextMessage
            if self._base64:
                event = TextMessage(data=chr(ord("0") + channel) + base64.b64encode(chunk).decode())
            else:
                event = BytesMessage(data=bytes([channel]) + chunk)
            await self._send(event)

    async def _send(self, event: BytesMessage | TextMessage) -> None:
        if self.closed.is_set() or self._ws.state is not ConnectionState.OPEN:
            raise ConnectionResetError("the WebSocket is closed")
        self._writer.write(self._ws.send(event))
        async with self._lock:
            await self._writer.drain()
        self._activity()

    async def messages(self) -> AsyncIterator[tuple[int, bytes]]:
        """Client messages until the connection closes."""
        parts: list[bytes | str] = []
        size = 0
        try:
            while not self.closed.is_set():
                data = await self._reader.read(65536)
                self._activity()
                self._ws.receive_data(data or None)
                for event in self._ws.events():
                    if isinstance(event, Message):
                        parts.append(event.data)
                        size += len(event.data)
                        if size > self._max_message:
                            await self._too_big()
                            return
                        if event.message_finished:
                            size = 0
                            message, parts = self._decode(parts), []
                            if message is not None:
                                yield message
                    elif isinstance(event, Ping):
                        self._writer.write(self._ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        if self._ws.state is ConnectionState.REMOTE_CLOSING:
                            self._writer.write(self._ws.send(event.response()))
                        return
                if not data:
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self.closed.set()

    async def _too_big(self) -> None:
        log.warning("WebSocket message too big; closing the connection",
                    limit=self._max_message)
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(self._ws.send(CloseConnection(
                code=CloseReason.MESSAGE_TOO_BIG,
                reason=f"a message may have at most {self._max_message} bytes")))
            await self._writer.drain()
        self._writer.transport.abort()

    def _decode(self, parts: list[bytes | str]) -> tuple[int, bytes] | None:
        if isinstance(parts[0], str):
            text = "".join(str(p) for p in parts)
            if not text:
                return None
            try:
                return ord(text[0]) - ord("0"), base64.b64decode(text[1:])
            except ValueError:
                return None
        chunks = [p for p in parts if isinstance(p, bytes) and p]
        if not chunks:
            return None
        # The channel byte comes off the first chunk: one copy of the message, not two.
        return chunks[0][0], b"".join([chunks[0][1:], *chunks[1:]])

    async def close(self, reading: asyncio.Task[None] | None = None) -> None:
        """Close handshake (1000), then wait for the client's side, then the TCP close."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            if self._ws.state is ConnectionState.OPEN:
                self._writer.write(self._ws.send(CloseConnection(code=1000)))
                await self._writer.drain()
        if reading is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reading), CLOSE_LINGER)
            reading.cancel()
        self.closed.set()
        self._writer.close()


class _QueueInput:
    """stdin as the backend reads it: client messages, one waiting at most; b'' = EOF.

    Messages may be as large as the cap, so the queue holds one: a session
    holds at most the message being read, one waiting and one arriving.
    """

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        self._rest = memoryview(b"")  # slices of a view copy nothing
        self._eof = False

    async def read(self, limit: int = 65536) -> bytes:
        if not self._rest and not self._eof:
            self._rest = memoryview(await self.queue.get())
            self._eof = not self._rest
        chunk, self._rest = self._rest[:limit], self._rest[limit:]
        return bytes(chunk)


class _ChannelOutput:
    def __init__(self, ws: ChannelSocket, channel: int) -> None:
        self._ws, self._channel = ws, channel

    async def write(self, data: bytes) -> None:
        await self._ws.send(self._channel, data)


async def serve_remotecommand(ws: ChannelSocket, protocol: str,
                              request: ExecRequest | AttachRequest, backend: Backend) -> None:
    stdin = _QueueInput() if request.stdin else None
    sizes = _QueueInput()

    async def pump() -> None:
        async for channel, data in ws.messages():
            if channel == STDIN and stdin is not None and data:
                await stdin.queue.put(data)
            elif channel == RESIZE and data:
                await sizes.queue.put(data)
            elif (channel == CLOSE_SIGNAL and protocol.startswith("v5.") and data[:1] == b"\0"
                  and stdin is not None):
                await stdin.queue.put(b"")

    reading = asyncio.create_task(pump())
    try:
        # Tell the client we are ready: an empty message on the lowest channel
        # it reads from (as kubelet does).
        first = STDOUT if request.stdout else STDERR if request.stderr else ERROR
        await ws.send(first, b"")
        job = asyncio.create_task(remotecommand.run(
            backend, request, stdin=stdin,
            stdout=_ChannelOutput(ws, STDOUT) if request.stdout else None,
            stderr=_ChannelOutput(ws, STDERR) if request.stderr and not request.tty else None,
            resize=remotecommand.sizes(sizes.read) if request.tty else None,
        ))
        await asyncio.wait({job, reading}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():  # the client went away
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return
        status = job.result()
        structured = protocol.startswith(("v4.", "v5."))
        with contextlib.suppress(ConnectionError):
            if payload := remotecommand.encode_status(status, structured=structured):
                await ws.send(ERROR, payload)
    except ConnectionError:
        pass
    finally:
        await ws.close(reading)


def ports_from_query(query: dict[str, list[str]], most: int) -> list[int]:
    """The ``ports`` query values (repeated or comma-separated), at most ``most``.

    ValueError if they are not ports, or too many.
    """
    listed = [p for value in query.get("ports", []) for p in value.split(",") if p.strip()]
    if len(listed) > most:
        raise ValueError(f"{len(listed)} ports asked for; a pod may have at most {most} "
                         "forwarded connections")
    ports = [int(p) for p in listed]
    if not ports or not all(0 < p < 65536 for p in ports):
        raise ValueError("the ports query parameter must list ports 1-65535")
    return ports


async def serve_portforward(ws: ChannelSocket, request: PortForwardRequest, ports: list[int],
                            backend: Backend, pods: PodForwards) -> None:
    writers: dict[int, Writer] = {}
    held = 0  # forwards counted against the pod
    copies: list[asyncio.Task[None]] = []
    reading: asyncio.Task[None] | None = None

    async def pump() -> None:
        async for channel, data in ws.messages():
            writer = writers.get(channel // 2)
            if channel % 2 == 0 and writer is not None and data:
                writer.write(data)
                await writer.drain()
        for writer in writers.values():  # the client is done: half-close to the pod
            with contextlib.suppress(OSError, RuntimeError):
                writer.write_eof()

    try:
        for index, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await ws.send(2 * index, prefix)
            await ws.send(2 * index + 1, prefix)
        for index, port in enumerate(ports):
            if not pods.acquire(request.pod_sandbox_id):
                await ws.send(2 * index + 1, pods.refusal(request.pod_sandbox_id).encode())
                continue
            held += 1
            try:
                reader, writers[index] = await backend.port_forward(request.pod_sandbox_id, port)
            except (CridError, OSError) as exc:
                held -= 1
                pods.release(request.pod_sandbox_id)
                await ws.send(2 * index + 1, f"error forwarding port {port} to pod "
                                             f"{request.pod_sandbox_id}: {exc}".encode())
                continue
            copies.append(asyncio.create_task(_from_pod(reader, ws, 2 * index)))
        reading = asyncio.create_task(pump())
        # The session ends when every pod connection has ended, or the client leaves.
        if copies:
            await asyncio.wait({asyncio.create_task(_all(copies)), reading},
                               return_when=asyncio.FIRST_COMPLETED)
    except ConnectionError:
        pass
    finally:
        for _ in range(held):
            pods.release(request.pod_sandbox_id)
        for task in copies:
            task.cancel()
        for writer in writers.values():
            writer.close()
        await ws.close(reading)


async def _all(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)


async def _from_pod(reader: Reader, ws: ChannelSocket, channel: int) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(MAX_MESSAGE - 1):
            await ws.send(channel, chunk)
