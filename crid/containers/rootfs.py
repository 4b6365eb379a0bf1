"""A container's root filesystem: an overlay of the image's layers.

The image's layer dirs are the read-only lower dirs (shared by every
container of the image); each container gets its own upper and work dirs
under the root dir (the writable layer must survive a daemon restart and
can be large, so it is not on tmpfs), mounted at ``<bundle>/rootfs``.

In a pod with a user namespace the lower dirs are idmapped mounts (no layer
is copied or chowned, so such a pod starts as fast as any): each layer is
cloned detached (open_tree), idmapped with the pod's user namespace
(mount_setattr ``MOUNT_ATTR_IDMAP``), attached for the time of the overlay
mount under ``<layer dir>/idmapped/<n>`` and detached again (the overlay
keeps its own reference). Overlayfs refuses to be idmapped itself, and an
idmapped upper dir makes it read-only, so the upper dir stays plain and is
owned by the pod's root (one chown of an empty dir): files the container
writes land there owned by their host ids.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from crid.containers import idmap, image_volumes
from crid.oci.linux import MNT_DETACH, Syscalls

EINVAL = 22
IDMAPPED = "idmapped"  # below a layer dir: its lowers' idmapped mounts, while it is mounted


def mount(lowers: Sequence[Path], layer_dir: Path, target: Path,
          sys: Syscalls | None = None, userns: str = "", root_id: int = 0) -> None:
    """Mount the overlay; ``lowers`` top layer first. With ``userns`` (a pinned
    user namespace whose root is host id ``root_id``), its lowers are idmapped."""
    upper, work, empty = layer_dir / "upper", layer_dir / "work", layer_dir / "empty"
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    if not lowers:  # an image without layers: overlay still wants a lower dir
        empty.mkdir(exist_ok=True)
        lowers = [empty]
    kernel = sys or Syscalls()
    if not userns:
        _overlay(kernel, lowers, upper, work, target)
        return
    os.chown(upper, root_id, root_id)
    with idmap.idmapped(kernel, lowers, userns, layer_dir / IDMAPPED) as mapped:
        _overlay(kernel, mapped, upper, work, target)


def _overlay(kernel: Syscalls, lowers: Sequence[Path], upper: Path, work: Path,
             target: Path) -> None:
    options = (f"lowerdir={':'.join(str(p) for p in lowers)},"
               f"upperdir={upper},workdir={work}")
    kernel.mount("overlay", str(target), "overlay", 0, options)


def unmount(target: Path, sys: Syscalls | None = None) -> None:
    """Detach the overlay; not mounted (any more) is fine."""
    if not os.path.ismount(target):
        return
    try:
        (sys or Syscalls()).umount2(str(target), MNT_DETACH)
    except OSError as exc:
        if exc.errno != EINVAL:
            raise


def remove_bundle(bundle: Path) -> None:
    """The bundle dir, once what is mounted in it (the rootfs, image volumes) is
    detached: removing it first would reach into the mounts."""
    unmount(bundle / "rootfs")
    image_volumes.unmount_all(bundle)
    shutil.rmtree(bundle, ignore_errors=True)


def remove_layer(layer_dir: Path, sys: Syscalls | None = None) -> None:
    """The writable layer, once idmapped lowers a crash left attached below it
    are detached (removing through them would delete the image's files)."""
    idmap.unmount_below(layer_dir / IDMAPPED, sys or Syscalls())
    shutil.rmtree(layer_dir, ignore_errors=True)
