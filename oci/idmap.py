"""Idmapped mounts: ``mounts`` entries with ``uidMappings``/``gidMappings``.

Making a mount idmapped needs CAP_SYS_ADMIN over the filesystem's owner (the
host's user namespace here), which the container's init no longer has once
it is in its user namespace. So ``create``'s first child, still host root
and before it joins any namespace, clones each such source detached
(open_tree ``OPEN_TREE_CLONE``, recursively for ``rbind``) and idmaps the
clone (mount_setattr ``MOUNT_ATTR_IDMAP``) with a user namespace that has the
mount's mappings; init inherits the fds and attaches them where the mount
goes (move_mount), in its own mount namespace.

The user namespace is the one the container joins by path when the mount's
mappings are the container's own (a pod's, the usual case); otherwise a
throwaway one: a forked child unshares it, we write its maps (as host root,
never newuidmap), open it and end the child. An idmapping is defined by the
mappings alone, so that is equivalent.
"""

from __future__ import annotations

import os

from crid.oci import linux as L
from crid.oci import namespaces as ns
from crid.oci.errors import InvalidArgument
from crid.oci.rootfs import IDMAP_FD as FD_KEY  # where init finds each clone's fd

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    from crid.oci.runtime_spec import IDMapping, Linux, Spec


def _key(maps: list[IDMapping]) -> tuple[tuple[int, int, int], ...]:
    return tuple((int(m["containerID"]), int(m["hostID"]), int(m["size"])) for m in maps)


def prepare(sc: L.Syscalls, cfg: Spec, bundle: str) -> None:
    """Open every idmapped mount's source as a detached idmapped tree, its fd
    stored on the mount under ``FD_KEY``. Run as host root, before joining."""
    linux: Linux = cfg.get("linux") or {}
    joined = next((n["path"] for n in linux.get("namespaces") or []
                   if n.get("type") == "user" and n.get("path")), None)
    own = (_key(linux.get("uidMappings") or []), _key(linux.get("gidMappings") or []))
    userns: dict[tuple[Any, Any], int] = {}
    try:
        for m in cfg.get("mounts") or []:
            uid, gid = m.get("uidMappings") or [], m.get("gidMappings") or []
            if not (uid or gid):
                continue
            opts = list(m.get("options") or [])
            if not (m.get("type") == "bind" or "bind" in opts or "rbind" in opts):
                raise InvalidArgument(f"config.json: mount {m.get('destination')}: uidMappings "
                                      "and gidMappings are only for bind mounts")
            if not (uid and gid):
                raise InvalidArgument(f"config.json: mount {m.get('destination')}: an idmapped "
                                      "mount needs both uidMappings and gidMappings")
            key = (_key(uid), _key(gid))
            if key not in userns:
                userns[key] = os.open(joined, os.O_RDONLY | os.O_CLOEXEC) \
                    if joined and key == own else _throwaway(sc, uid, gid)
            src = m.get("source") or ""
            if not os.path.isabs(src):
                src = os.path.join(bundle, src)
            recursive = "rbind" in opts
            tree = sc.open_tree(L.AT_FDCWD, src, L.OPEN_TREE_CLONE | L.OPEN_TREE_CLOEXEC
                                | (L.AT_RECURSIVE if recursive else 0))
            m[FD_KEY] = tree
            sc.idmap(tree, userns[key], recursive)
    finally:
        for fd in userns.values():
            os.close(fd)


def _throwaway(sc: L.Syscalls, uid: list[IDMapping], gid: list[IDMapping]) -> int:
    """A user namespace with these mappings, as an fd."""
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.close(ready_r)
            sc.unshare(L.CLONE_NEWUSER)
            os.write(ready_w, b"1")
            os.read(r, 1)  # until the parent is done with us (or gone)
        finally:
            os._exit(0)
    os.close(r)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) != b"1":
            raise InvalidArgument("cannot make a user namespace for an idmapped mount")
        ns.write_id_maps(sc, pid, {"uidMappings": uid, "gidMappings": gid})
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w)
        os.close(ready_r)
        os.waitpid(pid, 0)
