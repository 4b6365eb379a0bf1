"""The streaming server: HTTP/1.1 on asyncio, upgraded to SPDY/3.1 or WebSocket.

Routes are ``/exec/TOKEN``, ``/attach/TOKEN`` and ``/portforward/TOKEN``;
the token (from ``url_for``) names a pending CRI request and works once.
Anything else, or a token that is unknown, expired or used, gets 404. A
request with a good token must ask to upgrade: ``Upgrade: SPDY/3.1`` with
``X-Stream-Protocol-Version`` candidates (kubelet, kubectl, crictl), or
``Upgrade: websocket`` with ``Sec-WebSocket-Protocol`` candidates; we pick
the first candidate the client lists that we support.

h11 parses the HTTP; after the 101 the connection belongs to
``crid.streaming.spdy`` or ``crid.streaming.websocket``.

The handshake is what anyone who reaches the port can do without a token, so
it is bounded: the request head (64 KiB at most), the token check and the
101 must all happen within ``handshake_timeout`` of connecting (a slowloris
client trickling bytes is cut off then, whatever its pace), and at most
``max_handshakes`` connections may be in that phase at once: one more closes
the oldest, which has had the longest to finish (a real client sends its
request at once). After the 101 the session's idle timeout applies
(``crid.streaming.limits``).
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator
from typing import Protocol

import h11
from wsproto.utilities import generate_accept_token

from crid import logs
from crid.clock import Clock
from crid.streaming import tokens, websocket
from crid.streaming.backend import Backend
from crid.streaming.limits import IdleWatch, Limits, PodForwards
from crid.streaming.reader import Reader, start_server
from crid.streaming.spdy import portforward as spdy_portforward
from crid.streaming.spdy import remotecommand as spdy_remotecommand
from crid.streaming.spdy.flow import ANNOUNCED_WINDOW
from crid.streaming.spdy.session import Session
from crid.streaming.writer import Writer

log = logs.get("crid.streaming")

MAX_REQUEST_HEAD = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or []


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol the client offers that we support; '' if it offered none."""
    candidates = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    if not candidates:
        return ""
    return next((p for p in candidates if p in supported), None)


class SessionObserver(Protocol):
    """Told when a session (exec, attach, port-forward) begins and ends (metrics)."""

    def session_started(self, kind: str) -> None: ...

    def session_ended(self, kind: str) -> None: ...


