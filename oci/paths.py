"""Resolving a path inside a root without ever leaving it (a symlink in the
rootfs pointing at ``/etc`` means ``<rootfs>/etc``, and ``..`` stops at the root),
by file descriptor (openat2): the mount targets the runtime opens and creates,
and the image files the daemon's spec generator reads (``crid.oci.spec.rootfs``).
This module stays import-free for the runtime.
"""

from __future__ import annotations

import os
import stat

from crid.oci import linux as L
from crid.oci.errors import InvalidArgument

_MAX_LINKS = 40  # Linux' own limit on symlinks followed for one path


# -- by file descriptor ------------------------------------------------------
# What the runtime mounts on, and what it mounts from inside a rootfs, is an fd
# opened with openat2(RESOLVE_IN_ROOT): the kernel keeps every step of the walk
# inside the root, so a symlink an image or a running container put anywhere
# on the way (or swaps in while we walk, CVE-2021-30465) cannot lead out. The
# mount is then made on /proc/self/fd/N, the very inode we opened.

IN_ROOT = L.RESOLVE_IN_ROOT | L.RESOLVE_NO_MAGICLINKS
HERE = L.RESOLVE_BENEATH | L.RESOLVE_NO_SYMLINKS | L.RESOLVE_NO_MAGICLINKS
_RETRIES = 8  # a racing rename/mkdir made us look again; past this, give up


def relative(dest: str) -> str:
    """``dest`` cleaned lexically (as runc does) and made relative to the root;
    "" for the root itself."""
    parts: list[str] = []
    for p in dest.split("/"):
        if p == "..":
            if parts:
                parts.pop()
        elif p and p != ".":
            parts.append(p)
    return "/".join(parts)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def where(fd: int) -> str:
    """The path the kernel has for ``fd`` (for checks and messages)."""
    return os.readlink(fd_path(fd))


def open_in_root(sc: L.Syscalls, root_fd: int, rel: str, flags: int = os.O_PATH,
                 resolve: int = 0) -> int:
    return sc.openat2(root_fd, rel or ".", flags, IN_ROOT | resolve)


def make_in_root(sc: L.Syscalls, root_fd: int, rel: str, is_file: bool,
                 resolve: int = 0) -> int:
    """An O_PATH fd of ``rel`` inside the root, made if missing: directories
    (0755) on the way, and the last one a file when ``is_file``. Each missing
    component is made with mkdirat/openat(O_EXCL) in the directory fd we hold
    and reopened without following symlinks; a dangling symlink on the way is
    followed inside the root, as a chrooted ``mkdir -p`` would."""
    try:
        return open_in_root(sc, root_fd, rel, resolve=resolve)
    except FileNotFoundError:
        pass
    parts = [p for p in rel.split("/") if p]
    links = retries = 0
    cur = open_in_root(sc, root_fd, "", os.O_PATH | os.O_DIRECTORY)
    i = 0
    try:
        while i < len(parts):
            try:
                nxt = open_in_root(sc, root_fd, "/".join(parts[:i + 1]), resolve=resolve)
            except FileNotFoundError:
                nxt = -1
            if nxt < 0:
                name = parts[i]
                try:
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    st = None
                if st is not None and stat.S_ISLNK(st.st_mode) and not resolve:
                    # A dangling symlink: go on from where it points, inside the root.
                    links += 1
                    if links > _MAX_LINKS:
                        raise OSError(40, f"too many symlinks resolving {rel}")  # ELOOP
                    target = os.readlink(name, dir_fd=cur)
                    base = [] if target.startswith("/") else parts[:i]
                    parts = base + [p for p in target.split("/") if p] + parts[i + 1:]
                    os.close(cur)
                    cur = open_in_root(sc, root_fd, "", os.O_PATH | os.O_DIRECTORY)
                    i = 0
                    continue
                if st is None:
                    try:
                        if is_file and i == len(parts) - 1:
                            os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY
                                             | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755, dir_fd=cur))
                        else:
                            os.mkdir(name, 0o755, dir_fd=cur)
                    except FileExistsError:
                        pass
                retries += 1
                if retries > _RETRIES + len(parts):
                    raise OSError(2, f"{rel}: cannot be made inside the root (it keeps changing)")
                # What we made (or found) is opened where we made it, never through a symlink.
                nxt = sc.openat2(cur, name, os.O_PATH, HERE)
            os.close(cur)
            cur = nxt
            i += 1
    except BaseException:
        os.close(cur)
        raise
    return cur


def check_inside(root: str, fd: int, what: str) -> str:
    """The path (relative to the root, whose path the kernel gave as ``root``)
    the kernel has for ``fd``; refuse one that is not strictly below the root."""
    root = root.rstrip("/")
    path = where(fd)
    if not path.startswith(root + "/"):
        raise InvalidArgument(f"{what}: resolved to {path}, not below the container's "
                              f"root {root or '/'}: refused")
    return path[len(root) + 1:]
