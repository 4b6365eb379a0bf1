"""``mounts`` of the spec: defaults, the pod's files, and the request's mounts.

Propagation maps as containerd does (PRIVATE → rprivate, HOST_TO_CONTAINER
→ rslave, BIDIRECTIONAL → rshared) and is checked against the host: a
bidirectional mount needs a shared source mount, a host-to-container one a
shared or slave one, or the propagation would silently not happen. Such
mounts also make the rootfs rslave/rshared (``linux.rootfsPropagation``) so
events can travel through it. Mounts are ordered parents first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cri_api.v1 import api_pb2
from crid.oci.rootfs import check_proc_mount
from crid.oci.runtime_spec import IDMapping, Mount
from crid.oci.spec.facts import PodFacts
from crid.oci.spec.host import Host

from crid.errors import FailedPrecondition, InvalidArgument, Unimplemented

_NOSUID_NOEXEC_NODEV = ["nosuid", "noexec", "nodev"]


def default_mounts(privileged: bool) -> list[Mount]:
    """What every container gets; sysfs and cgroupfs are writable only when privileged."""
    access = "rw" if privileged else "ro"
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": list(_NOSUID_NOEXEC_NODEV)},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": list(_NOSUID_NOEXEC_NODEV)},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*_NOSUID_NOEXEC_NODEV, "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*_NOSUID_NOEXEC_NODEV, access]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*_NOSUID_NOEXEC_NODEV, "relatime", access]},
    ]


def pod_mounts(pod: PodFacts, readonly_rootfs: bool,
               idmap: list[IDMapping] | None = None) -> list[Mount]:
    """The pod's resolv.conf, hosts, hostname (read-only with a read-only rootfs) and shm;
    with ``idmap`` (the pod's user namespace mapping) idmapped, so the host's
    root-owned files are root's inside."""
    access = "ro" if readonly_rootfs else "rw"
    found: list[Mount] = []
    for source, destination in (
        (pod.resolv_conf_path, "/etc/resolv.conf"),
        (pod.hosts_path, "/etc/hosts"),
        (pod.hostname_path, "/etc/hostname"),
    ):
        if source:
            found.append(_bind(source, destination, ["rbind", "rprivate", access], idmap))
    if pod.shm_path:
        found.append(_bind(pod.shm_path, "/dev/shm", ["rbind", "rprivate", "rw",
                                                      *_NOSUID_NOEXEC_NODEV], idmap))
    return found


def _bind(source: str, destination: str, options: list[str],
          idmap: list[IDMapping] | None = None,
          gid_idmap: list[IDMapping] | None = None) -> Mount:
    found: Mount = {"destination": destination, "type": "bind", "source": source,
                    "options": options}
    if idmap:
        found["uidMappings"] = idmap
        found["gidMappings"] = gid_idmap or list(idmap)
    return found


def _mappings(found: list[api_pb2.IDMapping]) -> list[IDMapping]:
    return [{"containerID": m.container_id, "hostID": m.host_id, "size": m.length}
            for m in found]


@dataclass(frozen=True)
class MountPoint:
    mount_point: str
    shared: bool
    slave: bool


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountPoint]:
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 7 or "-" not in fields[6:]:
            continue
        optional = fields[6:fields.index("-", 6)]
        points.append(MountPoint(
            _unescape(fields[4]),
            shared=any(o.startswith("shared:") for o in optional),
            slave=any(o.startswith("master:") for o in optional),
        ))
    return points


def mount_of(path: str, points: list[MountPoint]) -> MountPoint:
    """The mount ``path`` lives on: the last-mounted longest matching prefix."""
    best: MountPoint | None = None
    for point in points:
        mp = point.mount_point
        if (path == mp or path.startswith(mp.rstrip("/") + "/")) and (
            best is None or len(mp) >= len(best.mount_point)
        ):
            best = point
    if best is None:
        raise FailedPrecondition(f"no mount found for {path} in /proc/self/mountinfo")
    return best


_PROPAGATION = {
    api_pb2.MountPropagation.PROPAGATION_PRIVATE: "rprivate",
    api_pb2.MountPropagation.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    api_pb2.MountPropagation.PROPAGATION_BIDIRECTIONAL: "rshared",
}


