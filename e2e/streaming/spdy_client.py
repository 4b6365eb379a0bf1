"""A small SPDY/3.1 streaming client, as kubectl/crictl use the protocol.

It upgrades an HTTP/1.1 connection, opens the typed streams and collects
what comes back. It takes part in flow control (SETTINGS, WINDOW_UPDATE),
so it also drives the server's window-respecting path, which Go clients do
not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import urllib.parse

from crid.streaming.reader import Reader, open_connection
from crid.streaming.spdy import frames
from crid.streaming.spdy.flow import DEFAULT_WINDOW
from crid.streaming.spdy.session import Session, Stream


class UpgradeRefused(Exception):
    def __init__(self, status: int, head: str) -> None:
        super().__init__(f"HTTP {status}: {head}")
        self.status, self.head = status, head


@dataclasses.dataclass
class Connection:
    session: Session
    protocol: str
    reading: asyncio.Task[None]

    async def close(self) -> None:
        await self.session.shutdown(linger=2.0)
        self.reading.cancel()


async def _read_head(reader: Reader) -> str:
    """The response's head; what came behind it stays in ``reader``."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        if not (chunk := await reader.read()):
            raise asyncio.IncompleteReadError(data, None)
        data += chunk
    reader.unread(data[end + 4:])
    return data[:end + 4].decode("latin-1")


async def upgrade(url: str, protocols: list[str], *, flow_control: bool = True) -> Connection:
    """Open ``url`` and switch to SPDY/3.1 offering ``protocols``.

    ``flow_control=False`` acts as Go's spdystream (kubectl, crictl): it announces
    no windows and ignores the peer's.
    """
    parts = urllib.parse.urlsplit(url)
    reader, writer = await open_connection(parts.hostname or "", parts.port or 80)
    offers = "".join(f"X-Stream-Protocol-Version: {p}\r\n" for p in protocols)
    writer.write((f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                  f"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n{offers}"
                  "Content-Length: 0\r\n\r\n").encode())
    await writer.drain()
    head = await _read_head(reader)
    status = int(head.split(" ", 2)[1])
    if status != 101:
        with contextlib.suppress(Exception):
            head += (await asyncio.wait_for(reader.read(4096), 2)).decode("latin-1")
        writer.close()
        raise UpgradeRefused(status, head)
    chosen = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("x-stream-protocol-version:")), "")
    session = Session(reader, writer, server=False)
    session.ignore_peer_windows = not flow_control  # as Go's spdystream
    reading = asyncio.create_task(session.run())
    if flow_control:
        session.peer_flow_control = True  # our server does; hold to its windows from the start
        await session.send(frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE:
                                            DEFAULT_WINDOW}))
    return Connection(session, chosen, reading)


async def read_all(stream: Stream) -> bytes:
    chunks = []
    while chunk := await stream.read():
        chunks.append(chunk)
    return b"".join(chunks)


@dataclasses.dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    error: bytes  # the raw error stream
    protocol: str

    @property
    def status(self) -> dict[str, object]:
        return dict(json.loads(self.error))

    @property
    def exit_code(self) -> int:
        """As client-go reads it from a v4 status."""
        status = self.status
        if status["status"] == "Success":
            return 0
        details = status["details"]
        assert isinstance(details, dict)
        return int(details["causes"][0]["message"])


async def remote_command(url: str, *, stdin: bytes | None = None, close_stdin: bool = True,
                         tty: bool = False, stderr: bool = True,
                         sizes: tuple[tuple[int, int], ...] = (),
                         protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
                         flow_control: bool = True) -> ExecResult:
    """Exec/attach: open the streams client-go opens, send ``stdin``, collect."""
    conn = await upgrade(url, list(protocols), flow_control=flow_control)
    session = conn.session
    try:
        error = await session.open_stream({"streamtype": ["error"]})
        streams: dict[str, Stream] = {}
        if stdin is not None:
            streams["stdin"] = await session.open_stream({"streamtype": ["stdin"]})
        streams["stdout"] = await session.open_stream({"streamtype": ["stdout"]})
        if stderr and not tty:
            streams["stderr"] = await session.open_stream({"streamtype": ["stderr"]})
        if tty and conn.protocol in ("v4.channel.k8s.io", "v3.channel.k8s.io"):
            resize = await session.open_stream({"streamtype": ["resize"]})
            for width, height in sizes:
                await resize.write(json.dumps({"Width": width, "Height": height}).encode())
        await error.close()  # the client never writes on it

        async def send_stdin() -> None:
            # concurrently with reading: a process's output can wait on its input
            if stdin is not None:
                await streams["stdin"].write(stdin)
                if close_stdin:
                    await streams["stdin"].close()

        _, out, err, status = await asyncio.gather(
            send_stdin(),
            read_all(streams["stdout"]),
            read_all(streams["stderr"]) if "stderr" in streams else asyncio.sleep(0, b""),
            read_all(error))
        return ExecResult(out, err, status, conn.protocol)
    finally:
        await conn.close()


async def port_forward(url: str, port: int, payload: bytes, *, request_id: str = "0",
                       flow_control: bool = True) -> tuple[bytes, bytes]:
    """Send ``payload`` to ``port``, half-close, and return (reply, error text)."""
    conn = await upgrade(url, ["portforward.k8s.io"], flow_control=flow_control)
    try:
        return await forward_one(conn.session, port, payload, request_id)
    finally:
        await conn.close()


async def forward_one(session: Session, port: int, payload: bytes,
                      request_id: str) -> tuple[bytes, bytes]:
    """One forwarded connection on an existing port-forward session."""
    headers = {"port": [str(port)], "requestid": [request_id]}
    error = await session.open_stream({"streamtype": ["error"], **headers})
    await error.close()
    data = await session.open_stream({"streamtype": ["data"], **headers})

    async def send() -> None:
        view = memoryview(payload)
        for at in range(0, len(view), 1 << 20):
            await data.write(bytes(view[at:at + (1 << 20)]))
        await data.close()

    _, reply, problem = await asyncio.gather(send(), read_all(data), read_all(error))
    return reply, problem
