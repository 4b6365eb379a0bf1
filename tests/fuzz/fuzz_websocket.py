"""Fuzz target: WebSocket frames of the ``*.channel.k8s.io`` protocols.

The input's first byte picks the sub-protocol (binary or base64 channels);
the rest is the byte stream a client writes after the 101 upgrade. A server
``ChannelSocket`` reads it (wsproto's framing, then crid's channel decoding,
``ChannelSocket.messages``), answering pings and the close handshake, and
the terminal sizes sent on the resize channel go through
``remotecommand.sizes`` as an exec with a TTY reads them.

Allowed: ``messages()`` must end on any input (it ends the session on a
protocol error). Anything escaping it is a bug, as is a hang or memory
without bound.
"""

from __future__ import annotations

import asyncio

from crid.config import Config
from crid.streaming import remotecommand
from crid.streaming.websocket import EXEC_PROTOCOLS, RESIZE, ChannelSocket
from tests.fuzz.wire import Sink, reader_of


async def serve(protocol: str, data: bytes) -> None:
    socket = ChannelSocket(reader_of(data), Sink().writer(), protocol,
                           max_message=Config().stream_websocket_max_message)
    sizes: list[bytes] = []
    async for channel, payload in socket.messages():
        if channel == RESIZE and payload:
            sizes.append(payload)
    sizes.append(b"")

    async def read() -> bytes:
        return sizes.pop(0)

    async for _ in remotecommand.sizes(read):
        pass


def one_input(data: bytes) -> None:
    if not data:
        return
    asyncio.run(serve(EXEC_PROTOCOLS[data[0] % len(EXEC_PROTOCOLS)], data[1:]))

