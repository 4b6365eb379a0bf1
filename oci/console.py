"""Terminals: make a pty inside the container and hand its master to the caller's
``--console-socket`` with SCM_RIGHTS (as runc does: the message text is the
pty's name), then make the slave the process's controlling terminal and stdio.

Without a console socket (``exec --tty`` in the foreground), the runtime is
the socket's other end: it receives the master and relays it to its own
stdio until the process exits, copying its terminal's size on SIGWINCH.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios
from collections.abc import Callable

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import ConsoleSize


def connect(path: str) -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s.detach()


def setup_pty(sock_fd: int, size: ConsoleSize | None = None) -> None:
    """Open a pty (in the current root's /dev/ptmx), send the master, adopt the slave."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    if size and size.get("height") and size.get("width"):
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", size["height"], size["width"], 0, 0))
    s = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(s, [name.encode()], [master])
    finally:
        s.close()
        os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def receive_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 1024, 1)
    sock.close()
    if not fds:
        raise OSError("the container sent no terminal")
    return fds[0]


def copy_size(source: int, target: int) -> None:
    """Give ``target`` the window size of ``source`` (when ``source`` is a terminal)."""
    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def relay(master: int, pid: int, wait: Callable[[int], int]) -> int:
    """Copy stdin to the pty and the pty to stdout until ``pid`` exits; its exit code."""
    import select

    exited = os.pidfd_open(pid)
    sources = [0, master, exited]
    while True:
        ready, _, _ = select.select(sources, [], [])
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                _write_all(master, data)
            else:
                sources.remove(0)  # the caller closed its input; the pty stays
        if master in ready and not _pump(master):
            sources.remove(master)
        if exited in ready:
            while master in sources and _pump(master, block=False):
                pass
            break
    return wait(pid)


def _pump(master: int, block: bool = True) -> bool:
    """Copy one read from the pty to stdout; False at its end (EIO) or, unblocked, when dry."""
    if not block:
        import select

        if not select.select([master], [], [], 0)[0]:
            return False
    try:
        data = os.read(master, 65536)
    except OSError:  # EIO: no process holds the slave any more
        return False
    if not data:
        return False
    _write_all(1, data)
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
