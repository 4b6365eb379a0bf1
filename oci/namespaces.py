"""Namespaces: config types to clone flags, joining by path, and id maps."""

from __future__ import annotations

import os

from crid.oci import linux as L

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any

    Json = dict[str, Any]


FLAGS = {
    "pid": L.CLONE_NEWPID, "network": L.CLONE_NEWNET, "ipc": L.CLONE_NEWIPC,
    "uts": L.CLONE_NEWUTS, "mount": L.CLONE_NEWNS, "user": L.CLONE_NEWUSER,
    "cgroup": L.CLONE_NEWCGROUP, "time": L.CLONE_NEWTIME,
}
PROC_NAME = {
    "pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
    "user": "user", "cgroup": "cgroup", "time": "time",
}
# user first (it owns the others), mount last among joins so /proc paths still resolve
JOIN_ORDER = ["user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount"]


def new_flags(nss: list[Json], exclude: tuple[str, ...] = ()) -> int:
    f = 0
    for ns in nss:
        if not ns.get("path") and ns["type"] not in exclude:
            f |= FLAGS[ns["type"]]
    return f


def open_paths(nss: list[Json]) -> list[tuple[str, int]]:
    """Open every namespace to join, in join order, before joining any."""
    by_type = {ns["type"]: ns["path"] for ns in nss if ns.get("path")}
    out = []
    for t in JOIN_ORDER:
        if t in by_type:
            out.append((t, os.open(by_type[t], os.O_RDONLY | os.O_CLOEXEC)))
    return out


def join(sc: L.Syscalls, fds: list[tuple[str, int]]) -> None:
    for t, fd in fds:
        sc.setns(fd, FLAGS[t])
        os.close(fd)


def write_id_maps(sc: L.Syscalls, pid: int, linux: Json) -> None:
    """Write ``pid``'s uid and gid maps through the host's procfs, proved one
    (``crid.oci.procfs``): never through a symlink or a mount in the way."""
    def fmt(maps: list[Json]) -> str:
        return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in maps)

    uid = linux.get("uidMappings") or []
    gid = linux.get("gidMappings") or []
    if not (uid or gid):
        return
    from crid.oci import procfs

    proc = procfs.open_root(sc)
    try:
        if uid:
            procfs.write(sc, proc, f"{pid}/uid_map", fmt(uid))
        if gid:
            procfs.write(sc, proc, f"{pid}/gid_map", fmt(gid))
    finally:
        os.close(proc)
