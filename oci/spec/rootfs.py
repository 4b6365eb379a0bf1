"""Reading files of a container's rootfs without ever leaving it, and within a cap.

An image is untrusted input: its ``/etc/passwd`` may be a symlink to
``/etc/shadow`` of the host, to ``../../../../etc/passwd`` or to
``/proc/self/root/etc/shadow``; a FIFO or a device that blocks or misbehaves
when opened; or a sparse file of 8 GiB that costs nothing to ship. The file
is opened by ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` from an fd
of the rootfs (``crid.oci.paths``): the kernel interprets every symlink as if
the rootfs were ``/``, and no magic link leads out. It is first opened
``O_PATH`` (which opens nothing: no FIFO wait, no device driver) and read
only when it is a regular file, and then only up to ``limit`` bytes; a larger
one is an error naming the file, never an allocation.
"""

from __future__ import annotations

import errno
import os
import stat

from crid.oci import linux as L
from crid.oci.paths import fd_path, open_in_root, relative

from crid.errors import FailedPrecondition

DEFAULT_LIMIT = 4 << 20  # 4 MiB: ~60,000 passwd lines (crid.image.max_passwd_group_bytes)
LIMIT_KEY = "crid.image.max_passwd_group_bytes"
_CHUNK = 64 * 1024


def read_text(root: str, path: str, limit: int = DEFAULT_LIMIT) -> str | None:
    """Contents of ``path`` inside ``root``; None when it is missing or not a regular file.

    Raises FailedPrecondition when the file is larger than ``limit`` bytes.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            handle = open_in_root(L.syscalls(), root_fd, relative(path),
                                  os.O_PATH | os.O_CLOEXEC)
        except OSError as exc:  # missing, a loop, or a magic link refused
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EXDEV):
                return None
            raise
    finally:
        os.close(root_fd)
    try:
        st = os.fstat(handle)
        if not stat.S_ISREG(st.st_mode):
            return None
        if st.st_size > limit:
            raise _too_big(path, limit)
        # The very inode checked above, now opened for reading.
        fd = os.open(fd_path(handle), os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(handle)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)  # bounded even if the file grew after fstat
    if len(data) > limit:
        raise _too_big(path, limit)
    return data.decode("utf-8", errors="replace")


def _too_big(path: str, limit: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"the image's {path} is larger than the {limit} bytes crid reads from it "
        f"({LIMIT_KEY}): refused")
