"""The container's filesystem view, built inside its new mount namespace:
root propagation, the rootfs bind, ``mounts`` in order, devices, ``/dev``
links, pivot_root (or chroot with ``--no-pivot``), then masked and read-only
paths and a read-only root. All kernel calls go through ``Syscalls``.
"""

from __future__ import annotations

import os
import stat

from crid.oci import linux as L
from crid.oci import mounts, paths

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Json = dict[str, Any]


DEFAULT_DEVICES: list[Json] = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8, "fileMode": 0o666},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 0o666},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666},
]
_DEV_LINKS = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
]


class Rootfs:
    def __init__(self, sc: L.Syscalls, cfg: Json, rootfs: str, bundle: str,
                 cgroup_paths: dict[str, str], in_userns: bool,
                 await_cgroup: Callable[[], None] | None = None) -> None:
        self.sc = sc
        self.cfg = cfg
        self.linux: Json = cfg.get("linux") or {}
        self.rootfs = rootfs
        self.bundle = bundle
        self.cgroup_paths = cgroup_paths
        self.in_userns = in_userns
        # Called once before the cgroup dirs are first needed: the runtime may
        # still be making them while we mount everything else.
        self._await_cgroup = await_cgroup
        self.new_cgroupns = any(n.get("type") == "cgroup" and not n.get("path")
                                for n in self.linux.get("namespaces") or [])

    # -- before pivot ----------------------------------------------------
    def prepare(self) -> None:
        prop = mounts.PROPAGATION.get(self.linux.get("rootfsPropagation") or "", 0)
        self.sc.mount(None, "/", None, prop or (L.MS_SLAVE | L.MS_REC), None)
        self._make_parent_private(self.rootfs)
        self.sc.mount(self.rootfs, self.rootfs, None, L.MS_BIND | L.MS_REC, None)

    def _make_parent_private(self, path: str) -> None:
        # pivot_root refuses a shared parent mount; find the mount holding path.
        best = "/"
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4]
                if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                    best = mp
        if "shared:" in _optional_fields(best):
            self.sc.mount(None, best, None, L.MS_PRIVATE, None)

    def mount_all(self) -> None:
        for m in self.cfg.get("mounts") or []:
            self.mount_one(m)

    def mount_one(self, m: Json) -> None:
        opts = mounts.parse(list(m.get("options") or []))
        kind = m.get("type") or ""
        if kind == "bind":
            opts.flags |= L.MS_BIND
        if kind == "cgroup":
            self._mount_cgroup(m, opts)
            return
        src = m.get("source") or kind
        if opts.is_bind:
            if not os.path.isabs(src):
                src = os.path.join(self.bundle, src)
            is_file = not os.path.isdir(src)
        else:
            is_file = False
        dest = paths.ensure_target(self.rootfs, m["destination"], is_file)
        if opts.is_bind:
            self.sc.mount(src, dest, None, opts.flags & (L.MS_BIND | L.MS_REC), None)
            extra = opts.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
            if extra:
                self._remount(dest, opts.flags | L.MS_REMOUNT)
        else:
            data = opts.data or None
            try:
                self.sc.mount(src, dest, kind, opts.flags, data)
            except OSError:
                if kind != "sysfs" or not self.in_userns:
                    raise
                # sysfs needs a net namespace owned by our userns; fall back like runc
                self.sc.mount("/sys", dest, None, L.MS_BIND | L.MS_REC, None)
        for p in opts.propagation:
            self.sc.mount(None, dest, None, p, None)
        if opts.attr_set or opts.attr_clr:
            self.sc.mount_setattr(dest, L.AT_RECURSIVE, opts.attr_set, opts.attr_clr)

    def _remount(self, dest: str, flags: int) -> None:
        try:
            self.sc.mount(None, dest, None, flags, None)
        except PermissionError:
            # In a user namespace, flags locked on the source must be kept.
            st = os.statvfs(dest)
            locked = st.f_flag & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC | L.MS_RDONLY)
            self.sc.mount(None, dest, None, flags | locked, None)

    def await_cgroup(self) -> None:
        """Block (once) until the runtime has made our cgroup and moved us in."""
        if self._await_cgroup is not None:
            wait, self._await_cgroup = self._await_cgroup, None
            wait()

    def _mount_cgroup(self, m: Json, opts: mounts.Options) -> None:
        self.await_cgroup()
        dest = paths.ensure_target(self.rootfs, m["destination"], False)
        ro = bool(opts.flags & L.MS_RDONLY)
        base = opts.flags & ~L.MS_RDONLY
        if self.cgroup_paths.get("") is not None and len(self.cgroup_paths) == 1:
            # cgroup v2
            if self.new_cgroupns:
                self.sc.mount("cgroup2", dest, "cgroup2", opts.flags, None)
            else:
                self.sc.mount(self.cgroup_paths[""], dest, None, L.MS_BIND | L.MS_REC, None)
                if ro:
                    self._remount(dest, L.MS_BIND | L.MS_REMOUNT | opts.flags)
            return
        self.sc.mount("tmpfs", dest, "tmpfs", base | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC,
                      "mode=755")
        for name, host_dir in sorted(self.cgroup_paths.items()):
            if not name:
                continue
            sub = name.split("=", 1)[-1]
            target = os.path.join(dest, sub)
            os.makedirs(target, exist_ok=True)
            if self.new_cgroupns:
                # the hierarchy key is the mount's own option list ("cpu,cpuacct")
                self.sc.mount("cgroup", target, "cgroup", opts.flags, name)
            else:
                self.sc.mount(host_dir, target, None, L.MS_BIND | L.MS_REC, None)
                self._remount(target, L.MS_BIND | L.MS_REMOUNT | opts.flags)
            if "," in sub:
                for alias in sub.split(","):
                    link = os.path.join(dest, alias)
                    if not os.path.lexists(link):
                        os.symlink(sub, link)
        if ro:
            self.sc.mount(None, dest, None, L.MS_REMOUNT | L.MS_RDONLY | base, None)

    def binds_dev(self) -> bool:
        return any(
            m.get("destination") == "/dev" and "bind" in (m.get("options") or []) + [m.get("type")]
            for m in self.cfg.get("mounts") or []
        )

    def create_devices(self) -> None:
        bind_dev = self.binds_dev()
        devs = [] if bind_dev else list(DEFAULT_DEVICES)
        seen = {d["path"] for d in self.linux.get("devices") or []}
        devs = [d for d in devs if d["path"] not in seen] + list(self.linux.get("devices") or [])
        old = os.umask(0)
        try:
            for d in devs:
                self._device(d)
        finally:
            os.umask(old)
        if bind_dev:
            return
        for src, link in [*_DEV_LINKS, *([("/proc/kcore", "/dev/core")]
                                        if os.path.exists("/proc/kcore") else [])]:
            path = paths.secure_join(self.rootfs, link)
            if not os.path.lexists(path) and os.path.isdir(os.path.dirname(path)):
                os.symlink(src, path)
        ptmx = paths.secure_join(self.rootfs, "/dev/ptmx")
        if os.path.isdir(os.path.dirname(ptmx)):
            if os.path.lexists(ptmx):
                os.unlink(ptmx)
            os.symlink("pts/ptmx", ptmx)

    def _device(self, d: Json) -> None:
        dest = paths.secure_join(self.rootfs, d["path"])
        os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK,
                "p": stat.S_IFIFO}[d["type"]]
        mode = 0o666 if d.get("fileMode") is None else int(d["fileMode"])
        if self.in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            if not os.path.lexists(dest):
                os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
            self.sc.mount(d["path"], dest, None, L.MS_BIND, None)
            return
        if os.path.lexists(dest):
            os.unlink(dest)
        os.mknod(dest, kind | (mode & 0o7777),
                 os.makedev(int(d.get("major") or 0), int(d.get("minor") or 0)))
        os.chmod(dest, mode & 0o7777)
        os.chown(dest, int(d.get("uid") or 0), int(d.get("gid") or 0))

    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            self.sc.mount(self.rootfs, "/", None, L.MS_MOVE, None)
            os.chroot(".")
            os.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            self.sc.pivot_root(".", ".")
            os.fchdir(old)
            # Keep the old root's unmount from propagating back to the host.
            self.sc.mount(None, ".", None, L.MS_SLAVE | L.MS_REC, None)
            self.sc.umount2(".", L.MNT_DETACH)
        finally:
            os.close(old)
            os.close(new)
        os.chdir("/")

    # -- after pivot -----------------------------------------------------
    def readonly_paths(self) -> None:
        for p in self.linux.get("readonlyPaths") or []:
            try:
                self.sc.mount(p, p, None, L.MS_BIND | L.MS_REC, None)
            except FileNotFoundError:
                continue
            flags = os.statvfs(p).f_flag & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
            self.sc.mount(None, p, None,
                          L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | flags, None)

    def masked_paths(self) -> None:
        for p in self.linux.get("maskedPaths") or []:
            try:
                if os.path.isdir(p):
                    self.sc.mount("tmpfs", p, "tmpfs", L.MS_RDONLY, None)
                else:
                    self.sc.mount("/dev/null", p, None, L.MS_BIND, None)
            except FileNotFoundError:
                continue

    def finalize(self) -> None:
        if (self.cfg.get("root") or {}).get("readonly"):
            flags = os.statvfs("/").f_flag & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
            self.sc.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | flags, None)
        prop = self.linux.get("rootfsPropagation")
        if prop:
            self.sc.mount(None, "/", None, mounts.PROPAGATION[prop], None)


def _optional_fields(mountpoint: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == mountpoint:
                sep = parts.index("-")
                return " ".join(parts[6:sep])
    return ""
