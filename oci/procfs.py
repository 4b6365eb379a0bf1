"""Reading and writing procfs files from the runtime through a procfs proved to be one.

A container's /proc is where the runtime writes sysctls, and the host's is
where it writes a container's ``oom_score_adj`` and id maps. Anything that
redirects those writes (a bind mount over ``/proc/sys/...`` or
``/proc/<pid>/...``, a symlink an image put in the way, a /proc that is not a
procfs at all) turns the runtime's root privileges into a write of the
container's choosing on the host (runc's CVE-2025-52565 and CVE-2025-52881).
So every such file is opened from an fd on the root of a procfs (``f_type``
PROC_SUPER_MAGIC, inode 1) with openat2 ``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
| RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV``: no symlink followed, no mount
crossed, and the file itself is checked to be on procfs before a byte is
written.
"""

from __future__ import annotations

import os

from crid.oci import linux as L
from crid.oci.errors import InvalidArgument

_BELOW = (L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS | L.RESOLVE_NO_MAGICLINKS
          | L.RESOLVE_NO_XDEV)


def open_root(sc: L.Syscalls, path: str = "/proc") -> int:
    """An O_PATH fd of the procfs mounted at ``path`` (no symlink followed to
    it); refused unless it is the root of a procfs."""
    fd = sc.openat2(L.AT_FDCWD, path, os.O_PATH | os.O_DIRECTORY,
                    L.RESOLVE_NO_SYMLINKS | L.RESOLVE_NO_MAGICLINKS)
    return _on_procfs(sc, fd, f"{path} is not the root of a procfs", root=True)


def open_file(sc: L.Syscalls, proc_fd: int, rel: str, flags: int) -> int:
    """``rel`` below the procfs ``proc_fd``, on that same mount, and on procfs."""
    fd = sc.openat2(proc_fd, rel, flags, _BELOW)
    return _on_procfs(sc, fd, f"/proc/{rel} is not on procfs", root=False)


def _on_procfs(sc: L.Syscalls, fd: int, problem: str, *, root: bool) -> int:
    """``fd`` when it is on a procfs (with ``root``, that procfs's root); else
    it is closed and refused with ``problem``."""
    try:
        if sc.fstatfs_type(fd) != L.PROC_SUPER_MAGIC or (
                root and os.fstat(fd).st_ino != L.PROC_ROOT_INO):
            raise InvalidArgument(f"{problem}: refusing to use it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def write(sc: L.Syscalls, proc_fd: int, rel: str, data: str) -> None:
    fd = open_file(sc, proc_fd, rel, os.O_WRONLY)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)


def read(sc: L.Syscalls, proc_fd: int, rel: str) -> str:
    fd = open_file(sc, proc_fd, rel, os.O_RDONLY)
    try:
        return os.read(fd, 65536).decode(errors="replace")
    finally:
        os.close(fd)


def write_sysctl(sc: L.Syscalls, proc_fd: int, key: str, value: str) -> None:
    """Write one sysctl (``net.ipv4.ip_forward``) below ``proc_fd``'s ``sys``:
    a key cannot name anything outside /proc/sys."""
    sys_fd = open_file(sc, proc_fd, "sys", os.O_PATH | os.O_DIRECTORY)
    try:
        write(sc, sys_fd, key.replace(".", "/"), value)
    finally:
        os.close(sys_fd)
