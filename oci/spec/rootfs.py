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

# Linux' own limit on symlinks followed while resolving one path.
_MAX_SYMLINKS = 40


def scoped_path(root: str, path: str) -> str:
    """Host path of ``path`` as seen from inside ``root``; always under ``root``.

    Missing components are kept as they are (the result then does not exist),
    so a caller can still tell "no such file" from "outside the rootfs".
    """
    root = os.path.abspath(root)
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([c for c in target.split("/") if c]))
    return os.path.join(root, *resolved)


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
