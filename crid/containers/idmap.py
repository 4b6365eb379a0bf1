"""Idmapped copies of host dirs, for the daemon's own mounts in a pod with a
user namespace (its rootfs's lower layers, its image volumes).

Each dir is cloned detached (open_tree ``OPEN_TREE_CLONE``), the clone
idmapped with the pod's pinned user namespace (mount_setattr
``MOUNT_ATTR_IDMAP``: the host's root-owned files are the pod's root's),
and attached below a scratch dir for as long as the caller stacks an
overlay on them; then detached (the overlay holds its own reference) and
the scratch dir removed. Overlayfs cannot be idmapped itself, but its
layers can.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

from crid.oci import linux as L
from crid.oci.linux import MNT_DETACH, Syscalls
from crid.oci.spec.mounts import parse_mountinfo


@contextlib.contextmanager
def idmapped(kernel: Syscalls, dirs: Sequence[Path], userns: str,
             scratch: Path) -> Iterator[list[Path]]:
    """``dirs`` as idmapped mounts of the user namespace pinned at ``userns``,
    attached below ``scratch`` while the caller uses them (to stack an overlay
    on), detached and removed after."""
    scratch.mkdir(mode=0o700, exist_ok=True)
    attached: list[Path] = []
    ns_fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for index, directory in enumerate(dirs):
            point = scratch / str(index)
            point.mkdir(exist_ok=True)
            _attach(kernel, directory, ns_fd, point)
            attached.append(point)
        yield attached
    finally:
        os.close(ns_fd)
        for point in attached:
            kernel.umount2(str(point), MNT_DETACH)
        shutil.rmtree(scratch, ignore_errors=True)


def unmount_below(directory: Path, kernel: Syscalls) -> None:
    """Detach every mount below ``directory``, deepest first (none, or no such
    dir, is fine): what a crash left attached must never be walked into by a
    removal (below a scratch dir are the image's own layers)."""
    if not directory.is_dir():  # nothing made: no need to read the mount table
        return
    below = str(directory.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [p.mount_point for p in parse_mountinfo(f.read())]
    for point in sorted((p for p in points if p.startswith(below)), key=len, reverse=True):
        kernel.umount2(point, MNT_DETACH)


def bind(kernel: Syscalls, directory: Path, userns: str, target: Path) -> None:
    """Attach an idmapped clone of ``directory`` on ``target``."""
    ns_fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _attach(kernel, directory, ns_fd, target)
    finally:
        os.close(ns_fd)


def _attach(kernel: Syscalls, directory: Path, ns_fd: int, target: Path) -> None:
    tree = kernel.open_tree(L.AT_FDCWD, str(directory), L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC)
    try:
        kernel.idmap(tree, ns_fd, recursive=False)
        kernel.move_mount(tree, str(target))
    finally:
        os.close(tree)
