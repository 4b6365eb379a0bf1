"""Open a TCP connection to a port inside a pod's network namespace.

Port-forward connects to ``localhost:PORT`` *as the pod sees it*. A socket
belongs to the network namespace it was created in, so a fresh thread joins
the pod's netns and creates the socket; the daemon then uses it from any
thread.

``Dialer`` is what the daemon uses: the sockets are made on a small thread
pool of its own, never on the pool the daemon's other blocking work shares
(unpacking, mounting), and the connect itself runs on the event loop with a
timeout, so a pod that never answers a SYN holds no thread at all. A client
asking for thousands of forwards then waits its turn for a few threads and
costs the rest of the daemon nothing. ``dial`` is the blocking form, for
tests and tools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket

from crid.network import namespaces

from crid.errors import NotFound, Unavailable

DIAL_TIMEOUT = 5.0
DIAL_WORKERS = 4


def _socket_in(netns_path: str, host: str) -> socket.socket:
    """An unconnected TCP socket made inside ``netns_path``."""
    if not namespaces.is_pinned(netns_path):
        raise NotFound(f"network namespace {netns_path} does not exist (pod stopped?)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return namespaces.run_inside({"net": netns_path},
                                 lambda: socket.socket(family, socket.SOCK_STREAM))


def _unreachable(host: str, port: int, exc: BaseException) -> Unavailable:
    reason = getattr(exc, "strerror", None) or str(exc) or "timed out"
    return Unavailable(f"cannot connect to {host}:{port} in the pod's network namespace: "
                       f"{reason}")


def dial(netns_path: str, port: int, host: str = "127.0.0.1",
         timeout: float = DIAL_TIMEOUT) -> socket.socket:
    """A connected TCP socket to ``host:port`` inside ``netns_path`` (blocking)."""
    sock = _socket_in(netns_path, host)
    sock.settimeout(timeout)
    try:
        sock.connect((host, port))
    except OSError as exc:
        sock.close()
        raise _unreachable(host, port, exc) from None
    sock.settimeout(None)
    return sock


class Dialer:
    """Connections into pods, with sockets made on a bounded pool of their own."""

    def __init__(self, workers: int = DIAL_WORKERS, timeout: float = DIAL_TIMEOUT) -> None:
        # Threads start on first use, not here.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="crid-dial")
        self._timeout = timeout

    async def connect(self, netns_path: str, port: int, host: str = "127.0.0.1"
                      ) -> socket.socket:
        """A non-blocking socket connected to ``host:port`` inside ``netns_path``."""
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(self._pool, _socket_in, netns_path, host)
        try:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, (host, port)), self._timeout)
        except (OSError, TimeoutError) as exc:
            sock.close()
            raise _unreachable(host, port, exc) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def close(self) -> None:
        """Stop the pool; dials still queued fail."""
        self._pool.shutdown(wait=False, cancel_futures=True)
