"""The streaming server's backend on real containers: exec, attach, port-forward.

- exec: the handler's runtime ``exec``, with pipes, or run on a terminal
  for a tty (the runtime relays it to the container's own pty).
- attach: conmon's attach socket in the bundle (SOCK_SEQPACKET; each packet
  from conmon starts with a byte naming the stream) and its ``winsz`` fifo.
- port-forward: a connection made inside the pod's network namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from crid import private
from crid.containers.context import Containers
from crid.containers.exec_process import exec_process
from crid.containers.running import require_running
from crid.errors import FailedPrecondition, NotFound
from crid.network import dial
from crid.sandbox.context import Sandboxes
from crid.streaming.backend import InputStream, OutputStream, TerminalSize
from crid.streaming.process import first_size, run_process, sizes_from
from crid.streaming.reader import Reader, open_connection
from crid.streaming.writer import Writer

CHUNK = 64 * 1024
# conmon's attach socket: the first byte of each packet it sends names the stream.
ATTACH_STDOUT, ATTACH_STDERR = 2, 3
ATTACH_PACKET = 8192 + 1
RESIZE_EVENT = 1


class ContainerStreams:
    def __init__(self, containers: Containers, sandboxes: Sandboxes,
                 dialer: dial.Dialer) -> None:
        self.containers = containers
        self.sandboxes = sandboxes
        self.dialer = dialer

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool,
                   stdin: InputStream | None, stdout: OutputStream | None,
                   stderr: OutputStream | None,
                   resize: AsyncIterator[TerminalSize] | None) -> int:
        container = require_running(self.containers, container_id, "Exec")
        bundle = Path(container.bundle)
        process = exec_process(bundle, cmd)
        # With a terminal the runtime makes the container's pty and relays it
        # to its own stdio, which is ours (run_process puts it on a pty whose
        # resizes reach the runtime as SIGWINCH), as cri-o runs it.
        process["terminal"] = tty
        if tty and resize is not None:
            # The runtime sizes the container's terminal before the process
            # runs; relaying a resize afterwards would race with its start.
            size, resize = await first_size(resize)
            if size is not None:
                process["consoleSize"] = {"height": size.height, "width": size.width}
                # Our terminal starts at that size too: the runtime copies it.
                resize = sizes_from(size, resize)
        monitor = self.containers.monitor(container.handler)
        with tempfile.TemporaryDirectory(prefix="exec-", dir=bundle) as scratch:
            spec, pid_file = Path(scratch) / "process.json", Path(scratch) / "pid"
            private.write_text(spec, json.dumps(process))  # env: secrets
            command = [monitor.handler.path, "--root", str(monitor.runtime_root), "exec",
                       "--process", str(spec), "--pid-file", str(pid_file), container.id]
            monitor.prime_cgroup_move()
            try:
                return await run_process(command, tty=tty, stdin=stdin, stdout=stdout,
                                         stderr=stderr, resize=resize, relay=True)
            except asyncio.CancelledError:
                # The client left: the process in the container goes too.
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid_file.read_text()), signal.SIGKILL)
                raise

    async def attach(self, container_id: str, *, tty: bool,
                     stdin: InputStream | None, stdout: OutputStream | None,
                     stderr: OutputStream | None,
                     resize: AsyncIterator[TerminalSize] | None) -> None:
        container = require_running(self.containers, container_id, "Attach")
        bundle = Path(container.bundle)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The socket's path may exceed the 108 bytes a unix address holds;
        # through an O_PATH fd of its dir it is short.
        directory = os.open(bundle, os.O_PATH)
        try:
            await asyncio.to_thread(sock.connect, f"/proc/self/fd/{directory}/attach")
        except OSError as exc:
            sock.close()
            raise FailedPrecondition(f"cannot attach to container {container.id}: {exc}") from exc
        finally:
            os.close(directory)
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
                           ) -> tuple[Reader, Writer]:
        pod = self.sandboxes.find(pod_sandbox_id)
        if pod is None:
            raise NotFound(f"pod sandbox {pod_sandbox_id!r} not found")
        if not pod.netns:  # host network: the pod's localhost is the node's
            return await open_connection("127.0.0.1", port)
        return await open_connection(sock=await self.dialer.connect(pod.netns, port))


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


