"""The one seam between crid and the kernel: a ``Syscalls`` object over ctypes.

Everything crid-runtime and the daemon's pod and rootfs code ask of the kernel
that Python's ``os`` does not offer (mount, pivot_root, unshare, setns, capset,
prctl, mount_setattr, statfs, ...) goes through here, so unit tests can record
the calls with a subclass instead of changing the host. Failures raise
``OSError`` with the errno and the call. Namespace calls act on the calling
*thread* only.
"""

from __future__ import annotations

import ctypes
import os

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25
MNT_DETACH = 2

# mount_setattr(2)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MOUNT_ATTR_IDMAP = 0x100000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000  # O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# statfs(2) f_type of procfs; the root of a procfs is always inode 1
PROC_SUPER_MAGIC = 0x9FA0
PROC_ROOT_INO = 1

# clone(2) / namespaces
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080

# fcntl(2)
F_DUPFD = 0

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_SYS_PIVOT_ROOT = 155
_SYS_PIDFD_OPEN = 434  # one number on every architecture (added after the table was unified)
_SYS_CLOSE_RANGE = 436
_CLOSE_RANGE_CLOEXEC = 4
_SYS_MOUNT_SETATTR = 442
# open_tree and move_mount: one number on every architecture but alpha (5.2's new calls)
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_SETRESUID = {"x86_64": 117, "aarch64": 147, "ppc64le": 164, "s390x": 208, "riscv64": 147}
_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "ppc64le": 437, "s390x": 437, "riscv64": 437}
_SYS_STATX = {"x86_64": 332, "aarch64": 291, "ppc64le": 383, "s390x": 379, "riscv64": 291}
_OPENAT2_TRIES = 128
_STATX_MNT_ID = 0x1000
_STATX_MNT_ID_OFFSET = 0x90  # stx_mnt_id in struct statx
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# bpf(2): commands, the cgroup device program type and attach type, attach flags
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351, "riscv64": 280}
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_F_REPLACE = 4
_BPF_LOG_SIZE = 1 << 16


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


class _BpfProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
    ]


class _BpfProgAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


