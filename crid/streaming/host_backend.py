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
import fcntl
import os
import signal
import struct
import termios
from collections.abc import AsyncIterator

from crid.errors import NotFound
from crid.streaming.backend import InputStream, OutputStream, TerminalSize

CHUNK = 64 * 1024
EOT = b"\x04"  # a terminal's end-of-file character (^D)


def exit_code(returncode: int) -> int:
    """A runtime-style exit code: a death by signal N is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


async def _copy_out(source: asyncio.StreamReader, sink: OutputStream) -> None:
    while chunk := await source.read(CHUNK):
        await sink.write(chunk)


async def _copy_in(source: InputStream, sink: asyncio.StreamWriter, *, tty: bool) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if tty:  # a terminal has no half-close; ^D is how a user ends input
            sink.write(EOT)
            await sink.drain()
        else:
            sink.close()


async def _apply_sizes(resize: AsyncIterator[TerminalSize], fd: int) -> None:
    async for size in resize:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def _take_terminal() -> None:  # runs in the child, after setsid
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class _PtyOutput(asyncio.Protocol):
    """The terminal master's output; EOF when the last slave holder exits (EIO)."""

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.put_nowait(data)
        if self.chunks.qsize() > 16 and self.transport is not None:
            self.transport.pause_reading()  # back-pressure from a slow client

    def connection_lost(self, exc: Exception | None) -> None:
        self.chunks.put_nowait(b"")

    async def copy_to(self, sink: OutputStream | None) -> None:
        while chunk := await self.chunks.get():
            if self.chunks.qsize() < 4 and self.transport is not None:
                self.transport.resume_reading()
            if sink is not None:
                await sink.write(chunk)


class _Stopper:
    """Kills a process group unless the process has already been reaped."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def __aenter__(self) -> asyncio.subprocess.Process:
        return self.process

    async def __aexit__(self, *exc: object) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await asyncio.shield(self.process.wait())


async def _finish(process: asyncio.subprocess.Process, outputs: list[asyncio.Task[None]],
                  extras: list[asyncio.Task[None]]) -> int:
    """Wait for exit and all output; then stop the input/resize helpers."""
    try:
        await asyncio.gather(process.wait(), *outputs)
    finally:
        for task in outputs + extras:
            task.cancel()
        await asyncio.gather(*outputs, *extras, return_exceptions=True)
    assert process.returncode is not None
    return exit_code(process.returncode)


class _Attachable:
    """A long-running process whose output is copied to whoever is attached."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.attached: list[tuple[OutputStream | None, OutputStream | None]] = []
        self.pumps = [asyncio.create_task(self._fan_out(process.stdout, 0)),
                      asyncio.create_task(self._fan_out(process.stderr, 1))]

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
        self._containers[container_id] = _Attachable(process)

    async def stop_all(self) -> None:
        for container in self._containers.values():
            async with _Stopper(container.process):
                pass
            await asyncio.gather(*container.pumps, return_exceptions=True)
        self._containers.clear()

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        if tty:
            return await self._exec_tty(cmd, stdin, stdout, resize)
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        process = await asyncio.create_subprocess_exec(
            *cmd, stdin=pipe if stdin else devnull, stdout=pipe if stdout else devnull,
            stderr=pipe if stderr else devnull, start_new_session=True)
        async with _Stopper(process):
            outputs = [asyncio.create_task(_copy_out(source, sink))
                       for source, sink in ((process.stdout, stdout), (process.stderr, stderr))
                       if source is not None and sink is not None]
            extras = []
            if stdin is not None and process.stdin is not None:
                extras.append(asyncio.create_task(_copy_in(stdin, process.stdin, tty=False)))
            return await _finish(process, outputs, extras)

    async def _exec_tty(self, cmd: list[str], stdin: InputStream | None,
                        stdout: OutputStream | None,
                        resize: AsyncIterator[TerminalSize] | None) -> int:
        loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        control = os.dup(master)  # for TIOCSWINSZ; the transports own the others
        try:
            process = await asyncio.create_subprocess_exec(
                *cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                preexec_fn=_take_terminal)
        except BaseException:
            for fd in (master, slave, control):
                os.close(fd)
            raise
        os.close(slave)  # else the master never sees EOF
        output = _PtyOutput()
        read_transport, _ = await loop.connect_read_pipe(
            lambda: output, os.fdopen(master, "rb", buffering=0))
        write_transport, write_protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(os.dup(master), "wb", buffering=0))
        writer = asyncio.StreamWriter(write_transport, write_protocol, None, loop)
        try:
            async with _Stopper(process):
                extras = []
                if stdin is not None:
                    extras.append(asyncio.create_task(_copy_in(stdin, writer, tty=True)))
                if resize is not None:
                    extras.append(asyncio.create_task(_apply_sizes(resize, control)))
                return await _finish(process, [asyncio.create_task(output.copy_to(stdout))],
                                     extras)
        finally:
            read_transport.close()
            write_transport.close()
            os.close(control)

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
            feeding = asyncio.create_task(_copy_in(stdin, container.process.stdin, tty=False))
        try:
            await container.finished()
        finally:
            if feeding is not None:
                feeding.cancel()
            with contextlib.suppress(ValueError):
                container.attached.remove(streams)

    async def port_forward(self, pod_sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)
