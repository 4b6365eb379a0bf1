"""Reading files of a container's rootfs without ever leaving it.

An image is untrusted input: its ``/etc/passwd`` may be a symlink to
``/etc/shadow`` of the host, or to ``../../../../etc/passwd``. Paths are
resolved here component by component, with every symlink interpreted as if
the rootfs were ``/`` (absolute targets restart at the rootfs, ``..`` stops at
it), the way a process chrooted into the rootfs would see them.
"""

from __future__ import annotations

import errno
import os
import stat

from crid.oci.errors import InvalidArgument
from crid.oci.paths import secure_join


def scoped_path(root: str, path: str) -> str:
    """Host path of ``path`` as seen from inside ``root``; always under ``root``.

    Missing components are kept as they are (the result then does not exist),
    so a caller can still tell "no such file" from "outside the rootfs". The
    walk is the runtime's own (``crid.oci.paths``, kept import-free for it).
    """
    try:
        return secure_join(os.path.abspath(root), path)
    except InvalidArgument as exc:
        raise OSError(errno.ELOOP, "too many levels of symbolic links", path) from exc


def read_text(root: str, path: str) -> str | None:
    """Contents of ``path`` inside ``root``, or None when it is not a regular file.

    The final open uses O_NOFOLLOW so a symlink swapped in after resolving
    is refused rather than followed.
    """
    try:
        fd = os.open(scoped_path(root, path),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:  # missing, a symlink, or a symlink loop
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read().decode("utf-8", errors="replace")
