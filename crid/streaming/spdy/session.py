"""A SPDY/3.1 connection on asyncio streams: streams, flow control, ping, goaway.

``Session`` reads frames in ``run()`` and dispatches them; ``Stream`` is one
bidirectional SPDY stream with ``read``/``write``/``close`` like a socket.
Both ends use it: the streaming server (``server=True``: the peer opens
streams) and the test client (``open_stream``).

Flow control: we return credit (WINDOW_UPDATE) for what our readers consume,
unless acting as Go's spdystream (``ignore_peer_windows``); the streaming
server announces 1 MiB windows (``announce_window``) rather than SPDY's
64 KiB, so bulk uploads cost one WINDOW_UPDATE pair per 512 KiB instead of
per 32 KiB frame. We only *hold back* our own DATA to the peer's windows
once the peer has shown it takes part in flow control, by sending a SETTINGS
or WINDOW_UPDATE frame. Go's spdystream, which kubelet, kubectl and crictl
use, does neither and never grants credit; waiting for credit from it would
hang every exec after 64 KiB of output. (kubelet, its other end, does not
throttle either.)

Back-pressure on what the peer sends, whether or not it takes part in flow
control: while the connection's streams together hold more than
``READ_BUFFER_LIMIT`` unread bytes, the session stops reading the socket, so
TCP pushes back on a peer that ignores our windows. That is the connection
window we announce, enforced for every peer.

Limits on a server session (``max_streams``): a stream the peer opens beyond
that many open ones is refused (RST_STREAM REFUSED_STREAM, as HTTP/2 does past
MAX_CONCURRENT_STREAMS); a peer that has had as many streams refused or reset
again is cut off (GOAWAY, then the connection closes). A frame larger than
``frames.MAX_FRAME`` or a header block that inflates past
``frames.MAX_HEADER_BLOCK`` ends the connection. ``activity`` is called for
every frame read and every write the socket took (the idle timeout's clock).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Callable

from crid import logs
from crid.streaming.reader import Reader
from crid.streaming.spdy import frames
from crid.streaming.spdy.flow import DEFAULT_WINDOW, FlowControlError, ReceiveWindow, SendWindow
from crid.streaming.writer import Writer

log = logs.get("crid.streaming.spdy")

MAX_DATA_FRAME = 32 * 1024
READ_BUFFER_LIMIT = 1024 * 1024
# How long a peer we cut off has to read our GOAWAY: closing a socket whose
# input we have not read sends RST at once, and that destroys what we sent
# but the peer has not yet taken.
CUT_OFF_GRACE = 0.5


class StreamClosed(ConnectionError):
    """Writing to a stream that was reset, or whose connection is gone."""


class Stream:
    """One SPDY stream. ``headers`` are those of its SYN_STREAM, lower-cased."""

    def __init__(self, session: Session, stream_id: int, headers: frames.Headers,
                 *, remote_fin: bool = False) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reply_headers: frames.Headers = {}
        self.replied = asyncio.Event()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._changed = asyncio.Event()  # data, FIN, reset, or credit arrived
        self.remote_closed = remote_fin
        self.local_closed = False
        self.reset = False
        self.send_window = SendWindow(session.initial_send_window)
        self.receive_window = ReceiveWindow(session.initial_receive_window)

    def header(self, name: str) -> str:
        """The first value of header ``name`` (any case), or ''."""
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def read(self, limit: int = 65536) -> bytes:
        """Up to ``limit`` bytes; b'' once the peer has finished or reset the stream."""
        while not self._chunks:
            if self.remote_closed or self.reset:
                return b""
            self._changed.clear()
            await self._changed.wait()
        chunk = self._chunks.popleft()
        if len(chunk) > limit:
            chunk, rest = chunk[:limit], chunk[limit:]
            self._chunks.appendleft(rest)
        self._buffered -= len(chunk)
        self.session._taken(len(chunk))
        await self.session._consumed(self, len(chunk))
        return chunk

    async def write(self, data: bytes) -> None:
        """Send ``data`` as DATA frames, within the flow-control windows if enforced."""
        view = memoryview(data)
        while view:
            if self.reset or self.local_closed or self.session.closed.is_set():
                raise StreamClosed(f"stream {self.id} is closed")
            size = await self.session._reserve(self, min(len(view), MAX_DATA_FRAME))
            if size == 0:
                continue
            await self.session.send(frames.Data(self.id, bytes(view[:size])))
            view = view[size:]

    async def close(self) -> None:
        """Half-close: tell the peer we will send nothing more (FIN)."""
        if self.local_closed or self.reset or self.session.closed.is_set():
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session.send(frames.Data(self.id, b"", fin=True))
        self.session._forget_if_done(self)

    async def reply(self, headers: frames.Headers | None = None) -> None:
        """Accept a stream the peer opened (SYN_REPLY)."""
        await self.session.send(frames.SynReply(self.id, headers or {}))

    async def abort(self, status: int = frames.CANCEL) -> None:
        """Reset the stream (RST_STREAM)."""
        if not self.reset:
            self._on_reset()
            self.session.streams.pop(self.id, None)
            with contextlib.suppress(ConnectionError):
                await self.session.send(frames.RstStream(self.id, status))
            await self.session._rejected()

    # --- called by the session's reader ---

    def _on_data(self, data: bytes, fin: bool) -> None:
        if data:
            self._chunks.append(data)
            self._buffered += len(data)
            self.session._unread += len(data)
        if fin:
            self.remote_closed = True
        self._changed.set()

    def _on_reset(self, *, keep_received: bool = False) -> None:
        self.reset = True
        if not keep_received:
            self._chunks.clear()
            self.session._taken(self._buffered)
            self._buffered = 0
        self._changed.set()


class Session:
    """A SPDY/3.1 connection over an asyncio reader/writer pair."""

    def __init__(self, reader: Reader, writer: Writer, *, server: bool,
                 max_streams: int | None = None,
                 activity: Callable[[], None] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._codec = frames.HeaderCodec()
        self._drain_lock = asyncio.Lock()
        self.streams: dict[int, Stream] = {}
        self.incoming: asyncio.Queue[Stream] = asyncio.Queue()
        self._next_id = itertools.count(2 if server else 1, 2)
        self._next_ping = itertools.count(2 if server else 1, 2)
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._last_peer_stream = 0
        self.initial_send_window = DEFAULT_WINDOW
        self.initial_receive_window = DEFAULT_WINDOW
        self._send_window = SendWindow()
        self._receive_window = ReceiveWindow()
        self._credit = asyncio.Event()
        self.peer_flow_control = False
        # A client acting as Go's spdystream (kubectl, crictl) sets this: it
        # neither holds to the peer's windows nor holds the peer to ours.
        self.ignore_peer_windows = False
        self.going_away = False
        self.closed = asyncio.Event()
        self._max_streams = max_streams
        self._refused = 0  # streams of the peer's we refused or reset
        self._cutting_off = False
        self._finished_writing = False  # we sent our FIN (shutdown)
        self._activity = activity or _nothing
        self._unread = 0  # bytes the streams hold that nobody has read yet
        self._room = asyncio.Event()  # _unread is within READ_BUFFER_LIMIT
        self._room.set()

    # --- sending ---

    async def send(self, *sent: frames.Frame) -> None:
        """Write ``sent`` in one go, then wait until the socket takes more."""
        if self.closed.is_set() or self._finished_writing:
            raise StreamClosed("the SPDY connection is closed")
        # Encoding and writing happen with no await in between: header blocks
        # share one zlib stream, so they must reach the wire in encoding order.
        self._writer.write(b"".join(frames.encode(frame, self._codec) for frame in sent))
        async with self._drain_lock:
            await self._writer.drain()
        self._activity()

    def _taken(self, count: int) -> None:
        """``count`` unread bytes left the streams' buffers (read, or dropped by a reset)."""
        self._unread -= count
        if self._unread <= READ_BUFFER_LIMIT:
            self._room.set()

    async def _rejected(self) -> None:
        """Count a stream of the peer's that we refused or reset; cut off a peer that persists."""
        self._refused += 1
        if self._max_streams is not None and self._refused > self._max_streams:
            await self.cut_off(f"{self._refused} streams refused or reset")

    async def cut_off(self, reason: str) -> None:
        """End the connection (GOAWAY with PROTOCOL_ERROR): the peer misbehaves.

        The peer gets ``CUT_OFF_GRACE`` seconds to read why, then the
        connection closes.
        """
        if self.closed.is_set() or self._cutting_off:
            return
        self._cutting_off = True
        log.warning("SPDY protocol error; closing the connection", error=reason)
        await self.shutdown(CUT_OFF_GRACE, frames.GOAWAY_PROTOCOL_ERROR, reading=True)

    async def _reserve(self, stream: Stream, wanted: int) -> int:
        """How many bytes ``stream`` may send now; waits for credit if enforced."""
        while self.peer_flow_control:
            if stream.reset or self.closed.is_set():
                raise StreamClosed(f"stream {stream.id} is closed")
            if stream.send_window.available > 0 and self._send_window.available > 0:
                size = stream.send_window.take(min(wanted, self._send_window.available))
                return self._send_window.take(size)
            self._credit.clear()
            await self._credit.wait()
        return wanted

    async def _consumed(self, stream: Stream, count: int) -> None:
        if self.ignore_peer_windows:
            return  # Go's spdystream grants no credit either
        for stream_id, window in ((stream.id, stream.receive_window),
                                  (0, self._receive_window)):
            delta = window.consumed(count)
            if delta and not self.closed.is_set() and not (
                    stream_id and (stream.remote_closed or stream.reset)):
                with contextlib.suppress(ConnectionError):
                    await self.send(frames.WindowUpdate(stream_id, delta))

    async def announce_window(self, size: int) -> None:
        """Let the peer send ``size`` bytes per stream, and on the connection, ahead of credit.

        SETTINGS sets the window of every stream, open ones too; the
        connection's window can only grow, by WINDOW_UPDATE on stream 0. Go's
        spdystream ignores both frames, as it ignores all windows.
        """
        self.initial_receive_window = size
        for stream in self.streams.values():
            stream.receive_window.resize(size)
        announced: list[frames.Frame] = [
            frames.Settings({frames.SETTINGS_INITIAL_WINDOW_SIZE: size})]
        if (grown := size - self._receive_window.size) > 0:
            self._receive_window.resize(size)
            announced.append(frames.WindowUpdate(0, grown))
        await self.send(*announced)

    async def open_stream(self, headers: frames.Headers, *, fin: bool = False,
                          wait_reply: bool = True) -> Stream:
        """Open a stream (client side) and, by default, wait for its SYN_REPLY."""
        stream = Stream(self, next(self._next_id), headers)
        stream.local_closed = fin
        self.streams[stream.id] = stream
        await self.send(frames.SynStream(stream.id, headers, fin=fin))
        if wait_reply:
            await stream.replied.wait()
        return stream

    async def ping(self) -> None:
        """Send a PING and wait for the peer to echo it."""
        ping_id = next(self._next_ping)
        future = self._pings[ping_id] = asyncio.get_running_loop().create_future()
        await self.send(frames.Ping(ping_id))
        await future

    async def go_away(self, status: int = frames.GOAWAY_OK) -> None:
        """Tell the peer we accept no new streams."""
        if not self.going_away and not self.closed.is_set():
            self.going_away = True
            with contextlib.suppress(ConnectionError):
                await self.send(frames.GoAway(self._last_peer_stream, status))

    async def shutdown(self, linger: float = 5.0, status: int = frames.GOAWAY_OK, *,
                       reading: bool = False) -> None:
        """GOAWAY, stop writing, let the peer close (up to ``linger`` s), then close.

        Closing a socket with unread input makes the kernel send RST, which can
        destroy output the peer has not read yet; so we read until the peer's EOF:
        ``run`` does, or, when ``reading`` says the caller is ``run`` itself
        (cutting off a peer), this does, dropping what it reads.
        """
        await self.go_away(status)
        if not self.closed.is_set():
            self._finished_writing = True
            with contextlib.suppress(OSError, RuntimeError):
                if self._writer.can_write_eof():
                    self._writer.write_eof()
        peer_closed = self._drop_input() if reading else self.closed.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(peer_closed, linger)
        self._close()

    async def _drop_input(self) -> None:
        with contextlib.suppress(ConnectionError):
            while await self._reader.read():
                pass

    def _close(self) -> None:
        self.closed.set()
        self._credit.set()
        self._room.set()
        for stream in self.streams.values():
            # What arrived is still read; then EOF. Writes fail from now on.
            stream._on_data(b"", True)
            stream.replied.set()
        for future in self._pings.values():
            if not future.done():
                future.set_exception(StreamClosed("the SPDY connection closed"))
        self._writer.close()

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.local_closed and (stream.remote_closed or stream.reset):
            self.streams.pop(stream.id, None)

    # --- receiving ---

    async def run(self) -> None:
        """Read and dispatch frames until the peer closes; then close everything."""
        try:
            while True:
                header = await self._reader.readexactly(frames.HEADER_SIZE)
                if (length := frames.frame_length(header)) > frames.MAX_FRAME:
                    raise frames.FrameError(f"a frame of {length} bytes; at most "
                                            f"{frames.MAX_FRAME}")
                payload = await self._reader.readexactly(length)
                self._activity()
                frame = frames.decode(header, payload, self._codec)
                if frame is not None:
                    await self._dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (frames.FrameError, FlowControlError) as exc:
            await self.cut_off(str(exc))
        finally:
            self._close()

    async def _dispatch(self, frame: frames.Frame) -> None:
        match frame:
            case frames.Data(stream_id, data, fin):
                await self._on_data(stream_id, data, fin)
            case frames.SynStream():
                await self._on_syn_stream(frame)
            case frames.SynReply(stream_id, headers, fin):
                if stream := self.streams.get(stream_id):
                    stream.reply_headers = headers
                    stream.replied.set()
                    if fin:
                        stream._on_data(b"", True)
            case frames.HeadersFrame(stream_id, _, fin):
                if fin and (stream := self.streams.get(stream_id)):
                    stream._on_data(b"", True)
            case frames.RstStream(stream_id, _):
                if stream := self.streams.pop(stream_id, None):
                    # What arrived before the reset stays readable, as in Go's
                    # spdystream: kubelet's server (containerd's too) writes the
                    # exec status on the error stream and then resets it.
                    stream._on_reset(keep_received=True)
                    stream.replied.set()
            case frames.Settings(values):
                self.peer_flow_control = not self.ignore_peer_windows
                if (size := values.get(frames.SETTINGS_INITIAL_WINDOW_SIZE)) is not None:
                    delta, self.initial_send_window = size - self.initial_send_window, size
                    for stream in self.streams.values():
                        stream.send_window.grow(delta)
                    self._credit.set()
            case frames.Ping(ping_id):
                if future := self._pings.pop(ping_id, None):
                    if not future.done():
                        future.set_result(None)
                else:
                    await self.send(frame)
            case frames.GoAway():
                self.going_away = True
            case frames.WindowUpdate(stream_id, delta):
                self.peer_flow_control = not self.ignore_peer_windows
                if stream_id == 0:
                    self._send_window.grow(delta)
                elif stream := self.streams.get(stream_id):
                    stream.send_window.grow(delta)
                self._credit.set()

    async def _on_syn_stream(self, frame: frames.SynStream) -> None:
        if frame.stream_id <= self._last_peer_stream or frame.stream_id in self.streams:
            await self.send(frames.RstStream(frame.stream_id, frames.PROTOCOL_ERROR))
            return
        self._last_peer_stream = frame.stream_id
        if self.going_away:
            await self.send(frames.RstStream(frame.stream_id, frames.REFUSED_STREAM))
            return
        if self._max_streams is not None and len(self.streams) >= self._max_streams:
            await self.send(frames.RstStream(frame.stream_id, frames.REFUSED_STREAM))
            await self._rejected()
            return
        stream = Stream(self, frame.stream_id, frame.headers, remote_fin=frame.fin)
        stream.local_closed = frame.unidirectional
        self.streams[stream.id] = stream
        self.incoming.put_nowait(stream)

    async def _on_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            await self.send(frames.RstStream(stream_id, frames.INVALID_STREAM))
            return
        if stream.remote_closed:
            await self.send(frames.RstStream(stream_id, frames.STREAM_ALREADY_CLOSED))
            return
        within = stream.receive_window.received(len(data))
        within = self._receive_window.received(len(data)) and within
        if not within and self.peer_flow_control:
            await stream.abort(frames.FLOW_CONTROL_ERROR)
            return
        stream._on_data(data, fin)
        if fin:
            self._forget_if_done(stream)
        if self._unread > READ_BUFFER_LIMIT:
            self._room.clear()
            await self._room.wait()


def _nothing() -> None:
    pass
