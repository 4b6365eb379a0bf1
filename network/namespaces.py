"""Pinning a pod's net, ipc and uts namespaces to files (like cri-o's pinns).

No process is kept for this: a fresh thread unshares the namespaces (they
are per-thread for these three kinds), bind-mounts its
``/proc/self/task/<tid>/ns/<kind>`` onto files under the pod's state dir,
sets the hostname and namespaced sysctls and brings ``lo`` up while it is
inside, and ends. The bind mounts keep the namespaces alive until ``unpin``.
That costs a thread start instead of a process start.

Everything a failed ``pin`` made is undone before it raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import socket
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from crid.network import nsthread, sysctls
from crid.oci.linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    Syscalls,
    fs_magic,
)

KINDS = ("net", "ipc", "uts")
_FLAGS = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
NSFS_MAGIC = 0x6E736673
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Pinned:
    """The files a pod's namespaces are pinned on (absent kind: the host's)."""

    paths: Mapping[str, str]

    def get(self, kind: str) -> str | None:
        return self.paths.get(kind)


def pin(
    pin_dir: Path,
    kinds: tuple[str, ...],
    *,
    hostname: str = "",
    pod_sysctls: Mapping[str, str] | None = None,
    syscalls: Syscalls | None = None,
) -> Pinned:
    """New namespaces of ``kinds``, pinned as ``pin_dir/<kind>``."""
    calls = syscalls or Syscalls()
    if not kinds:
        return Pinned({})
    pin_dir.mkdir(parents=True, exist_ok=True)
    return nsthread.call(
        lambda: _pin_on_this_thread(pin_dir, kinds, hostname, pod_sysctls or {}, calls),
        name="crid-pin",
    )


def _pin_on_this_thread(
    pin_dir: Path, kinds: tuple[str, ...], hostname: str,
    pod_sysctls: Mapping[str, str], calls: Syscalls,
) -> Pinned:
    flags = 0
    for kind in kinds:
        flags |= _FLAGS[kind]
    calls.unshare(flags)
    tid = calls.gettid()
    made: dict[str, str] = {}
    try:
        for kind in kinds:
            target = pin_dir / kind
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0o444)
            os.close(fd)
            made[kind] = str(target)
            calls.mount(f"/proc/self/task/{tid}/ns/{kind}", str(target), None, MS_BIND)
        if "uts" in kinds and hostname:
            calls.sethostname(hostname)
        if "net" in kinds:
            _loopback_up()
        sysctls.apply(pod_sysctls)
    except BaseException:
        unpin(Pinned(made), calls)
        raise
    return Pinned(made)


def _loopback_up() -> None:
    """What the CNI loopback plugin does, without starting a process."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def unpin(pinned: Pinned, syscalls: Syscalls | None = None) -> None:
    """Unmount and delete the pin files; missing ones are fine (idempotent)."""
    calls = syscalls or Syscalls()
    for target in pinned.paths.values():
        with contextlib.suppress(OSError):  # not mounted (any more)
            calls.umount2(target, MNT_DETACH)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target)


def is_pinned(path: str) -> bool:
    """Whether ``path`` still holds a namespace (an nsfs bind mount)."""
    return fs_magic(path) == NSFS_MAGIC


def run_inside(paths: Mapping[str, str], fn: Callable[[], T],
               syscalls: Syscalls | None = None) -> T:
    """Run ``fn`` on a fresh thread that has joined the namespaces in ``paths``."""
    calls = syscalls or Syscalls()

    def body() -> T:
        for path in paths.values():
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                calls.setns(fd)
            finally:
                os.close(fd)
        return fn()

    return nsthread.call(body, name="crid-setns")
