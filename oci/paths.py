"""Resolving a path inside a root without ever leaving it (a symlink in the
rootfs pointing at ``/etc`` means ``<rootfs>/etc``, and ``..`` stops at the root),
and creating mount targets that way.

The daemon's spec generator reads image files through the same walk
(``crid.oci.spec.rootfs``); this module stays import-free for the runtime.
"""

from __future__ import annotations

import os
import stat

from crid.oci.errors import InvalidArgument

_MAX_LINKS = 40  # Linux' own limit on symlinks followed for one path


def secure_join(root: str, unsafe: str) -> str:
    """``root`` joined with ``unsafe``, with symlinks resolved as if ``root`` were ``/``."""
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        full = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise InvalidArgument(f"too many symlinks resolving {unsafe} in {root}")
        target = os.readlink(full)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p] + parts
    return os.path.join(root, *resolved) if resolved else root


def ensure_target(root: str, dest: str, is_file: bool) -> str:
    """Create (if missing) the mount target for ``dest`` inside ``root``; return its path."""
    if is_file:
        # Create each missing parent through secure_join so no component escapes.
        _mkdirs(root, os.path.dirname(dest))
        path = secure_join(root, dest)
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, 0o755))
    else:
        _mkdirs(root, dest)
    return secure_join(root, dest)


def _mkdirs(root: str, dest: str) -> None:
    cur = "/"
    for part in [p for p in dest.split("/") if p]:
        cur = os.path.join(cur, part)
        # The resolved path has no symlinks left, and lies inside root.
        os.makedirs(secure_join(root, cur), 0o755, exist_ok=True)
