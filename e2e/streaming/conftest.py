"""A real streaming server with the host-process backend, on its own thread,
and a loopback TCP server for port-forward tests to reach.

The server runs its event loop on a thread of its own, so tests can drive
it from blocking clients (the kubernetes package's WebSocket client) or from
their own event loop (our SPDY client) exactly as a remote client would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from crid.clock import Clock
from crid.streaming.host_backend import HostBackend
from crid.streaming.server import StreamingServer
from crid.streaming.tokens import Request

T = TypeVar("T")


class ServerThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = ManualClock()
        self.backend = HostBackend()
        self.server = StreamingServer(self.backend, self.clock)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.base_url = self.call(self.server.start())

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def url_for(self, request: Request) -> str:
        async def register() -> str:
            return self.server.url_for(request)
        return self.call(register())

    def stop(self) -> None:
        self.call(self.server.close())
        self.call(self.backend.stop_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class ManualClock(Clock):
    """Real time plus an offset the test can advance (to expire tokens)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


@pytest.fixture(scope="module")
def streaming() -> Iterator[ServerThread]:
    server = ServerThread()
    yield server
    server.stop()


@contextlib.contextmanager
def loopback_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 running ``answer`` on each connection, on its own thread."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    listener.close()


@pytest.fixture
def digest_server() -> Iterator[int]:
    """A loopback TCP server: reads to EOF, answers the sha256 hex of it."""
    def answer(conn: socket.socket) -> None:
        with conn:
            digest = hashlib.sha256()
            while chunk := conn.recv(1 << 20):
                digest.update(chunk)
            conn.sendall(digest.hexdigest().encode())

    with loopback_server(answer) as port:
        yield port


def wait_for_size(size: str) -> str:
    """Shell: read a line, poll ``stty size`` until it is ``size`` (5 s at most), print it."""
    return (f'read go; i=0; while [ "$(stty size)" != "{size}" ] && [ $i -lt 100 ]; '
            'do sleep 0.05; i=$((i+1)); done; stty size')
