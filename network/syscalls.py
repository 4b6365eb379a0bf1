"""The few Linux syscalls pod networking needs, through one ctypes seam.

``Syscalls`` wraps unshare, setns, mount, umount2 and sethostname with errno
turned into ``OSError``; code takes an instance so unit tests can record the
calls instead of making them. Python 3.11 has no ``os.unshare``/``os.setns``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MS_BIND = 0x1000
MNT_DETACH = 0x2

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def fs_magic(path: str) -> int | None:
    """The filesystem type (``f_type`` of statfs) of ``path``; None when it cannot be read."""
    buf = ctypes.create_string_buffer(120)  # struct statfs; f_type is its first field
    if _libc.statfs(path.encode(), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value)


class Syscalls:
    """The real calls. Namespace calls act on the calling *thread* only."""

    def unshare(self, flags: int) -> None:
        _check(_libc.unshare(ctypes.c_int(flags)), "unshare")

    def setns(self, fd: int, nstype: int = 0) -> None:
        _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")

    def mount(self, source: str, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        _check(
            _libc.mount(
                source.encode(), target.encode(),
                fstype.encode() if fstype else None,
                ctypes.c_ulong(flags),
                data.encode() if data else None,
            ),
            f"mount {source} on {target}",
        )

    def umount(self, target: str, flags: int = MNT_DETACH) -> None:
        _check(_libc.umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")

    def gettid(self) -> int:
        return int(_libc.gettid())