class _BpfProgQuery(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class _BpfGetInfo(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _BpfProgInfo(ctypes.Structure):  # the head of struct bpf_prog_info
    _fields_ = [
        ("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


class Syscalls:
    """Thin, checked wrappers; each raises OSError naming the call on failure."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.syscall.restype = ctypes.c_long

    def _check(self, ret: int, what: str) -> int:
        if ret < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")
        return ret

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self._check(
            self._libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
            f"mount {source or fstype} on {target}",
        )

    def umount2(self, target: str, flags: int) -> None:
        self._check(self._libc.umount2(_b(target), flags), f"umount {target}")

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self._check(
            self._libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)), "pivot_root"
        )

    def mount_setattr(self, path: str, flags: int, attr_set: int, attr_clr: int,
                      propagation: int = 0) -> None:
        attr = _MountAttr(attr_set, attr_clr, propagation, 0)
        self._check(
            self._libc.syscall(
                _SYS_MOUNT_SETATTR, AT_FDCWD, _b(path), ctypes.c_uint(flags),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            f"mount_setattr {path}",
        )

    def open_tree(self, dirfd: int, path: str, flags: int) -> int:
        """open_tree(2): with ``OPEN_TREE_CLONE``, a detached copy of the mount at
        ``path`` (with ``AT_RECURSIVE``, of its whole subtree) as a new fd."""
        return self._check(self._libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(dirfd), _b(path),
                                              ctypes.c_uint(flags)), f"open_tree {path}")

    def idmap(self, tree_fd: int, userns_fd: int, recursive: bool = True) -> None:
        """mount_setattr(2) ``MOUNT_ATTR_IDMAP`` on the detached mount ``tree_fd``:
        ids seen through it are those of the user namespace ``userns_fd``."""
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
        self._check(
            self._libc.syscall(
                _SYS_MOUNT_SETATTR, ctypes.c_int(tree_fd), b"", ctypes.c_uint(flags),
                ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            "mount_setattr MOUNT_ATTR_IDMAP",
        )

    def move_mount(self, tree_fd: int, target: str | int) -> None:
        """move_mount(2): attach the detached mount ``tree_fd`` at ``target``, a
        path or an fd (O_PATH) of the target itself."""
        if isinstance(target, int):
            to_fd, to_path, flags = target, b"", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
        else:
            to_fd, to_path, flags = AT_FDCWD, os.fsencode(target), MOVE_MOUNT_F_EMPTY_PATH
        self._check(self._libc.syscall(_SYS_MOVE_MOUNT, ctypes.c_int(tree_fd), b"",
                                       ctypes.c_int(to_fd), to_path, ctypes.c_uint(flags)),
                    f"move_mount on {target}")

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        """openat2(2): open ``path`` relative to ``dirfd`` under the ``RESOLVE_*`` rules;
        the new fd. ``RESOLVE_IN_ROOT`` resolves as if ``dirfd`` were ``/``: no
        symlink or ``..`` leads out of it, whatever the tree holds or becomes."""
        how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
        nr, raw = _SYS_OPENAT2[os.uname().machine], _b(path)
        # EAGAIN: a rename or mount anywhere raced a ".." step (the kernel
        # cannot then prove it stayed inside); trying again is what it asks.
        for _ in range(_OPENAT2_TRIES):
            fd = self._libc.syscall(nr, dirfd, raw, ctypes.byref(how),
                                    ctypes.c_size_t(ctypes.sizeof(how)))
            if fd >= 0 or ctypes.get_errno() != 11:
                break
        return self._check(fd, f"openat2 {path}")

    def fstatfs_type(self, fd: int) -> int:
        """The filesystem type (``f_type`` of fstatfs(2)) of what ``fd`` is open on."""
        buf = ctypes.create_string_buffer(120)  # struct statfs; f_type is its first field
        self._check(self._libc.fstatfs(fd, buf), "fstatfs")
        return int(ctypes.c_long.from_buffer(buf).value)

    def mount_id(self, fd: int) -> int:
        """The id of the mount ``fd`` is open on (statx(2) ``stx_mnt_id``)."""
        buf = ctypes.create_string_buffer(256)
        self._check(self._libc.syscall(_SYS_STATX[os.uname().machine], fd, b"",
                                       AT_EMPTY_PATH, _STATX_MNT_ID, buf), "statx")
        return int(ctypes.c_uint64.from_buffer(buf, _STATX_MNT_ID_OFFSET).value)

    def thread_seteuid(self, euid: int) -> None:
        """setresuid(-1, euid, -1) for the calling thread alone (the raw call:
        glibc's wrapper changes every thread of the process). From 0 to
        another id the effective capabilities go, back to 0 they return."""
        self._check(self._libc.syscall(_SYS_SETRESUID[os.uname().machine], ctypes.c_long(-1),
                                       ctypes.c_long(euid), ctypes.c_long(-1)),
                    f"setresuid(-1, {euid}, -1)")

    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(flags), f"unshare {flags:#x}")

    def setns(self, fd: int, nstype: int = 0) -> None:
        self._check(self._libc.setns(fd, nstype), "setns")

    def pidfd_open(self, pid: int) -> int:
        """A pidfd (close-on-exec) for ``pid``: it names that process, never a
        later one that reuses the number. ESRCH when no such process exists."""
        return self._check(self._libc.syscall(_SYS_PIDFD_OPEN, ctypes.c_int(pid),
                                              ctypes.c_uint(0)), f"pidfd_open {pid}")

    def pidfd_exited(self, pidfd: int) -> bool:
        """Whether the process of ``pidfd`` has exited (zombie or reaped): its
        pidfd polls readable then, without waiting."""
        pfd = _PollFd(pidfd, 1, 0)  # POLLIN
        self._check(self._libc.poll(ctypes.byref(pfd), 1, 0), "poll pidfd")
        return bool(pfd.revents)

    def sethostname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.sethostname(raw, len(raw)), "sethostname")

    def gettid(self) -> int:
        return int(self._libc.gettid())

    def setdomainname(self, name: str) -> None:
        raw = name.encode()
        self._check(self._libc.setdomainname(raw, len(raw)), "setdomainname")

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0) -> int:
        return self._check(
            self._libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0),
            f"prctl {option}",
        )

    def capget(self) -> tuple[int, int, int]:
        """(effective, permitted, inheritable) of this thread as 64-bit masks."""
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        self._check(self._libc.capget(ctypes.byref(hdr), data), "capget")
        return (
            data[0].effective | data[1].effective << 32,
            data[0].permitted | data[1].permitted << 32,
            data[0].inheritable | data[1].inheritable << 32,
        )

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        m = 0xFFFFFFFF
        data[0] = _CapData(effective & m, permitted & m, inheritable & m)
        data[1] = _CapData(effective >> 32, permitted >> 32, inheritable >> 32)
        self._check(self._libc.capset(ctypes.byref(hdr), data), "capset")

    def _bpf(self, cmd: int, attr: ctypes.Structure, what: str) -> int:
        nr = _SYS_BPF.get(os.uname().machine)
        if nr is None:
            raise OSError(38, f"{what}: bpf(2) number unknown on {os.uname().machine}")
        return self._check(self._libc.syscall(nr, cmd, ctypes.byref(attr),
                                              ctypes.sizeof(attr)), what)

    def bpf_prog_load(self, prog_type: int, code: bytes, license: str, name: str = "") -> int:
        """Load a program (8-byte instructions in ``code``); return its fd (close-on-exec).
        On failure the OSError's message carries the verifier's log."""
        insns = ctypes.create_string_buffer(code, len(code))
        lic = ctypes.create_string_buffer(license.encode())
        attr = _BpfProgLoad(prog_type=prog_type, insn_cnt=len(code) // 8,
                            insns=ctypes.addressof(insns), license=ctypes.addressof(lic),
                            prog_name=name.encode()[:15])
        try:
            return self._bpf(BPF_PROG_LOAD, attr, "bpf prog load")
        except OSError as first:
            # Load again with the verifier's log on, only to say why.
            log = ctypes.create_string_buffer(_BPF_LOG_SIZE)
            attr.log_level, attr.log_size = 1, _BPF_LOG_SIZE
            attr.log_buf = ctypes.addressof(log)
            try:
                fd = self._bpf(BPF_PROG_LOAD, attr, "bpf prog load")
            except OSError:
                text = log.value.decode(errors="replace").strip()
                raise OSError(first.errno, f"bpf prog load: {os.strerror(first.errno or 0)}"
                              + (f"; verifier log:\n{text}" if text else "")) from None
            return fd  # it passed the second time (a transient failure)

    def bpf_prog_attach(self, target_fd: int, prog_fd: int, attach_type: int, flags: int,
                        replace_fd: int = 0) -> None:
        attr = _BpfProgAttach(target_fd=target_fd, attach_bpf_fd=prog_fd,
                              attach_type=attach_type, attach_flags=flags,
                              replace_bpf_fd=replace_fd)
        self._bpf(BPF_PROG_ATTACH, attr, "bpf prog attach")

    def bpf_prog_detach(self, target_fd: int, prog_fd: int, attach_type: int) -> None:
        attr = _BpfProgAttach(target_fd=target_fd, attach_bpf_fd=prog_fd,
                              attach_type=attach_type)
        self._bpf(BPF_PROG_DETACH, attr, "bpf prog detach")

    def bpf_prog_query(self, target_fd: int, attach_type: int) -> list[int]:
        """Ids of the programs attached to ``target_fd`` (a cgroup) for ``attach_type``."""
        size = 64
        while True:
            ids = (ctypes.c_uint32 * size)()
            attr = _BpfProgQuery(target_fd=target_fd, attach_type=attach_type,
                                 prog_ids=ctypes.addressof(ids), prog_cnt=size)
            try:
                self._bpf(BPF_PROG_QUERY, attr, "bpf prog query")
            except OSError as e:
                if e.errno == 28 and attr.prog_cnt > size:  # ENOSPC: the count is now known
                    size = attr.prog_cnt
                    continue
                raise
            return list(ids[:attr.prog_cnt])

    def bpf_prog_get_fd_by_id(self, prog_id: int) -> int:
        attr = _BpfGetInfo(bpf_fd=prog_id)  # prog_id is the first u32 of this command
        return self._bpf(BPF_PROG_GET_FD_BY_ID, attr, f"bpf prog get fd by id {prog_id}")

    def bpf_prog_info(self, prog_fd: int) -> tuple[int, int, str]:
        """(program type, id, name) of a loaded program."""
        info = _BpfProgInfo()
        attr = _BpfGetInfo(bpf_fd=prog_fd, info_len=ctypes.sizeof(info),
                           info=ctypes.addressof(info))
        self._bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "bpf obj get info")
        return info.type, info.id, info.name.decode(errors="replace")

    def bpf_prog_id(self, prog_fd: int) -> int:
        return self.bpf_prog_info(prog_fd)[1]

    def fcntl(self, fd: int, cmd: int, arg: int = 0) -> int:
        """fcntl(2) with an integer argument (the ``fcntl`` module costs an import)."""
        return self._check(self._libc.fcntl(fd, cmd, ctypes.c_int(arg)), f"fcntl {cmd}")

    def syncfs(self, path: str) -> None:
        """Write the dirty data of the filesystem holding ``path`` to disk (syncfs(2))."""
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._check(self._libc.syncfs(fd), f"syncfs {path}")
        finally:
            os.close(fd)

    def cloexec_from(self, first: int) -> None:
        """Mark every fd >= first close-on-exec (close_range(2) with CLOSE_RANGE_CLOEXEC):
        nothing the caller leaked reaches the container, yet our own pipes still
        work until execve."""
        self._check(self._libc.syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(first),
                                       ctypes.c_uint(0xFFFFFFFF),
                                       ctypes.c_uint(_CLOSE_RANGE_CLOEXEC)), "close_range")

    def loopback_up(self) -> None:
        """Bring ``lo`` up in the current network namespace (SIOCGIFFLAGS/SIOCSIFFLAGS)."""
        fd = self._check(self._libc.socket(2, 2, 0), "socket")  # AF_INET, SOCK_DGRAM
        try:
            ifr = ctypes.create_string_buffer(b"lo".ljust(40, b"\0"), 40)
            self._check(self._libc.ioctl(fd, 0x8913, ifr), "SIOCGIFFLAGS lo")
            flags = int.from_bytes(ifr.raw[16:18], "little") | 0x1  # IFF_UP
            ctypes.memmove(ctypes.addressof(ifr) + 16, flags.to_bytes(2, "little"), 2)
            self._check(self._libc.ioctl(fd, 0x8914, ifr), "SIOCSIFFLAGS lo")
        finally:
            os.close(fd)


def fs_magic(path: str) -> int | None:
    """The filesystem type (``f_type`` of statfs) of ``path``; None when it cannot be read."""
    buf = ctypes.create_string_buffer(120)  # struct statfs; f_type is its first field
    if syscalls()._libc.statfs(os.fsencode(path), buf) != 0:
        return None
    return int(ctypes.c_long.from_buffer(buf).value)


_default: Syscalls | None = None


def syscalls() -> Syscalls:
    """The process-wide Syscalls (created on first use, so ctypes loads only when needed)."""
    global _default
    if _default is None:
        _default = Syscalls()
    return _default
