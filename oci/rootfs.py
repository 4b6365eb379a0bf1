"""The container's filesystem view, built inside its new mount namespace:
root propagation, the rootfs bind, ``mounts`` in order, devices, ``/dev``
links, pivot_root (or chroot with ``--no-pivot``), then masked and read-only
paths and a read-only root. All kernel calls go through ``Syscalls``.
"""

from __future__ import annotations

import os
import stat

from crid.oci import linux as L
from crid.oci import mounts, paths, procfs
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Final

    from crid.oci.runtime_spec import Device, Linux, Mount, Spec


# The key crid.oci.idmap sets on a mount: the fd of its idmapped clone.
IDMAP_FD: Final = "__crid_idmap_fd"

DEFAULT_DEVICES: list[Device] = [
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


# runc's list (libcontainer/rootfs_linux.go, checkProcMount): the only places
# below /proc a mount may go, files lxcfs emulates.
PROC_MOUNT_ALLOWED = frozenset({
    "proc/cpuinfo", "proc/diskstats", "proc/meminfo", "proc/stat", "proc/swaps",
    "proc/uptime", "proc/loadavg", "proc/slabinfo", "proc/sys/kernel/ns_last_pid",
    "proc/sys/crypto/fips_enabled",
})


def check_proc_mount(rel: str, kind: str, is_bind: bool, source: str = "") -> None:
    """Refuse a mount on /proc that is not a procfs, and one below /proc outside
    runc's allow-list: such a mount would redirect what the runtime and the
    kernel's readers find there (sysctls, /proc/self/attr, core_pattern; the
    CVE-2025-52881 class). ``rel`` is the target relative to the root."""
    if rel == "proc":
        if kind == "proc" or (is_bind and L.fs_magic(source) == L.PROC_SUPER_MAGIC):
            return
        raise InvalidArgument("mount on /proc refused: only a procfs may be mounted there")
    if rel.startswith("proc/") and rel not in PROC_MOUNT_ALLOWED:
        raise InvalidArgument(f"mount on /{rel} refused: it is inside /proc")


class Rootfs:
    def __init__(self, sc: L.Syscalls, cfg: Spec, rootfs: str, bundle: str,
                 cgroup_paths: dict[str, str], in_userns: bool,
                 await_cgroup: Callable[[], None] | None = None) -> None:
        self.sc = sc
        self.cfg = cfg
        self.linux: Linux = cfg.get("linux") or {}
        self.rootfs = rootfs
        self.bundle = bundle
        self.cgroup_paths = cgroup_paths
        self.in_userns = in_userns
        # Called once before the cgroup dirs are first needed: the runtime may
        # still be making them while we mount everything else.
        self._await_cgroup = await_cgroup
        self.new_cgroupns = any(n.get("type") == "cgroup" and not n.get("path")
                                for n in self.linux.get("namespaces") or [])
        self.root_fd = -1  # the rootfs, O_PATH; every target is resolved under it
        self.root_path = ""
        self.devnull = -1  # the container's /dev/null, verified: what masked files get
        self.proc_fd = -1  # after pivot_root: the container's /proc, verified

    # -- before pivot ----------------------------------------------------
    def prepare(self) -> None:
        prop = mounts.PROPAGATION.get(self.linux.get("rootfsPropagation") or "", 0)
        self.sc.mount(None, "/", None, prop or (L.MS_SLAVE | L.MS_REC), None)
        self._make_parent_private(self.rootfs)
        self.sc.mount(self.rootfs, self.rootfs, None, L.MS_BIND | L.MS_REC, None)
        self._open_root(self.rootfs)

    def _open_root(self, path: str) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
        self.root_fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.root_path = paths.where(self.root_fd).rstrip("/")  # as the kernel spells it

    def close(self) -> None:
        for fd in (self.root_fd, self.devnull, self.proc_fd):
            if fd >= 0:
                os.close(fd)
        self.root_fd = self.devnull = self.proc_fd = -1

    def proc(self) -> int:
        """After pivot_root: an fd of the container's /proc, proved to be a
        procfs root. Mounts after pivot_root go through its /proc/self/fd, and
        sysctls are written below it (``crid.oci.procfs``)."""
        if self.proc_fd < 0:
            self.proc_fd = procfs.open_root(self.sc)
        return self.proc_fd

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

    def _target(self, dest: str, is_file: bool, resolve: int = 0) -> tuple[int, str]:
        """An O_PATH fd of the mount target ``dest`` inside the root (made if
        missing), and where it resolved to (relative to the root)."""
        rel = paths.relative(dest)
        if not rel:
            raise InvalidArgument(f"mount on {dest!r} refused: it is the container's root")
        fd = paths.make_in_root(self.sc, self.root_fd, rel, is_file, resolve)
        try:
            return fd, paths.check_inside(self.root_path, fd, f"mount target {dest}")
        except BaseException:
            os.close(fd)
            raise

    def _reopen(self, fd: int, rel: str, dest: str) -> int:
        """After a mount on ``fd``: an fd of the new mount on top. Resolved
        again from the root without symlinks, and checked to be the same place
        and a different mount (a rename racing us would fail the check)."""
        new = paths.open_in_root(self.sc, self.root_fd, rel, resolve=L.RESOLVE_NO_SYMLINKS)
        if paths.where(new) != f"{self.root_path}/{rel}" or \
                self.sc.mount_id(new) == self.sc.mount_id(fd):
            os.close(new)
            raise InvalidArgument(f"mount target {dest} changed while it was mounted on")
        return new

    def mount_one(self, m: Mount) -> None:
        opts = mounts.parse(list(m.get("options") or []))
        kind = m.get("type") or ""
        if kind == "bind":
            opts.flags |= L.MS_BIND
        src = m.get("source") or kind
        lexical = paths.relative(m["destination"])
        if opts.is_bind and not os.path.isabs(src):
            src = os.path.join(self.bundle, src)
        check_proc_mount(lexical, kind, opts.is_bind, src)
        if kind == "cgroup":
            self._mount_cgroup(m, opts)
            return
        idmapped = m.get(IDMAP_FD)
        if idmapped is not None:  # its source may be out of our reach: ask the clone
            is_file = not stat.S_ISDIR(os.fstat(idmapped).st_mode)
        else:
            is_file = opts.is_bind and not os.path.isdir(src)
        # procfs and sysfs go exactly where asked, never through a symlink (runc).
        strict = L.RESOLVE_NO_SYMLINKS if kind in ("proc", "sysfs") else 0
        fd, rel = self._target(m["destination"], is_file, strict)
        try:
            # What the target resolved to counts, not how it was spelled.
            check_proc_mount(rel, kind, opts.is_bind, src)
            self._mount_on(fd, rel, m["destination"], src, kind, opts, idmapped)
        finally:
            os.close(fd)

    def _mount_on(self, fd: int, rel: str, dest: str, src: str, kind: str,
                  opts: mounts.Options, idmapped: int | None = None) -> None:
        target = paths.fd_path(fd)
        if idmapped is not None:
            # made idmapped by create's first child (crid.oci.idmap): attach it here
            self.sc.move_mount(idmapped, fd)
            os.close(idmapped)
        elif opts.is_bind:
            self.sc.mount(src, target, None, opts.flags & (L.MS_BIND | L.MS_REC), None)
        else:
            try:
                self.sc.mount(src, target, kind, opts.flags, opts.data or None)
            except OSError:
                if kind != "sysfs" or not self.in_userns:
                    raise
                # sysfs needs a net namespace owned by our user namespace; else the
                # host's /sys is bound, like runc, with the asked flags kept on it
                # and all below it (ro, nosuid, nodev, noexec).
                self.sc.mount("/sys", target, None, L.MS_BIND | L.MS_REC, None)
                self._restrict_tree(fd, rel, dest, opts.flags)
        extra = opts.is_bind and opts.flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if not (extra or opts.propagation or opts.attr_set or opts.attr_clr):
            return
        new = self._reopen(fd, rel, dest)
        try:
            top = paths.fd_path(new)
            if extra:
                self._remount(top, opts.flags | L.MS_REMOUNT)
            for p in opts.propagation:
                self.sc.mount(None, top, None, p, None)
            if opts.attr_set or opts.attr_clr:
                self.sc.mount_setattr(top, L.AT_RECURSIVE, opts.attr_set, opts.attr_clr)
        finally:
            os.close(new)

    def _restrict_tree(self, fd: int, rel: str, dest: str, flags: int) -> None:
        attrs = 0
        for flag, attr in ((L.MS_RDONLY, L.MOUNT_ATTR_RDONLY), (L.MS_NOSUID, L.MOUNT_ATTR_NOSUID),
                           (L.MS_NODEV, L.MOUNT_ATTR_NODEV), (L.MS_NOEXEC, L.MOUNT_ATTR_NOEXEC)):
            if flags & flag:
                attrs |= attr
        if not attrs:
            return
        new = self._reopen(fd, rel, dest)
        try:
            self.sc.mount_setattr(paths.fd_path(new), L.AT_RECURSIVE, attrs, 0)
        finally:
            os.close(new)

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

    def _mount_cgroup(self, m: Mount, opts: mounts.Options) -> None:
        self.await_cgroup()
        fd, rel = self._target(m["destination"], False)
        try:
            self._mount_cgroup_on(fd, rel, m["destination"], opts)
        finally:
            os.close(fd)

    def _mount_cgroup_on(self, fd: int, rel: str, dest: str, opts: mounts.Options) -> None:
        ro = bool(opts.flags & L.MS_RDONLY)
        base = opts.flags & ~L.MS_RDONLY
        target = paths.fd_path(fd)
        if self.cgroup_paths.get("") is not None and len(self.cgroup_paths) == 1:
            # cgroup v2
            if self.new_cgroupns:
                self.sc.mount("cgroup2", target, "cgroup2", opts.flags, None)
            else:
                self.sc.mount(self.cgroup_paths[""], target, None, L.MS_BIND | L.MS_REC, None)
                if ro:
                    new = self._reopen(fd, rel, dest)
                    try:
                        self._remount(paths.fd_path(new), L.MS_BIND | L.MS_REMOUNT | opts.flags)
                    finally:
                        os.close(new)
            return
        self.sc.mount("tmpfs", target, "tmpfs", base | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC,
                      "mode=755")
        top = self._reopen(fd, rel, dest)  # the tmpfs we just made: all else goes in it
        try:
            for name, host_dir in sorted(self.cgroup_paths.items()):
                if not name:
                    continue
                sub = name.split("=", 1)[-1]
                os.mkdir(sub, 0o755, dir_fd=top)
                sub_fd = self.sc.openat2(top, sub, os.O_PATH, paths.HERE)
                try:
                    where = paths.fd_path(sub_fd)
                    if self.new_cgroupns:
                        # the hierarchy key is the mount's own option list ("cpu,cpuacct")
                        self.sc.mount("cgroup", where, "cgroup", opts.flags, name)
                    else:
                        self.sc.mount(host_dir, where, None, L.MS_BIND | L.MS_REC, None)
                        new = self._reopen(sub_fd, rel + "/" + sub, dest)
                        try:
                            self._remount(paths.fd_path(new),
                                          L.MS_BIND | L.MS_REMOUNT | opts.flags)
                        finally:
                            os.close(new)
                finally:
                    os.close(sub_fd)
                if "," in sub:
                    for alias in sub.split(","):
                        if not _lexists(alias, top):
                            os.symlink(sub, alias, dir_fd=top)
            if ro:
                self.sc.mount(None, paths.fd_path(top), None, L.MS_REMOUNT | L.MS_RDONLY | base,
                              None)
        finally:
            os.close(top)

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
        try:
            dev = paths.open_in_root(self.sc, self.root_fd, "dev", os.O_PATH | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return
        try:
            for src, link in [*_DEV_LINKS, *([("/proc/kcore", "/dev/core")]
                                            if os.path.exists("/proc/kcore") else [])]:
                name = link[len("/dev/"):]
                if not _lexists(name, dev):
                    os.symlink(src, name, dir_fd=dev)
            if _lexists("ptmx", dev):
                os.unlink("ptmx", dir_fd=dev)
            os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
        finally:
            os.close(dev)

    def _device(self, d: Device) -> None:
        rel = paths.relative(d["path"])
        parent_rel, _, name = rel.rpartition("/")
        if not name:
            raise InvalidArgument(f"device path {d['path']!r} is not a file path")
        parent, _ = self._target("/" + parent_rel, False) if parent_rel else \
            (paths.open_in_root(self.sc, self.root_fd, "", os.O_PATH | os.O_DIRECTORY), "")
        try:
            self._device_in(d, parent, name)
        finally:
            os.close(parent)

    def _device_in(self, d: Device, parent: int, name: str) -> None:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK,
                "p": stat.S_IFIFO}[d["type"]]
        mode = 0o666 if d.get("fileMode") is None else int(d["fileMode"])
        if self.in_userns:
            # mknod is not allowed in a user namespace: bind the host's node instead.
            if not _lexists(name, parent):
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=parent))
            fd = self.sc.openat2(parent, name, os.O_PATH, paths.HERE)
            try:
                self.sc.mount(d["path"], paths.fd_path(fd), None, L.MS_BIND, None)
            finally:
                os.close(fd)
            return
        if _lexists(name, parent):
            os.unlink(name, dir_fd=parent)
        os.mknod(name, kind | (mode & 0o7777),
                 os.makedev(int(d.get("major") or 0), int(d.get("minor") or 0)), dir_fd=parent)
        fd = self.sc.openat2(parent, name, os.O_PATH, paths.HERE)
        try:
            os.chmod(paths.fd_path(fd), mode & 0o7777)
            os.chown(paths.fd_path(fd), int(d.get("uid") or 0), int(d.get("gid") or 0))
        finally:
            os.close(fd)

    def open_devnull(self) -> int:
        """The container's /dev/null as an fd (after pivot_root), proved to be
        the null device (char 1:3), never reached through a symlink: masked
        files are bind mounts of that very inode. An image or a container
        sharing the /dev may have made /dev/null a symlink to anything, say
        /proc/sys/kernel/core_pattern, which would then be bound writable over
        the masked path (runc's CVE-2025-31133)."""
        if self.devnull < 0:
            try:
                fd = paths.open_in_root(self.sc, self.root_fd, "dev/null",
                                        resolve=L.RESOLVE_NO_SYMLINKS)
            except OSError as e:
                raise InvalidArgument(f"cannot mask paths: the container's /dev/null: "
                                      f"{e.strerror}") from None
            st = os.fstat(fd)
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
                os.close(fd)
                raise InvalidArgument("cannot mask paths: the container's /dev/null is not the "
                                      "null device (char 1:3)")
            self.devnull = fd
        return self.devnull

    def pivot(self, no_pivot: bool) -> None:
        if no_pivot:
            os.chdir(self.rootfs)
            self.sc.mount(self.rootfs, "/", None, L.MS_MOVE, None)
            os.chroot(".")
            os.chdir("/")
            self._open_root("/")
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
        self._open_root("/")

    # -- after pivot -----------------------------------------------------
    def _each_existing(self, listed: list[str], what: str) -> Iterator[tuple[int, str, str]]:
        """For each of ``listed`` that exists in the root: an O_PATH fd of it,
        checked to be strictly inside the root, its path relative to the root,
        and the path as listed; the fd is closed when the caller moves on. The
        container's /proc is verified first: these mounts go through its
        /proc/self/fd."""
        if listed:
            self.proc()
        for p in listed:
            try:
                fd = paths.open_in_root(self.sc, self.root_fd, paths.relative(p))
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                yield fd, paths.check_inside(self.root_path, fd, f"{what} {p}"), p
            finally:
                os.close(fd)

    def readonly_paths(self) -> None:
        for fd, rel, p in self._each_existing(self.linux.get("readonlyPaths") or [],
                                              "read-only path"):
            self.sc.mount(paths.fd_path(fd), paths.fd_path(fd), None, L.MS_BIND | L.MS_REC,
                          None)
            new = self._reopen(fd, rel, p)
            try:
                top = paths.fd_path(new)
                flags = os.statvfs(top).f_flag & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
                self.sc.mount(None, top, None,
                              L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | flags, None)
            finally:
                os.close(new)

    def masked_paths(self) -> None:
        for fd, _, _ in self._each_existing(self.linux.get("maskedPaths") or [],
                                            "masked path"):
            target = paths.fd_path(fd)
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                self.sc.mount("tmpfs", target, "tmpfs", L.MS_RDONLY, None)
            else:
                self.sc.mount(paths.fd_path(self.open_devnull()), target, None, L.MS_BIND, None)

    def finalize(self) -> None:
        root = self.cfg.get("root")
        if root and root.get("readonly"):
            flags = os.statvfs("/").f_flag & (L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC)
            self.sc.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | flags, None)
        prop = self.linux.get("rootfsPropagation")
        if prop:
            self.sc.mount(None, "/", None, mounts.PROPAGATION[prop], None)
        self.close()


def _lexists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _optional_fields(mountpoint: str) -> str:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == mountpoint:
                sep = parts.index("-")
                return " ".join(parts[6:sep])
    return ""
