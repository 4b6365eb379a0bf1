"""The seam between the streaming server and whatever runs the processes.

The server speaks the wire protocols (SPDY, WebSocket) and turns each session
into one call on a ``Backend``; the backend does the work on a real process.
The daemon implements it with containers (the OCI runtime's ``exec``, conmon's
attach socket, a dial inside the pod's network namespace); tests use
``crid.streaming.host_backend.HostBackend``, which runs host processes.

The byte streams are small protocols so either side can be anything:

- ``stdin`` is an ``InputStream``: ``await stdin.read(n)`` returns up to n
  bytes, and b'' once the client has closed its stdin (then close the
  process's stdin: ``cat`` must see EOF).
- ``stdout``/``stderr`` are ``OutputStream``: ``await out.write(data)`` waits
  until the client side has taken it (that is the back-pressure; never buffer
  without bound), and raises ``ConnectionError`` once the client is gone.
  Do not close them; the server closes them after the call returns.
- ``resize`` is an async iterator of ``TerminalSize``; it ends when the client
  stops sending sizes. The first size usually arrives right after start.

Any of them is None when the request did not ask for it (``stdin=False`` in
the CRI request, ``stderr`` always None for a tty: a terminal has one output).

Cancellation is the end of a session: if the client goes away, the server
cancels the task running ``exec``/``attach``; an exec backend then kills the
process it started, an attach backend just detaches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Protocol

from crid.streaming.reader import Reader
from crid.streaming.writer import Writer


@dataclasses.dataclass(frozen=True)
class TerminalSize:
    width: int   # columns
    height: int  # rows


class InputStream(Protocol):
    async def read(self, limit: int = 65536) -> bytes: ...


class OutputStream(Protocol):
    async def write(self, data: bytes) -> None: ...


class Backend(Protocol):
    """What the streaming server needs from the runtime."""

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        """Run ``cmd`` in the container, wired to the streams; its exit code.

        Return once the process has exited and all of its output has been
        written to ``stdout``/``stderr``. A process killed by signal N is
        reported as 128+N, as runtimes do. With ``tty`` the process gets a
        terminal (the runtime's ``exec --tty --console-socket``; resize it with
        TIOCSWINSZ on the console master for each size from ``resize``) and
        its output goes to ``stdout``. Raise ``crid.errors.NotFound`` for an
        unknown container and ``FailedPrecondition`` if it is not running; the
        message reaches the client as the failure's text.
        """
        ...

    async def attach(self, container_id: str, *, tty: bool,
                     stdin: InputStream | None, stdout: OutputStream | None,
                     stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        """Connect the streams to the container's main process until it exits.

        Output produced from now on is copied to the streams (conmon's attach
        socket gives exactly this); stdin goes to the process's stdin if the
        container was created with ``stdin: true``. Return when the container
        exits or the output ends. If the client closes stdin and the container
        was created with ``stdin_once``, close the process's stdin.
        """
        ...

    async def port_forward(self, pod_sandbox_id: str, port: int
                           ) -> tuple[Reader, Writer]:
        """A TCP connection to ``port`` on the pod's loopback.

        The daemon dials inside the pod's network namespace (a socket made in
        that netns, then ``crid.streaming.reader.open_connection(sock=...)``). Raise
        ``crid.errors.NotFound`` for an unknown sandbox; a refused connection
        is an ``OSError`` (its text goes back on the port's error stream).
        """
        ...
