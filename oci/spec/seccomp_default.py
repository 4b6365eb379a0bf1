"""crid's ``RuntimeDefault`` seccomp profile, built for one capability set.

An allow-list with EPERM as the default answer, in the shape of the profile
moby and containerd ship: what ordinary programs need is allowed; what
escapes or reconfigures the kernel (``mount``, ``unshare``, ``setns``,
``keyctl``/``add_key``, ``bpf``, ``kexec_load``, ``open_by_handle_at``,
``userfaultfd``...) is refused unless the container holds the capability
that makes it meaningful, in which case the rule for that capability adds it.
``clone`` without CAP_SYS_ADMIN may not create namespaces; ``clone3``, whose
flags seccomp cannot inspect, answers ENOSYS so libc falls back to ``clone``.

It is never weaker than moby's ``profiles/seccomp/default.json`` (a copy of
a recent release is test data: tests/oci/spec/test_seccomp_vs_moby.py checks,
for many capability sets, that crid allows nothing moby refuses). Hence:
``io_uring_*`` is refused outright (its rings perform I/O that seccomp never
sees, and it has been a steady source of kernel exploits; moby dropped it in
25.0); ``kcmp``, ``pidfd_getfd`` (steals another process's fds) and
``process_madvise`` need CAP_SYS_PTRACE; ``socket`` may not open AF_ALG or
AF_VSOCK sockets (kernel crypto and host-guest sockets, both exploit-prone
and useless to a container). ``ptrace`` and ``process_vm_*`` stay allowed as
in moby: since kernel 4.8 seccomp re-checks after a tracer's changes.

Names the kernel or libseccomp do not know are skipped by runtimes, so the
lists hold the 32-bit variants too.
"""

from __future__ import annotations

import platform
from collections.abc import Collection

from crid.oci.runtime_spec import Seccomp, SeccompArg, Syscall

EPERM = 1
ENOSYS = 38

ALLOWED = [
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area",
    "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64",
    "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6",
    "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask",
    "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
]

# Per machine: the seccomp architectures a process may use, and syscalls
# only that architecture has.
ARCHITECTURES = {
    "x86_64": (
        ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        ("arch_prctl", "modify_ldt"),
    ),
    "aarch64": (
        ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
        ("arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
         "cacheflush", "set_tls"),
    ),
}

# Syscalls allowed only when the capability is in the bounding set.
BY_CAPABILITY = {
    "CAP_SYS_ADMIN": [
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
        "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
        "umount2", "unshare",
    ],
    "CAP_SYS_BOOT": ["reboot"],
    "CAP_SYS_CHROOT": ["chroot"],
    "CAP_SYS_MODULE": ["delete_module", "init_module", "finit_module"],
    "CAP_SYS_PACCT": ["acct"],
    "CAP_SYS_PTRACE": ["kcmp", "pidfd_getfd", "process_madvise"],
    "CAP_SYS_RAWIO": ["iopl", "ioperm"],
    "CAP_SYS_TIME": ["settimeofday", "stime", "clock_settime", "clock_settime64"],
    "CAP_SYS_TTY_CONFIG": ["vhangup"],
    "CAP_SYS_NICE": ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
    "CAP_SYSLOG": ["syslog"],
    "CAP_BPF": ["bpf"],
    "CAP_PERFMON": ["perf_event_open"],
}

# personality(2) personas that are harmless: PER_LINUX, UNAME26,
# PER_LINUX32, PER_LINUX32|UNAME26, and the query value 0xffffffff.
PERSONALITIES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

# socket(2) families refused: AF_ALG (kernel crypto API), AF_VSOCK (host-guest).
AF_ALG = 38
AF_VSOCK = 40

# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000


def _allow(names: list[str] | tuple[str, ...], args: list[SeccompArg] | None = None) -> Syscall:
    rule: Syscall = {"names": list(names), "action": "SCMP_ACT_ALLOW"}
    if args is not None:
        rule["args"] = args
    return rule


def default_profile(
    bounding_capabilities: Collection[str], machine: str | None = None
) -> Seccomp:
    """The runtime-spec ``linux.seccomp`` object for a container with these caps."""
    architectures, arch_syscalls = ARCHITECTURES.get(
        machine or platform.machine(), ARCHITECTURES["x86_64"]
    )
    rules: list[Syscall] = [_allow(ALLOWED), _allow(arch_syscalls)]
    rules += [
        _allow(["personality"], args=[{"index": 0, "value": p, "op": "SCMP_CMP_EQ"}])
        for p in PERSONALITIES
    ]
    # One rule per side of each refused family, as moby does: libseccomp ORs
    # rules, and ANDs the conditions within one.
    rules += [
        _allow(["socket"], args=[{"index": 0, "value": AF_ALG, "op": "SCMP_CMP_LT"}]),
        _allow(["socket"], args=[{"index": 0, "value": AF_ALG + 1, "op": "SCMP_CMP_EQ"}]),  # AF_NFC
        _allow(["socket"], args=[{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_GT"}]),
    ]
    caps = set(bounding_capabilities)
    for cap, names in BY_CAPABILITY.items():
        if cap in caps:
            rules.append(_allow(names))
    if "CAP_SYS_ADMIN" not in caps:
        rules.append(_allow(["clone"], args=[{
            "index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
            "op": "SCMP_CMP_MASKED_EQ",
        }]))
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(architectures),
        "syscalls": rules,
    }
