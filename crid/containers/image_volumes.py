"""Image volumes (CRI ``Mount.image``): an image's files, read-only, as a volume.

kubelet pulls the image first and asks for the mount read-only; a writable
one is refused. Each volume is mounted on the host below the container's
bundle, ``image-volumes/<n>``: one layer is bind-mounted read-only, more are
stacked by an overlay with lower dirs only (read-only by construction: the
kernel wants two or more for that), an image without layers is an empty dir.
The spec is then built from a copy of the request in which each image mount
is a read-only bind of that dir, or of ``image_sub_path`` inside it: opened
by fd the way the image sees its own paths (a symlink cannot lead out),
which must exist, and bound by that fd on ``<n>.sub`` beside the volume.
ContainerStatus keeps reporting the request's own mounts, each image stamped
with the ID of the image it resolved to (``image_ref``), which is also how
RemoveImage knows the image is in use.

In a pod with a user namespace the volume is made idmapped here (its
layers under the overlay, or the one layer's bind; ``crid.containers.idmap``)
so the image's root-owned files are the pod's root's; the runtime must not
idmap those binds again (an overlay cannot be, nor an idmapped mount):
``premapped`` names them.

The volumes are unmounted before their bundle is removed, on RemoveContainer,
on a failed create, and for bundles a crash left without a container.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from cri_api.v1 import api_pb2

from crid.api.image_ref import image_ref, set_image_ref
from crid.containers import idmap
from crid.errors import InvalidArgument, NotFound
from crid.oci.linux import MS_BIND, MS_RDONLY, MS_REMOUNT, Syscalls, syscalls
from crid.oci.paths import fd_path, open_in_root

VOLUMES_DIR = "image-volumes"


class Images(Protocol):
    def status(self, reference: str) -> Any: ...  # a record with ``id``, or None
    def lower_dirs(self, image_id: str) -> list[Path]: ...  # top layer first


def uses_images(config: api_pb2.ContainerConfig) -> bool:
    return any(_is_image(m) for m in config.mounts)


def image_ids(config: api_pb2.ContainerConfig) -> set[str]:
    """The IDs of the images a created container's volumes are made of."""
    return {image_ref(m.image) for m in config.mounts if _is_image(m)} - {""}


def mount_all(config: api_pb2.ContainerConfig, images: Images, bundle: Path,
              kernel: Syscalls | None = None, userns: str = "") -> api_pb2.ContainerConfig:
    """Mount the config's image volumes below ``bundle`` and stamp ``config``'s image
    mounts with their image IDs; the config to build the spec from. On an error,
    what was mounted stays: :func:`unmount_all` undoes it."""
    rewritten = api_pb2.ContainerConfig()
    rewritten.CopyFrom(config)
    for index, (asked, mount) in enumerate(zip(config.mounts, rewritten.mounts, strict=True)):
        if not _is_image(mount):
            continue
        where = f"image volume at {mount.container_path}"
        if not mount.readonly:
            raise InvalidArgument(f"{where} must be read-only")
        image = images.status(mount.image.image)
        if image is None:
            raise NotFound(f"{where}: image {mount.image.image!r} not found; pull it first")
        set_image_ref(asked.image, image.id)
        root = bundle / VOLUMES_DIR / str(index)
        _mount_layers(images.lower_dirs(image.id), root, kernel or syscalls(), userns)
        source = _sub_path(root, mount.image_sub_path, where, mount.image.image,
                           kernel or syscalls())
        mount.ClearField("image")
        mount.image_sub_path = ""
        mount.host_path = source
    return rewritten


def unmount_all(bundle: Path, kernel: Syscalls | None = None) -> None:
    """Unmount every image volume of ``bundle`` (none, or gone already, is fine)."""
    idmap.unmount_below(bundle / VOLUMES_DIR, kernel or syscalls())


def premapped(asked: api_pb2.ContainerConfig, rewritten: api_pb2.ContainerConfig) -> set[str]:
    """The host paths ``mount_all`` gave the image mounts of ``asked``."""
    return {m.host_path for a, m in zip(asked.mounts, rewritten.mounts, strict=True)
            if _is_image(a)}


def _is_image(mount: api_pb2.Mount) -> bool:
    return mount.HasField("image") and bool(mount.image.image)


def _mount_layers(lowers: Sequence[Path], root: Path, kernel: Syscalls,
                  userns: str = "") -> None:
    root.mkdir(parents=True)
    if len(lowers) >= 2:
        if userns:
            with idmap.idmapped(kernel, lowers, userns,
                                root.with_name(root.name + ".idmapped")) as mapped:
                _overlay(kernel, mapped, root)
        else:
            _overlay(kernel, lowers, root)
        return
    # One layer, or none (then the volume is empty): a read-only bind.
    source = lowers[0] if lowers else root
    if userns:
        idmap.bind(kernel, source, userns, root)
    else:
        kernel.mount(str(source), str(root), None, MS_BIND)
    kernel.mount(None, str(root), None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _overlay(kernel: Syscalls, lowers: Sequence[Path], root: Path) -> None:
    lowerdir = ":".join(str(p) for p in lowers)
    kernel.mount("overlay", str(root), "overlay", MS_RDONLY, f"lowerdir={lowerdir}")


def _sub_path(root: Path, sub_path: str, where: str, image: str, kernel: Syscalls) -> str:
    """The host path the runtime binds for ``image_sub_path``: the sub path is
    opened inside the volume with openat2(RESOLVE_IN_ROOT) (a symlink in the
    image cannot lead out), and that very inode is bound read-only, by its fd,
    on ``<n>.sub`` beside the volume: the runtime gets a path of ours, never
    one it would resolve through the image again."""
    if not sub_path:
        return str(root)
    if os.path.isabs(sub_path) or ".." in sub_path.split("/"):
        raise InvalidArgument(f"{where}: sub path {sub_path!r} must be relative, without '..'")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(kernel, root_fd, sub_path)
        except (FileNotFoundError, NotADirectoryError):
            raise InvalidArgument(f"{where}: sub path {sub_path!r} does not exist in image "
                                  f"{image}") from None
    finally:
        os.close(root_fd)
    try:
        target = root.with_name(root.name + ".sub")
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            target.mkdir()
        else:
            target.touch(0o444)
        kernel.mount(fd_path(fd), str(target), None, MS_BIND)
        kernel.mount(None, str(target), None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    finally:
        os.close(fd)
    return str(target)