def _check_propagation(source: str, propagation: str, host: Host,
                       cache: list[list[MountPoint]]) -> None:
    if propagation == "rprivate":
        return
    if not cache:
        cache.append(parse_mountinfo(host.mountinfo()))
    point = mount_of(source, cache[0])
    if propagation == "rshared" and not point.shared:
        raise FailedPrecondition(
            f"path {source!r} is mounted on {point.mount_point!r} but it is not a shared "
            "mount: bidirectional propagation needs `mount --make-shared` on it"
        )
    if propagation == "rslave" and not (point.shared or point.slave):
        raise FailedPrecondition(
            f"path {source!r} is mounted on {point.mount_point!r} but it is not a shared "
            "or slave mount: host-to-container propagation needs one"
        )


def _check_proc(destination: str, source: str) -> None:
    """runc's rule (checkProcMount), refused here with a clear message before
    any bundle exists: nothing is mounted below /proc but the few files lxcfs
    emulates, and on /proc itself only a procfs. A mount there would redirect
    what the runtime writes (sysctls) and what the kernel's readers find."""
    try:
        check_proc_mount(destination.lstrip("/"), "bind", True, source)
    except InvalidArgument as e:
        raise InvalidArgument(f"mount container path {destination!r}: {e.message}") from None


def cri_mounts(mounts: list[api_pb2.Mount], host: Host,
               idmap: list[IDMapping] | None = None,
               premapped: frozenset[str] = frozenset()) -> tuple[list[Mount], str]:
    """The request's mounts, and the rootfs propagation they need ("" for default).
    A mount's own ``uidMappings``/``gidMappings`` make it idmapped; in a pod with
    a user namespace every mount is, with the pod's mapping otherwise (as
    containerd and cri-o do: kubelet relies on it for its volumes)."""
    found: list[Mount] = []
    rootfs_propagation = ""
    cache: list[list[MountPoint]] = []
    for m in mounts:
        destination = m.container_path
        if not destination.startswith("/"):
            raise InvalidArgument(f"mount container path {destination!r} is not absolute")
        if m.HasField("image") and m.image.image:
            raise Unimplemented(f"image volume for {destination} is not supported")
        if bool(m.uidMappings) != bool(m.gidMappings):
            raise InvalidArgument(f"id-mapped mount for {destination} needs both uid and gid "
                                  "mappings")
        if not m.host_path.startswith("/"):
            raise InvalidArgument(f"mount host path {m.host_path!r} for {destination} is "
                                  "not absolute")
        propagation = _PROPAGATION.get(m.propagation)
        if propagation is None:
            raise InvalidArgument(f"mount propagation {m.propagation} for {destination} is "
                                  "unknown")
        source = host.realpath(m.host_path)
        _check_proc(os.path.normpath(destination), source)
        _check_propagation(source, propagation, host, cache)
        options = ["rbind", propagation, "ro" if m.readonly else "rw"]
        if m.recursive_read_only:
            if not m.readonly:
                raise InvalidArgument(f"recursive read-only mount {destination} must also be "
                                      "read-only")
            if propagation != "rprivate":
                raise InvalidArgument(f"recursive read-only mount {destination} needs "
                                      "private propagation")
            options.append("rro")
        if propagation == "rshared":
            rootfs_propagation = "rshared"
        elif propagation == "rslave" and rootfs_propagation != "rshared":
            rootfs_propagation = "rslave"
        own = _mappings(list(m.uidMappings))
        if m.host_path in premapped:  # an image volume the daemon idmapped itself
            own, idmap_here = [], None
        else:
            idmap_here = idmap
        found.append(_bind(source, os.path.normpath(destination), options, own or idmap_here,
                           _mappings(list(m.gidMappings)) or None))
    return found, rootfs_propagation


def _depth(mount: Mount) -> int:
    destination = os.path.normpath(mount["destination"])
    return 0 if destination == "/" else destination.count("/")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def assemble(defaults: list[Mount], pod: list[Mount], requested: list[Mount]) -> list[Mount]:
    """Later sources override earlier ones at the same destination; a
    requested /dev replaces every default below /dev. Parents come first."""
    taken = {m["destination"] for m in requested}
    pod = [m for m in pod if m["destination"] not in taken]
    taken |= {m["destination"] for m in pod}
    requested_dev = "/dev" in taken
    defaults = [
        m for m in defaults
        if m["destination"] not in taken
        and not (requested_dev and _under(m["destination"], "/dev"))
    ]
    return sorted([*defaults, *pod, *requested], key=_depth)
