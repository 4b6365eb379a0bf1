"""The RuntimeDefault profile: what it allows and refuses, per capability set."""

from __future__ import annotations

import pytest
from crid.oci.spec import seccomp_default
from crid.oci.spec.security import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

from tests.oci.spec.seccomp_eval import action, allowed

DEFAULT = seccomp_default.default_profile(DEFAULT_CAPABILITIES, "x86_64")
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes


# What busybox (sh, ls, id, cat, sleep, ps, wget...) and libc start-up use.
@pytest.mark.parametrize("name", [
    "read", "write", "openat", "close", "execve", "mmap", "brk", "arch_prctl", "rt_sigaction",
    "getuid", "getgroups", "fstat", "newfstatat", "statx", "getdents64", "ioctl", "wait4",
    "fork", "vfork", "exit_group", "set_tid_address", "nanosleep", "clock_nanosleep",
    "socket", "connect", "sendto", "recvfrom", "poll", "prlimit64", "uname", "getcwd",
    "chdir", "kill", "setuid", "setgid", "setgroups", "capget", "prctl", "chroot", "rseq",
])
def test_allows_what_programs_need(name: str) -> None:
    assert allowed(DEFAULT, name), name


@pytest.mark.parametrize("name", [
    "unshare", "mount", "umount2", "setns", "keyctl", "add_key", "request_key", "pivot_root",
    "bpf", "kexec_load", "open_by_handle_at", "init_module", "reboot", "swapon", "userfaultfd",
    "perf_event_open", "settimeofday", "acct", "iopl", "syslog", "sethostname", "fsopen",
])
def test_refuses_with_eperm(name: str) -> None:
    assert action(DEFAULT, name) == ("SCMP_ACT_ERRNO", 1)


def test_shape() -> None:
    assert DEFAULT["defaultAction"] == "SCMP_ACT_ERRNO"
    assert DEFAULT["defaultErrnoRet"] == 1
    assert DEFAULT["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = [n for rule in DEFAULT["syscalls"] for n in rule["names"]]
    assert len(set(seccomp_default.ALLOWED)) == len(seccomp_default.ALLOWED)
    assert not set(seccomp_default.ALLOWED) & {
        n for ns in seccomp_default.BY_CAPABILITY.values() for n in ns}
    assert "unshare" not in names


def test_clone_may_not_create_namespaces_without_sys_admin() -> None:
    assert allowed(DEFAULT, "clone", (THREAD_FLAGS,))
    assert allowed(DEFAULT, "clone", (17,))  # SIGCHLD: fork()
    assert not allowed(DEFAULT, "clone", (CLONE_NEWNS | 17,))
    assert not allowed(DEFAULT, "clone", (CLONE_NEWUSER,))
    assert action(DEFAULT, "clone3") == ("SCMP_ACT_ERRNO", 38)


def test_personality_only_harmless_personas() -> None:
    assert allowed(DEFAULT, "personality", (0,))
    assert allowed(DEFAULT, "personality", (0xFFFFFFFF,))
    assert not allowed(DEFAULT, "personality", (0x0040000,))  # ADDR_NO_RANDOMIZE


def test_sys_admin_opens_namespace_and_mount_calls() -> None:
    profile = seccomp_default.default_profile([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"],
                                              "x86_64")
    for name in ("unshare", "mount", "setns", "umount2", "clone3"):
        assert allowed(profile, name), name
    assert allowed(profile, "clone", (CLONE_NEWNS,))
    assert not allowed(profile, "keyctl")


@pytest.mark.parametrize(("cap", "name"), [
    ("CAP_SYS_TIME", "settimeofday"), ("CAP_SYS_BOOT", "reboot"), ("CAP_SYS_MODULE", "init_module"),
    ("CAP_SYS_PACCT", "acct"), ("CAP_SYS_RAWIO", "iopl"), ("CAP_SYSLOG", "syslog"),
    ("CAP_SYS_NICE", "mbind"), ("CAP_BPF", "bpf"), ("CAP_PERFMON", "perf_event_open"),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
])
def test_capability_gated(cap: str, name: str) -> None:
    assert not allowed(DEFAULT, name)
    assert allowed(seccomp_default.default_profile([cap], "x86_64"), name)


def test_chroot_follows_sys_chroot() -> None:
    without = [c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"]
    assert not allowed(seccomp_default.default_profile(without, "x86_64"), "chroot")


def test_all_capabilities_still_refuse_keyring_calls() -> None:
    profile = seccomp_default.default_profile(ALL_CAPABILITIES, "x86_64")
    assert not allowed(profile, "keyctl")
    assert not allowed(profile, "add_key")


def test_arm64() -> None:
    profile = seccomp_default.default_profile(DEFAULT_CAPABILITIES, "aarch64")
    assert profile["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert not allowed(profile, "arch_prctl")


@pytest.mark.parametrize("name", ["io_uring_setup", "io_uring_enter", "io_uring_register"])
def test_io_uring_refused_even_with_all_capabilities(name: str) -> None:
    assert action(DEFAULT, name) == ("SCMP_ACT_ERRNO", 1)
    assert not allowed(seccomp_default.default_profile(ALL_CAPABILITIES, "x86_64"), name)


@pytest.mark.parametrize("name", ["kcmp", "pidfd_getfd", "process_madvise"])
def test_fd_and_memory_peeking_needs_sys_ptrace(name: str) -> None:
    assert not allowed(DEFAULT, name)
    assert allowed(seccomp_default.default_profile(
        [*DEFAULT_CAPABILITIES, "CAP_SYS_PTRACE"], "x86_64"), name)


def test_socket_families() -> None:
    for family in (1, 2, 10, 16, 17, 39, 41, 45):  # unix, inet, inet6, netlink, packet, ...
        assert allowed(DEFAULT, "socket", (family,)), family
    for family in (seccomp_default.AF_ALG, seccomp_default.AF_VSOCK):
        assert action(DEFAULT, "socket", (family,)) == ("SCMP_ACT_ERRNO", 1)
