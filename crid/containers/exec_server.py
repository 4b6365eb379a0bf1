"""ExecSync through the exec fork server (``crid.oci.fork_server``), for the ``crid`` handler.

A probe is an ExecSync; run as ``crid-runtime exec`` each pays an
interpreter start-up. ``ExecServer`` keeps one pre-started runtime process
per daemon and sends it one request per exec: the container's id, the
process, and the three stdio fds (stdin ``/dev/null``, stdout and stderr
pipes whose read ends the daemon keeps). It answers with the process's pid
and a pidfd, then its exit code. Output cap and timeout are the subprocess
path's own (``crid.containers.exec_output.collect``); a timeout kills the
process by its pidfd and waits (bounded) for the server to reap it.

The server is started by ``start`` (without waiting for it: the first exec
does), restarted by the next exec when it died, and stopped by ``stop``. A
call in flight when it dies fails with ``RuntimeFailed`` at once (the
connection ends without an exit code) and its process is killed. When the
server cannot start at all, ``exec_sync`` returns None and the caller runs
the runtime's ``exec`` command instead; that is logged.

Its socket is 0600 in a 0700 dir of the daemon's state: only root reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from crid import errors, logs, private
from crid.containers import exec_output
from crid.containers.exec_output import ExecResult
from crid.containers.monitor import EXEC_REAP_SECONDS, RuntimeFailed
from crid.oci import attach_prime
from crid.oci.fork_server import LENGTH, MAX_ANSWER, MAX_REQUEST, READY
from crid.oci.runtime_spec import Process
from crid.reaper import reap_pidfd

log = logs.get("crid.exec_server")
START_SECONDS = 10.0
RETRY_SECONDS = 30.0  # after a server that would not start, the subprocess path meanwhile
SOCKET = "exec.sock"
DIED = "the exec fork server ended during the exec (killed?)"


class ExecServer:
    """The fork server of one runtime root, and the client side of its socket."""

    def __init__(self, runtime_root: Path, run_dir: Path, python: str = sys.executable) -> None:
        self.runtime_root = runtime_root
        self.run_dir = run_dir
        self.socket_path = run_dir / SOCKET
        self.python = python
        self.process: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Task[bool] | None = None
        self._failed_at: float | None = None

    async def start(self) -> None:
        """Start the server; the first exec waits until it listens."""
        self._starting = asyncio.ensure_future(self._spawn())

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
            self._starting = None
        await self._end()
        self.socket_path.unlink(missing_ok=True)

    async def _end(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def _spawn(self) -> bool:
        """Start a server and wait until it listens; False (logged) when it can't."""
        await self._end()
        private.directory(self.run_dir)
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python, "-I", "-m", "crid.oci.fork_server",
                "--root", str(self.runtime_root), "--socket", str(self.socket_path),
                "--parent", str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE)
        except OSError as exc:
            log.warning("the exec fork server did not start; ExecSync runs the runtime's exec",
                        error=str(exc))
            return False
        self.process = proc
        assert proc.stdout is not None
        try:
            ready = await asyncio.wait_for(proc.stdout.readline(), START_SECONDS)
        except TimeoutError:
            ready = b""
        if ready != READY:
            log.warning("the exec fork server did not start; ExecSync runs the runtime's exec",
                        said=ready.decode(errors="replace"))
            await self._end()
            return False
        log.info("exec fork server started", pid=proc.pid)
        return True

    async def _connect(self) -> socket.socket | None:
        """A connection to a live server, started anew when it is gone; None
        when no server can start (then none is tried for ``RETRY_SECONDS``)."""
        loop = asyncio.get_running_loop()
        if self._failed_at is not None and loop.time() - self._failed_at < RETRY_SECONDS:
            return None
        for _ in range(2):
            if self._starting is None or (self._starting.done() and (
                    self.process is None or self.process.returncode is not None)):
                self._starting = asyncio.ensure_future(self._spawn())
            starting = self._starting
            if not await asyncio.shield(starting):
                if self._starting is starting:
                    self._starting = None
                    self._failed_at = loop.time()
                return None
            self._failed_at = None
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, str(self.socket_path))
                return sock
            except OSError as exc:  # it died: start another (one for all who saw it), once
                sock.close()
                if self._starting is starting:
                    log.warning("the exec fork server is gone; starting another", error=str(exc))
                    self._starting = None
        raise RuntimeFailed("cannot reach the exec fork server, even a new one")

    async def exec_sync(self, container_id: str, process: Process, timeout: float | None,
                        output_limit: int = exec_output.DEFAULT_LIMIT) -> ExecResult | None:
        """Run ``process`` in the container, as ``Monitor.exec_sync`` does; None
        when the fork server can't start (the caller falls back)."""
        body = json.dumps({"container": container_id, "process": process}).encode()
        if len(body) > MAX_REQUEST:
            raise errors.InvalidArgument(f"ExecSync: the process is {len(body)} bytes of JSON "
                                         f"(at most {MAX_REQUEST})")
        attach_prime.start()  # the child's cgroup join: see Monitor.prime_cgroup_move
        sock = await self._connect()
        if sock is None:
            return None
        with contextlib.ExitStack() as closing:
            closing.callback(sock.close)
            stdout, stderr = await self._send(sock, body, closing)
            answers = _Answers(sock)
            pidfd = _Pidfd()
            closing.callback(pidfd.close)

            async def ended() -> int:
                pidfd.fd = await answers.pid()
                code = await answers.exit_code(pidfd)
                pidfd.reaped = True
                return code

            async def stop() -> None:
                if pidfd.reaped:  # what holds the pipes open is its own children
                    return
                with contextlib.suppress(TimeoutError, errors.CridError, _Refused):
                    async with asyncio.timeout(EXEC_REAP_SECONDS):
                        if pidfd.fd is None:
                            pidfd.fd = await answers.pid()
                        pidfd.kill()
                        await answers.exit_code(pidfd)  # reaped: no zombie in the cgroup

            try:
                return await exec_output.collect(
                    stdout, stderr, ended(), limit=output_limit, timeout=timeout, stop=stop,
                    command=process.get("args"))
            except _Refused as refused:
                # What `crid-runtime exec` prints and exits with when it refuses.
                return ExecResult(exit_code=1, stdout=b"",
                                  stderr=f"crid-runtime: {refused}\n".encode())
            except asyncio.CancelledError:
                pidfd.kill()
                raise

    async def _send(self, sock: socket.socket, body: bytes, closing: contextlib.ExitStack
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamReader]:
        """Send the request with the process's stdio; readers of its stdout and stderr."""
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        readers = []
        try:
            for fd in (out_r, err_r):
                pipe = os.fdopen(fd, "rb", buffering=0)  # closed with its transport
                closing.callback(pipe.close)
                reader = asyncio.StreamReader(loop=loop)
                transport, _ = await loop.connect_read_pipe(
                    lambda r=reader: asyncio.StreamReaderProtocol(r, loop=loop),  # type: ignore[misc]
                    pipe)
                closing.callback(transport.close)
                readers.append(reader)
            try:
                # The length carries the fds; a few bytes on a new connection never block.
                socket.send_fds(sock, [len(body).to_bytes(LENGTH, "little")], [null, out_w, err_w])
                await loop.sock_sendall(sock, body)
            except OSError as exc:
                raise RuntimeFailed(f"the exec fork server took no request: {exc}") from None
        finally:
            for fd in (null, out_w, err_w):
                os.close(fd)
        return readers[0], readers[1]


