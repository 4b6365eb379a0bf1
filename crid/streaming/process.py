"""Running a process for a streaming session: pipes or a terminal, resizes, kill on cancel.

``run_process`` is what both backends use: the host backend runs the
client's command directly, the container backend runs the OCI runtime's
``exec``. Exit codes are the runtimes' (a death by signal N is 128+N).
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
from tty import setraw

from crid.oci.signals import from_returncode
from crid.streaming.backend import InputStream, OutputStream, TerminalSize
from crid.streaming.writer import Writer

CHUNK = 64 * 1024
EOT = b"\x04"  # a terminal's end-of-file character (^D)


async def copy_out(source: asyncio.StreamReader, sink: OutputStream) -> None:
    while chunk := await source.read(CHUNK):
        await sink.write(chunk)


async def copy_in(source: InputStream, sink: asyncio.StreamWriter | Writer, *,
                  tty: bool) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        if tty:  # a terminal has no half-close; ^D is how a user ends input
            sink.write(EOT)
            await sink.drain()
        else:
            sink.close()


FIRST_SIZE_WAIT = 1.0  # clients send the terminal's size right after connecting


def _set_size(fd: int, size: TerminalSize) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


async def first_size(resize: AsyncIterator[TerminalSize]
                     ) -> tuple[TerminalSize | None, AsyncIterator[TerminalSize]]:
    """The client's first terminal size (if it comes soon) and the sizes after it.

    A process should start at its client's size, never 0x0, so the first
    size is awaited before starting it. When none comes in time, the read
    stays pending inside the returned iterator: cancelling it would end the
    client's size stream.
    """
    pending = asyncio.ensure_future(anext(resize))
    done, _ = await asyncio.wait({pending}, timeout=FIRST_SIZE_WAIT)

    async def rest() -> AsyncIterator[TerminalSize]:
        if not done:
            try:
                yield await pending
            except StopAsyncIteration:
                return
        async for size in resize:
            yield size

    try:
        first = pending.result() if done else None
    except StopAsyncIteration:
        first = None
    return first, rest()


async def sizes_from(first: TerminalSize, rest: AsyncIterator[TerminalSize]
                     ) -> AsyncIterator[TerminalSize]:
    """``first``, then whatever ``rest`` yields."""
    yield first
    async for size in rest:
        yield size


async def _apply_sizes(resize: AsyncIterator[TerminalSize], fd: int) -> None:
    async for size in resize:
        _set_size(fd, size)


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


class Stopper:
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
    return from_returncode(process.returncode)


async def run_process(cmd: list[str], *, tty: bool, stdin: InputStream | None,
                      stdout: OutputStream | None, stderr: OutputStream | None,
                      resize: AsyncIterator[TerminalSize] | None, relay: bool = False) -> int:
    """Run ``cmd`` wired to the streams, with pipes or on a new terminal; its exit code.

    The process leads its own session (and, with a tty, has the terminal as
    its controlling one, so a resize reaches it as SIGWINCH); cancelling
    kills its process group. The container backend runs the OCI runtime's
    ``exec`` through this with ``relay``: the runtime relays our terminal to
    the container's, so ours is raw (or every newline would be translated
    twice) and only carries the size.
    """
    if tty:
        return await _run_on_terminal(cmd, stdin, stdout, resize, relay)
    pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
    process = await asyncio.create_subprocess_exec(
        *cmd, stdin=pipe if stdin else devnull, stdout=pipe if stdout else devnull,
        stderr=pipe if stderr else devnull, start_new_session=True)
    async with Stopper(process):
        outputs = [asyncio.create_task(copy_out(source, sink))
                   for source, sink in ((process.stdout, stdout), (process.stderr, stderr))
                   if source is not None and sink is not None]
        extras = []
        if stdin is not None and process.stdin is not None:
            extras.append(asyncio.create_task(copy_in(stdin, process.stdin, tty=False)))
        return await _finish(process, outputs, extras)


async def _run_on_terminal(cmd: list[str], stdin: InputStream | None,
                           stdout: OutputStream | None,
                           resize: AsyncIterator[TerminalSize] | None, relay: bool) -> int:
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    control = os.dup(master)  # for TIOCSWINSZ; the transports own the others
    if relay:
        setraw(slave)
    if resize is not None:
        first, resize = await first_size(resize)
        if first is not None:
            _set_size(control, first)
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
    write_transport, writer = await loop.connect_write_pipe(
        Writer, os.fdopen(os.dup(master), "wb", buffering=0))
    try:
        async with Stopper(process):
            extras = []
            if stdin is not None:
                extras.append(asyncio.create_task(copy_in(stdin, writer, tty=True)))
            if resize is not None:
                extras.append(asyncio.create_task(_apply_sizes(resize, control)))
            return await _finish(process, [asyncio.create_task(output.copy_to(stdout))],
                                 extras)
    finally:
        read_transport.close()
        write_transport.close()
        os.close(control)
