"""A ``Backend`` made of host processes: what the streaming tests run against.

``exec`` runs the command as a local subprocess, with pipes, or on a new
pseudo-terminal for a tty (resized with TIOCSWINSZ, so ``stty size`` inside
sees the client's size). ``attach`` connects to a process started earlier
with ``start``. ``port_forward`` connects to 127.0.0.1:PORT. The container
and sandbox ids are only names here. The daemon's container backend does the
same things through the OCI runtime and conmon.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from crid.errors import NotFound
from crid.streaming.backend import InputStream, OutputStream, TerminalSize
from crid.streaming.process import CHUNK, Stopper, copy_in, run_process
from crid.streaming.reader import Reader, open_connection
from crid.streaming.writer import Writer


class _Attachable:
    """A long-running process whose output is copied to whoever is attached."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.attached: list[tuple[OutputStream | None, OutputStream | None]] = []
        self.pumps: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start copying the process's stdout and stderr to the attached."""
        self.pumps = [asyncio.create_task(self._fan_out(self.process.stdout, 0)),
                      asyncio.create_task(self._fan_out(self.process.stderr, 1))]

    async def _fan_out(self, source: asyncio.StreamReader | None, index: int) -> None:
        assert source is not None
        while chunk := await source.read(CHUNK):
            for streams in list(self.attached):
                sink = streams[index]
                try:
                    if sink is not None:
                        await sink.write(chunk)
                except ConnectionError:
                    with contextlib.suppress(ValueError):
                        self.attached.remove(streams)

    async def finished(self) -> None:
        await asyncio.gather(self.process.wait(), *self.pumps)


class HostBackend:
    """Runs everything as plain processes of this host."""

    def __init__(self) -> None:
        self._containers: dict[str, _Attachable] = {}

    async def start(self, container_id: str, cmd: list[str]) -> None:
        """Start a process that ``attach(container_id)`` connects to."""
        process = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        attachable = self._containers[container_id] = _Attachable(process)
        attachable.start()

    async def stop_all(self) -> None:
        for container in self._containers.values():
            async with Stopper(container.process):
                pass
            await asyncio.gather(*container.pumps, return_exceptions=True)
        self._containers.clear()

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        return await run_process(cmd, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr,
                                 resize=resize)

    async def attach(self, container_id: str, *, tty: bool, stdin: InputStream | None,
                     stdout: OutputStream | None, stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        container = self._containers.get(container_id)
        if container is None:
            raise NotFound(f"container {container_id} is not running here")
        streams = (stdout, stderr)
        container.attached.append(streams)
        feeding = None
        if stdin is not None and container.process.stdin is not None:
            feeding = asyncio.create_task(copy_in(stdin, container.process.stdin, tty=False))
        try:
            await container.finished()
        finally:
            if feeding is not None:
                feeding.cancel()
            with contextlib.suppress(ValueError):
                container.attached.remove(streams)

    async def port_forward(self, pod_sandbox_id: str, port: int
                           ) -> tuple[Reader, Writer]:
        return await open_connection("127.0.0.1", port)
