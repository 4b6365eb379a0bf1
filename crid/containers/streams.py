"""The streaming server's backend on real containers: exec, attach, port-forward.

- exec: the handler's runtime ``exec`` with pipes, or with ``--tty
  --console-socket`` for a terminal (the runtime sends the pty master back
  over the socket; resizes go to it with TIOCSWINSZ).
- attach: conmon's attach socket in the bundle (SOCK_SEQPACKET; each packet
  from conmon starts with a byte naming the stream) and its ``winsz`` fifo.
- port-forward: a connection made inside the pod's network namespace.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import json
import os
import socket
import struct
import tempfile
import termios
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crid.containers import monitor as monitors
from crid.containers.context import Containers
from crid.containers.exec_sync import exec_process, require_running
from crid.errors import FailedPrecondition, NotFound
from crid.network import dial
from crid.sandbox.context import Sandboxes
from crid.streaming.backend import InputStream, OutputStream, TerminalSize

CHUNK = 64 * 1024
# conmon's attach socket: the first byte of each packet it sends names the stream.
ATTACH_STDOUT, ATTACH_STDERR = 2, 3
ATTACH_PACKET = 8192 + 1
RESIZE_EVENT = 1


class ContainerStreams:
    def __init__(self, containers: Containers, sandboxes: Sandboxes) -> None:
        self.containers = containers
        self.sandboxes = sandboxes

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        container = require_running(self.containers, container_id, "Exec")
        bundle = Path(container.bundle)
        process = exec_process(bundle, cmd)
        process["terminal"] = tty
        monitor = self.containers.monitor(container.handler)
        with tempfile.TemporaryDirectory(prefix="exec-", dir=bundle) as scratch:
            spec, pid_file = Path(scratch) / "process.json", Path(scratch) / "pid"
            spec.write_text(json.dumps(process))
            args = [monitor.handler.path, "--root", str(monitor.runtime_root), "exec",
                    "--process", str(spec), "--pid-file", str(pid_file)]
            if tty:
                return await self._exec_tty(args, container.id, Path(scratch), stdin, stdout,
                                            resize, pid_file)
            proc = await asyncio.create_subprocess_exec(
                *args, container.id,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                assert proc.stdout is not None and proc.stderr is not None
                copies = [_copy_out(proc.stdout, stdout), _copy_out(proc.stderr, stderr)]
                feeder = (asyncio.ensure_future(_copy_in(stdin, proc.stdin))
                          if stdin and proc.stdin else None)
                await asyncio.gather(*copies)
                code = await proc.wait()
                if feeder:
                    feeder.cancel()
                return _exit_code(code)
            except asyncio.CancelledError:
                await monitors.stop_exec(pid_file, proc)
                raise

    async def _exec_tty(self, args: list[str], container_id: str, scratch: Path,
                        stdin: InputStream | None, stdout: OutputStream | None,
                        resize: AsyncIterator[TerminalSize] | None, pid_file: Path) -> int:
        console = scratch / "console.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(console))
            listener.listen(1)
            listener.setblocking(False)
            proc = await asyncio.create_subprocess_exec(
                *args, "--tty", "--console-socket", str(console), container_id,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            try:
                master = await _receive_console(listener, proc)
            except BaseException:
                await monitors.stop_exec(pid_file, proc)
                raise
        try:
            tasks = [asyncio.ensure_future(_copy_master_out(master, stdout))]
            if stdin:
                tasks.append(asyncio.ensure_future(_copy_master_in(stdin, master)))
            if resize:
                tasks.append(asyncio.ensure_future(_apply_sizes(resize, master)))
            code = await proc.wait()
            await asyncio.wait_for(tasks[0], 5)  # the last output still in the pty
            return _exit_code(code)
        except asyncio.CancelledError:
            await monitors.stop_exec(pid_file, proc)
            raise
        finally:
            for task in tasks:
                task.cancel()
            os.close(master)

    async def attach(self, container_id: str, *, tty: bool,
                     stdin: InputStream | None, stdout: OutputStream | None,
                     stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        container = require_running(self.containers, container_id, "Attach")
        bundle = Path(container.bundle)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            await asyncio.to_thread(sock.connect, str(bundle / "attach"))
        except OSError as exc:
            sock.close()
            raise FailedPrecondition(f"cannot attach to container {container.id}: {exc}") from exc
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Future[Any]] = []
        try:
            if stdin:
                tasks.append(asyncio.ensure_future(_attach_in(stdin, sock)))
            if resize and tty:
                tasks.append(asyncio.ensure_future(_resize_fifo(resize, bundle)))
            while packet := await loop.sock_recv(sock, ATTACH_PACKET):
                sink = stdout if packet[0] == ATTACH_STDOUT or tty else stderr
                if sink is not None and packet[0] in (ATTACH_STDOUT, ATTACH_STDERR):
                    await sink.write(packet[1:])
        finally:
            for task in tasks:
                task.cancel()
            sock.close()

    async def port_forward(self, pod_sandbox_id: str, port: int
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        pod = self.sandboxes.find(pod_sandbox_id)
        if pod is None:
            raise NotFound(f"pod sandbox {pod_sandbox_id!r} not found")
        if not pod.netns:  # host network: the pod's localhost is the node's
            return await asyncio.open_connection("127.0.0.1", port)
        return await dial.open_connection(pod.netns, port)


async def _copy_out(source: asyncio.StreamReader, sink: OutputStream | None) -> None:
    while chunk := await source.read(CHUNK):
        if sink is not None:
            await sink.write(chunk)


async def _copy_in(source: InputStream, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while chunk := await source.read(CHUNK):
            sink.write(chunk)
            await sink.drain()
        sink.close()


async def _receive_console(listener: socket.socket, proc: asyncio.subprocess.Process) -> int:
    """The pty master the runtime sends over the console socket (SCM_RIGHTS)."""
    loop = asyncio.get_running_loop()
    accept = asyncio.ensure_future(loop.sock_accept(listener))
    exited = asyncio.ensure_future(proc.wait())
    done, _ = await asyncio.wait({accept, exited}, return_when=asyncio.FIRST_COMPLETED)
    if accept not in done:
        accept.cancel()
        assert proc.stderr is not None
        message = (await proc.stderr.read()).decode(errors="replace").strip()
        raise FailedPrecondition(f"exec with a terminal failed: {message or 'no terminal'}")
    exited.cancel()
    conn, _ = accept.result()
    with conn:
        fds = array.array("i")
        _, ancillary, _, _ = await asyncio.to_thread(
            conn.recvmsg, 4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    if not fds:
        raise FailedPrecondition("the runtime sent no terminal over the console socket")
    os.set_blocking(fds[0], False)
    return fds[0]


async def _copy_master_out(master: int, sink: OutputStream | None) -> None:
    loop = asyncio.get_running_loop()
    readable = asyncio.Event()
    loop.add_reader(master, readable.set)
    try:
        while True:
            await readable.wait()
            readable.clear()
            try:
                chunk = os.read(master, CHUNK)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the last process holding the pty is gone
                return
            if not chunk:
                return
            if sink is not None:
                await sink.write(chunk)
    finally:
        loop.remove_reader(master)


async def _copy_master_in(source: InputStream, master: int) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await source.read(CHUNK):
            await asyncio.to_thread(_write_all, master, chunk)
        await asyncio.to_thread(_write_all, master, b"\x04")  # ^D: a terminal's EOF


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1)


async def _apply_sizes(resize: AsyncIterator[TerminalSize], master: int) -> None:
    async for size in resize:
        fcntl.ioctl(master, termios.TIOCSWINSZ,
                    struct.pack("HHHH", size.height, size.width, 0, 0))


async def _attach_in(source: InputStream, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await source.read(CHUNK):
            await loop.sock_sendall(sock, chunk)
        # conmon closes the container's stdin on this, unless it was told to
        # leave it open (stdin_once false).
        sock.shutdown(socket.SHUT_WR)


async def _resize_fifo(resize: AsyncIterator[TerminalSize], bundle: Path) -> None:
    fifo = bundle / "winsz" if (bundle / "winsz").exists() else bundle / "ctl"
    async for size in resize:
        fd = await asyncio.to_thread(os.open, fifo, os.O_WRONLY)
        try:
            os.write(fd, f"{RESIZE_EVENT} {size.height} {size.width}\n".encode())
        finally:
            os.close(fd)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode
