"""The few facts about the node the spec builder reads, behind one seam.

Unit tests replace :class:`Host` with a fake; everything else in the package
is pure computation over requests and files in a rootfs.
"""

from __future__ import annotations

import os
import resource
import stat
from dataclasses import dataclass

from crid.oci.cgroups import layout

# Directories and nodes of the host's /dev that are not devices to hand to a
# privileged container: the runtime mounts its own pts, shm and mqueue.
_SKIP_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
_SKIP_NODES = frozenset({"/dev/console"})


@dataclass(frozen=True)
class DeviceNode:
    path: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    mode: int  # permission bits
    uid: int
    gid: int


def device_node(path: str, st: os.stat_result) -> DeviceNode | None:
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return DeviceNode(
        path, kind, os.major(st.st_rdev), os.minor(st.st_rdev), stat.S_IMODE(st.st_mode),
        st.st_uid, st.st_gid,
    )


class Host:
    """The real node."""

    def mountinfo(self) -> str:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return f.read()

    def realpath(self, path: str) -> str:
        return os.path.realpath(path)

    def ensure_dir(self, path: str) -> None:
        """Create a missing host path of a mount, as kubelet expects of runtimes."""
        if not os.path.lexists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)

    def device_nodes(self, path: str) -> list[DeviceNode]:
        """The device at ``path``, or every device below it when it is a directory.

        Raises FileNotFoundError when ``path`` does not exist.
        """
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            node = device_node(path, st)
            return [node] if node else []
        found = []
        for parent, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
            for name in sorted(files):
                full = os.path.join(parent, name)
                if full in _SKIP_NODES:
                    continue
                try:
                    node = device_node(full, os.lstat(full))
                except FileNotFoundError:
                    continue
                if node:
                    found.append(node)
        return found

    def oom_score_adj(self) -> int:
        with open("/proc/self/oom_score_adj", encoding="ascii") as f:
            return int(f.read())

    def nofile_limit(self) -> int:
        """The runtime's own hard RLIMIT_NOFILE: what a container may be given
        without CAP_SYS_RESOURCE (which a runtime in a container may lack)."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY:
            with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
                return int(f.read())
        return hard

    def capability_mask(self) -> int:
        """The runtime's own effective capabilities (``CapEff``), as a bit mask."""
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
        return 0

    def swap_controller(self) -> bool:
        """Whether swap limits can be set (see :func:`layout.can_limit_swap`)."""
        return layout.can_limit_swap()

    def hugetlb_controller(self) -> bool:
        """Whether hugepage limits can be set (see :func:`layout.can_limit_hugetlb`)."""
        return layout.can_limit_hugetlb()

    def cgroup2(self) -> bool:
        """True on a unified (cgroup v2 only) node."""
        return layout.is_v2()
