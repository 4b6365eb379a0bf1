"""Which cgroup layout this node has, decided in one place, and what it offers.

Three layouts exist: **v1** (one tree per controller, each mounted under
``/sys/fs/cgroup/<controllers>``), **hybrid** (v1, plus a cgroup2 tree with no
controllers, usually at ``/sys/fs/cgroup/unified``, where the v2 device
program goes) and **v2** (one tree at ``/sys/fs/cgroup``). A cgroup lives in
every *hierarchy* of the layout, each named by a key: the controllers of a v1
mount (``"memory"``, ``"cpu,cpuacct"``, ``"name=systemd"``) or ``""`` for a
cgroup2 tree. :func:`hierarchies` gives ``{key: mount point}``; everything
that places, reads or sizes cgroups (crid-runtime, the daemon's pod cgroups
and stats readers, the spec builder) asks here instead of looking itself.

Imports only ``os``: crid-runtime starts for every container.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
V1, HYBRID, V2 = "v1", "hybrid", "v2"

# mount options of a v1 hierarchy that are not the names of its controllers
_NOT_CONTROLLERS = ("rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode")


def is_v2(root: str | os.PathLike[str] = CGROUP_ROOT) -> bool:
    """True when ``root`` is a cgroup2 tree: a unified (v2 only) node at the default."""
    return os.path.exists(os.path.join(root, "cgroup.controllers"))


def mode(root: str = CGROUP_ROOT, mountinfo: str | None = None) -> str:
    """:data:`V1`, :data:`HYBRID` or :data:`V2`."""
    if is_v2(root):
        return V2
    return HYBRID if "" in mounted(mountinfo) else V1


def hierarchies(root: str = CGROUP_ROOT) -> dict[str, str]:
    """``{key: mount point}`` of every hierarchy a cgroup lives in on this node."""
    return {"": root} if is_v2(root) else mounted()


def mounted(mountinfo: str | None = None) -> dict[str, str]:
    """``{key: mount point}`` of the cgroup mounts in ``mountinfo`` (ours when None):
    each v1 hierarchy by its controllers, and a cgroup2 tree beside them as ``""``."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    out: dict[str, str] = {}
    for line in mountinfo.splitlines():
        parts = line.split()
        sep = parts.index("-")
        if parts[sep + 1] == "cgroup2":
            out.setdefault("", parts[4])
            continue
        if parts[sep + 1] != "cgroup":
            continue
        opts = [o for o in parts[sep + 3].split(",")
                if o not in _NOT_CONTROLLERS and not o.startswith("release_agent")]
        out[",".join(opts)] = parts[4]
    return out


def own_paths(proc_self_cgroup: str | None = None) -> dict[str, str]:
    """Our own cgroup in each hierarchy, ``{key: path}`` from /proc/self/cgroup."""
    if proc_self_cgroup is None:
        with open("/proc/self/cgroup") as f:
            proc_self_cgroup = f.read()
    out: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        _, ctl, path = line.split(":", 2)
        out[ctl] = path
    return out


def controllers_of(key: str) -> list[str]:
    """The controllers of a hierarchy key (none for ``""`` or ``name=...`` alone)."""
    return [c for c in key.split(",") if c]


def can_limit_swap(root: str = CGROUP_ROOT) -> bool:
    """Whether swap limits can be set: memsw files on v1 (kernels boot without
    swap accounting often), memory.swap.max in our own cgroup on v2."""
    if not is_v2(root):
        return os.path.exists(os.path.join(root, "memory", "memory.memsw.limit_in_bytes"))
    own = own_paths().get("")
    return own is not None and os.path.exists(
        os.path.join(root, own.strip().lstrip("/"), "memory.swap.max"))


def can_limit_hugetlb(root: str = CGROUP_ROOT) -> bool:
    """Whether hugepage limits can be set: a hugetlb hierarchy on v1, the
    controller offered at the root on v2."""
    if not is_v2(root):
        return os.path.isdir(os.path.join(root, "hugetlb"))
    with open(os.path.join(root, "cgroup.controllers"), encoding="ascii") as f:
        return "hugetlb" in f.read().split()