class StreamingServer:
    """Serves streaming sessions for requests registered with ``url_for``."""

    def __init__(self, backend: Backend, clock: Clock, *, address: str = "127.0.0.1",
                 port: int = 0, observer: SessionObserver | None = None,
                 limits: Limits | None = None) -> None:
        self.backend = backend
        self.observer = observer
        self.limits = limits or Limits()
        self.forwards = PodForwards(self.limits.max_port_forwards_per_pod)
        # Connections still in their handshake, oldest first (dicts keep order).
        self._handshaking: dict[Writer, None] = {}
        self.tokens = tokens.TokenCache(clock)
        self._address, self._port = address, port
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self.base_url = ""

    async def start(self) -> str:
        """Listen; the base URL (``http://HOST:PORT``) with the port actually bound."""
        self._server = await start_server(self._accept, self._address, self._port)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.base_url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        log.info("streaming server listening", url=self.base_url)
        return self.base_url

    def url_for(self, request: tokens.Request) -> str:
        """Register ``request``; the single-use URL the client connects to."""
        return tokens.url(self.base_url, request, self.tokens.put(request))

    async def close(self) -> None:
        """Stop listening and end every session (their processes are stopped)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: Reader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        if len(self._handshaking) >= self.limits.max_handshakes:
            oldest = next(iter(self._handshaking))
            del self._handshaking[oldest]
            log.warning("too many streaming handshakes at once; closing the oldest",
                        limit=self.limits.max_handshakes)
            oldest.transport.abort()
        self._handshaking[writer] = None
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("streaming session failed")
        finally:
            self._handshaking.pop(writer, None)
            self._sessions.discard(task)
            writer.close()

    async def _handle(self, reader: Reader, writer: Writer) -> None:
        http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_HEAD)
        deadline = asyncio.timeout(self.limits.handshake_timeout)
        async with deadline:
            try:
                request = await _read_request(http, reader)
            except h11.RemoteProtocolError:
                return
            if request is None:
                return
            try:
                await self._route(http, request, reader, writer, deadline)
            except HttpError as exc:
                await _refuse(http, writer, exc)

    async def _route(self, http: h11.Connection, request: h11.Request,
                     reader: Reader, writer: Writer,
                     deadline: asyncio.Timeout) -> None:
        target = urllib.parse.urlsplit(request.target.decode("ascii", "replace"))
        parts = target.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in tokens.KINDS:
            raise HttpError(404, "not found")
        pending = self.tokens.take(parts[0], parts[1])
        if pending is None:
            raise HttpError(404, f"unknown, expired or already used {parts[0]} token")
        # A client with a good token came through the CRI: it no longer
        # counts against the handshakes anyone may start.
        self._handshaking.pop(writer, None)
        headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            headers.setdefault(name.decode().lower(), []).append(value.decode("latin-1"))
        upgrade = ",".join(headers.get("upgrade", [])).lower()
        query = urllib.parse.parse_qs(target.query)
        log.info("streaming session", kind=pending.kind, upgrade=upgrade)
        connection = _Upgrade(http, reader, writer, deadline)
        if "websocket" in upgrade:
            serve = self._websocket(connection, headers, query, pending)
        elif "spdy/3.1" in upgrade:
            serve = self._spdy(connection, headers, pending)
        else:
            raise HttpError(400, "this endpoint needs an upgrade to SPDY/3.1 or websocket")
        if self.observer is not None:
            self.observer.session_started(pending.kind)
        try:
            await serve
        finally:
            if self.observer is not None:
                self.observer.session_ended(pending.kind)

    async def _spdy(self, connection: _Upgrade, headers: dict[str, list[str]],
                    pending: tokens.Request) -> None:
        supported = (spdy_portforward.PROTOCOLS if isinstance(pending, tokens.PortForwardRequest)
                     else spdy_remotecommand.PROTOCOLS)
        protocol = negotiate(headers.get("x-stream-protocol-version", []), supported)
        if protocol is None:
            raise HttpError(403, "none of the requested stream protocols is supported",
                            [("X-Accepted-Stream-Protocol-Versions", ", ".join(supported))])
        protocol = protocol or supported[-1]  # a client that offers none speaks the oldest
        upgraded = await connection.switch([
            ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
            ("X-Stream-Protocol-Version", protocol)])
        async with connection.idle(pending.kind, self.limits) as idle:
            session = Session(upgraded, connection.writer, server=True,
                              max_streams=self.limits.max_streams_per_connection,
                              activity=idle.touch)
            await session.announce_window(ANNOUNCED_WINDOW)
            if isinstance(pending, tokens.PortForwardRequest):
                await spdy_portforward.serve(session, pending, self.backend, self.forwards,
                                             self.limits.stream_creation_timeout)
            else:
                await spdy_remotecommand.serve(session, protocol, pending, self.backend,
                                               self.limits.stream_creation_timeout)

    async def _websocket(self, connection: _Upgrade, headers: dict[str, list[str]],
                         query: dict[str, list[str]], pending: tokens.Request) -> None:
        key = headers.get("sec-websocket-key", [""])[0]
        if not key or headers.get("sec-websocket-version", [""])[0] != "13":
            raise HttpError(400, "a WebSocket upgrade needs Sec-WebSocket-Key and version 13")
        forward = isinstance(pending, tokens.PortForwardRequest)
        supported = websocket.PORTFORWARD_PROTOCOLS if forward else websocket.EXEC_PROTOCOLS
        protocol = negotiate(headers.get("sec-websocket-protocol", []), supported)
        if protocol is None:
            raise HttpError(400, "none of the requested WebSocket protocols is supported: use "
                                 + ", ".join(supported))
        ports: list[int] = []
        if isinstance(pending, tokens.PortForwardRequest):
            try:
                ports = websocket.ports_from_query(query, self.limits.max_port_forwards_per_pod)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
        reply = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                 ("Sec-WebSocket-Accept", generate_accept_token(key.encode()).decode())]
        if protocol:
            reply.append(("Sec-WebSocket-Protocol", protocol))
        upgraded = await connection.switch(reply)
        async with connection.idle(pending.kind, self.limits) as idle:
            socket = websocket.ChannelSocket(upgraded, connection.writer,
                                             protocol or "channel.k8s.io",
                                             max_message=self.limits.websocket_max_message,
                                             activity=idle.touch)
            if isinstance(pending, tokens.PortForwardRequest):
                await websocket.serve_portforward(socket, pending, ports, self.backend,
                                                  self.forwards)
            else:
                await websocket.serve_remotecommand(socket, protocol or "channel.k8s.io",
                                                    pending, self.backend)


class _Upgrade:
    """One connection between its request and its 101, and the session after it."""

    def __init__(self, http: h11.Connection, reader: Reader,
                 writer: Writer, deadline: asyncio.Timeout) -> None:
        self.http, self.reader, self.writer, self.deadline = http, reader, writer, deadline

    async def switch(self, headers: list[tuple[str, str]]) -> Reader:
        """Answer 101; the upgraded connection's reader. The handshake deadline ends here."""
        # h11 only lets us switch once the (empty) request body has been read.
        while (event := self.http.next_event()) is not h11.PAUSED:
            if event is h11.NEED_DATA:
                if not (data := await self.reader.read(65536)):
                    raise ConnectionResetError("client closed before the upgrade")
                self.http.receive_data(data)
        self.writer.write(self.http.send(h11.InformationalResponse(status_code=101,
                                                                   headers=headers)) or b"")
        await self.writer.drain()
        self.deadline.reschedule(None)
        self.reader.unread(self.http.trailing_data[0])
        return self.reader

    @contextlib.asynccontextmanager
    async def idle(self, kind: str, limits: Limits) -> AsyncIterator[IdleWatch]:
        """The session's idle timeout, watched while the block runs."""
        transport = self.writer.transport
        assert isinstance(transport, asyncio.WriteTransport)
        watch = IdleWatch(transport, limits.stream_idle_timeout, kind)
        watching = asyncio.create_task(watch.run())
        try:
            yield watch
        finally:
            watching.cancel()


async def _refuse(http: h11.Connection, writer: Writer, exc: HttpError) -> None:
    body = (exc.message + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"),
               ("Content-Length", str(len(body))), ("Connection", "close"), *exc.headers]
    writer.write(http.send(h11.Response(status_code=exc.status, headers=headers)) or b"")
    writer.write(http.send(h11.Data(data=body)) or b"")
    writer.write(http.send(h11.EndOfMessage()) or b"")
    await writer.drain()


async def _read_request(http: h11.Connection, reader: Reader
                        ) -> h11.Request | None:
    while True:
        event = http.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            http.receive_data(data)
            if not data:
                with contextlib.suppress(h11.RemoteProtocolError):
                    http.next_event()
                return None
            continue
        return event if isinstance(event, h11.Request) else None