class _Refused(Exception):
    """The runtime refused the exec (its message): the result ``crid-runtime exec`` gives."""


class _Pidfd:
    def __init__(self) -> None:
        self.fd: int | None = None
        self.reaped = False  # the server said it exited and reaped it: nothing to kill

    def kill(self) -> None:
        if self.fd is not None and not self.reaped:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.fd, signal.SIGKILL)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Answers:
    """The server's answers on one connection: length-framed JSON, a pidfd with the pid."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.fds: list[int] = []

    async def pid(self) -> int:
        msg = await self._next()
        if "error" in msg:
            raise _Refused(str(msg["error"]))
        if "pid" not in msg or len(self.fds) != 1:
            raise RuntimeFailed("the exec fork server answered without a pid")
        return self.fds.pop()

    async def exit_code(self, pidfd: _Pidfd) -> int:
        try:
            msg = await self._next()
        except RuntimeFailed:
            await _kill_and_reap(pidfd)
            raise RuntimeFailed(f"{DIED}; its process was killed") from None
        code = msg.get("exit")
        if not isinstance(code, int):
            raise RuntimeFailed(f"the exec fork server said {msg!r}")
        return code

    async def _next(self) -> dict[str, object]:
        loop = asyncio.get_running_loop()
        while True:
            if len(self.buf) >= LENGTH:
                size = int.from_bytes(self.buf[:LENGTH], "little")
                if size > MAX_ANSWER:
                    raise RuntimeFailed(f"the exec fork server's answer is {size} bytes")
                if len(self.buf) >= LENGTH + size:
                    msg = json.loads(self.buf[LENGTH:LENGTH + size])
                    self.buf = self.buf[LENGTH + size:]
                    if not isinstance(msg, dict):
                        raise RuntimeFailed("the exec fork server's answer is not an object")
                    return msg
            readable = loop.create_future()
            loop.add_reader(self.sock.fileno(), _settle, readable)
            try:
                await readable
            finally:
                loop.remove_reader(self.sock.fileno())
            try:
                data, fds, _, _ = socket.recv_fds(self.sock, MAX_ANSWER, 1)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise RuntimeFailed(f"the exec fork server's connection failed: {exc}") from None
            for fd in fds:
                os.set_inheritable(fd, False)
            self.fds += fds
            if not data:
                raise RuntimeFailed(DIED)
            self.buf += data


async def _kill_and_reap(pidfd: _Pidfd) -> None:
    """The server died with the process unreaped: the process is crid's child
    now (crid is a child subreaper); kill it and reap it, bounded."""
    if pidfd.fd is None:
        return
    pidfd.kill()
    loop = asyncio.get_running_loop()
    gone = loop.create_future()
    loop.add_reader(pidfd.fd, _settle, gone)
    try:
        await asyncio.wait_for(gone, EXEC_REAP_SECONDS)
    except TimeoutError:
        return
    finally:
        loop.remove_reader(pidfd.fd)
    # The process may still be the dying server's child for a moment.
    for _ in range(20):
        if reap_pidfd(pidfd.fd):
            return
        await asyncio.sleep(0.05)


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
