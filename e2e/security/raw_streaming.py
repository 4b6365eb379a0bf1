"""Hostile streaming clients: raw SPDY/3.1 and WebSocket on blocking sockets.

The test clients in ``e2e/streaming`` are well behaved by construction; an
attacker is not. ``upgrade`` performs the HTTP upgrade by hand and leaves
every later byte to the caller. ``SpdyPeer`` writes whatever frames it is
given (or raw bytes, for frames no encoder would make) and, once told to,
reads and decodes what the server sends until the connection ends, noting
when it ended.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.parse

from crid.streaming.spdy import frames

UPGRADE_TIMEOUT = 10.0


def upgrade(url: str, headers: list[tuple[str, str]], method: str = "POST") -> socket.socket:
    """Connect to ``url`` and ask to upgrade with ``headers``; the socket after the 101."""
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    sock = socket.create_connection((parts.hostname, parts.port), timeout=UPGRADE_TIMEOUT)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n")
    sock.sendall(head.encode())
    response = b""
    while not response.endswith(b"\r\n\r\n"):  # byte by byte: frames may follow at once
        byte = sock.recv(1)
        assert byte, f"the server closed during the upgrade: {response!r}"
        response += byte
    assert response.split(b" ", 2)[1] == b"101", response
    sock.settimeout(None)
    return sock


def spdy_upgrade(url: str, protocol: str) -> socket.socket:
    return upgrade(url, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                         ("X-Stream-Protocol-Version", protocol), ("Content-Length", "0")])


def websocket_upgrade(url: str, protocol: str) -> socket.socket:
    return upgrade(url, [("Connection", "Upgrade"), ("Upgrade", "websocket"),
                         ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                         ("Sec-WebSocket-Version", "13"),
                         ("Sec-WebSocket-Protocol", protocol)], method="GET")


class SpdyPeer:
    """A SPDY client that sends what it is told and reads only when told to."""

    def __init__(self, url: str, protocol: str) -> None:
        self.sock = spdy_upgrade(url, protocol)
        self.codec = frames.HeaderCodec()
        self.received: list[frames.Frame] = []
        self.ended = threading.Event()
        self.ended_at = 0.0
        self.error: BaseException | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)

    def encode(self, *sent: frames.Frame) -> bytes:
        return b"".join(frames.encode(frame, self.codec) for frame in sent)

    def send_raw(self, data: bytes) -> bool:
        """Write ``data``; False if the server had already closed the connection."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def start_reading(self) -> None:
        self._reader.start()

    def wait_ended(self, timeout: float) -> bool:
        return self.ended.wait(timeout)

    def of(self, kind: type[frames.Frame]) -> list[frames.Frame]:
        return [frame for frame in list(self.received) if isinstance(frame, kind)]

    def data_on(self, stream_id: int) -> bytes:
        """What the server sent on stream ``stream_id`` so far."""
        return b"".join(frame.data for frame in list(self.received)
                        if isinstance(frame, frames.Data) and frame.stream_id == stream_id)

    def close(self) -> None:
        self.sock.close()

    def _read(self) -> None:
        try:
            while True:
                header = self._exactly(frames.HEADER_SIZE)
                payload = self._exactly(frames.frame_length(header))
                frame = frames.decode(header, payload, self.codec)
                if frame is not None:
                    self.received.append(frame)
        except (EOFError, OSError) as exc:  # the server ended it, or we closed the socket
            self.error = exc
        finally:
            self.ended_at = time.monotonic()
            self.ended.set()

    def _exactly(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise EOFError(f"connection ended after {len(data)} of {count} bytes")
            data += chunk
        return data
