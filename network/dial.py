"""Open a TCP connection to a port inside a pod's network namespace.

Port-forward connects to ``localhost:PORT`` *as the pod sees it*. A socket
belongs to the network namespace it was created in, so a fresh thread joins
the pod's netns, creates and connects the socket, and hands it back; the
daemon then uses it from any thread.
"""

from __future__ import annotations

import asyncio
import socket

from crid.network import namespaces

from crid.errors import NotFound, Unavailable

DIAL_TIMEOUT = 5.0


def dial(netns_path: str, port: int, host: str = "127.0.0.1",
         timeout: float = DIAL_TIMEOUT) -> socket.socket:
    """A connected TCP socket to ``host:port`` inside ``netns_path``."""
    if not namespaces.is_pinned(netns_path):
        raise NotFound(f"network namespace {netns_path} does not exist (pod stopped?)")

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except OSError as exc:
            sock.close()
            raise Unavailable(
                f"cannot connect to {host}:{port} in the pod's network namespace: "
                f"{exc.strerror or exc}"
            ) from None
        sock.settimeout(None)
        return sock

    return namespaces.run_inside({"net": netns_path}, connect)


async def open_connection(
    netns_path: str, port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``dial`` as asyncio streams (the thread runs off the event loop)."""
    sock = await asyncio.to_thread(dial, netns_path, port, host)
    return await asyncio.open_connection(sock=sock)
