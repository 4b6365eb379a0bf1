"""Fuzz target: SPDY/3.1 frames and header blocks, as a streaming client sends them.

The input is the byte stream a client writes after the 101 upgrade. First
the frame layer alone: every frame cut by its 8-byte header and decoded
(``frames.decode``) with one header codec, so header blocks inflate with the
SPDY dictionary over one zlib stream, as on a connection. Then a whole
server ``Session`` reads the same bytes (``Session.run``), dispatching
SYN_STREAM, DATA, SETTINGS, WINDOW_UPDATE, PING, RST_STREAM and GOAWAY, while
a consumer accepts and reads every stream the client opens.

Allowed: ``FrameError`` and ``FlowControlError`` from the frame layer (the
session turns them into GOAWAY and closes); ``Session.run`` must return on
any input. Anything else escaping is a bug, as is a hang (a session that
never ends) or memory without bound.
"""

from __future__ import annotations

import asyncio

from crid.streaming.spdy import frames
from crid.streaming.spdy.flow import FlowControlError
from crid.streaming.spdy.session import Session, Stream
from tests.fuzz.harness import allowing
from tests.fuzz.wire import Sink, reader_of


def decode_all(data: bytes) -> None:
    codec = frames.HeaderCodec()
    at = 0
    while at + frames.HEADER_SIZE <= len(data):
        header = data[at:at + frames.HEADER_SIZE]
        end = at + frames.HEADER_SIZE + frames.frame_length(header)
        if end > len(data):
            return
        frames.decode(header, data[at + frames.HEADER_SIZE:end], codec)
        at = end


async def _read_all(stream: Stream) -> None:
    await stream.reply()
    while await stream.read():
        pass


async def serve(data: bytes) -> None:
    session = Session(reader_of(data), Sink().writer(), server=True)
    readers: list[asyncio.Task[None]] = []

    async def accept() -> None:
        while True:
            readers.append(asyncio.create_task(_read_all(await session.incoming.get())))

    accepting = asyncio.create_task(accept())
    try:
        await session.run()
    finally:
        accepting.cancel()
        for task in readers:
            task.cancel()
        await asyncio.gather(accepting, *readers, return_exceptions=True)
    for task in readers:
        if not task.cancelled() and (error := task.exception()) is not None \
                and not isinstance(error, ConnectionError):
            raise error


def one_input(data: bytes) -> None:
    with allowing(frames.FrameError, FlowControlError):
        decode_all(data)
    asyncio.run(serve(data))

