"""Terminals: make a pty inside the container and hand its master to the caller's
``--console-socket`` with SCM_RIGHTS (as runc does: the message text is the
pty's name), then make the slave the process's controlling terminal and stdio.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios


def connect(path: str) -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s.detach()


def setup_pty(sock_fd: int, size: dict[str, int] | None = None) -> None:
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
