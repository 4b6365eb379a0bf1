"""A container's root filesystem: an overlay of the image's layers.

The image's layer dirs are the read-only lower dirs (shared by every
container of the image); each container gets its own upper and work dirs
under the root dir (the writable layer must survive a daemon restart and
can be large, so it is not on tmpfs), mounted at ``<bundle>/rootfs``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from crid.containers import image_volumes
from crid.oci.linux import MNT_DETACH, Syscalls

EINVAL = 22


def mount(lowers: Sequence[Path], layer_dir: Path, target: Path,
          sys: Syscalls | None = None) -> None:
    """Mount the overlay; ``lowers`` top layer first."""
    upper, work, empty = layer_dir / "upper", layer_dir / "work", layer_dir / "empty"
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    if not lowers:  # an image without layers: overlay still wants a lower dir
        empty.mkdir(exist_ok=True)
        lowers = [empty]
    options = (f"lowerdir={':'.join(str(p) for p in lowers)},"
               f"upperdir={upper},workdir={work}")
    (sys or Syscalls()).mount("overlay", str(target), "overlay", 0, options)


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


def remove_layer(layer_dir: Path) -> None:
    shutil.rmtree(layer_dir, ignore_errors=True)
