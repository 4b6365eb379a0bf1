"""Pinning a pod's net, ipc and uts namespaces, and its user namespace when
it has one, to files (like cri-o's pinns).

No process is kept for this: a fresh thread unshares the namespaces (they
are per-thread for these three kinds), bind-mounts its
``/proc/self/task/<tid>/ns/<kind>`` onto files under the pod's state dir,
sets the hostname and namespaced sysctls and brings ``lo`` up while it is
inside, and ends. The bind mounts keep the namespaces alive until ``unpin``.
That costs a thread start instead of a process start.

A pod with a user namespace (``hostUsers: false``) needs a process: a
process with threads may not make one (unshare(2) says EINVAL). There
``unshare --user --net --ipc --uts -- sleep 60`` (util-linux, no
Python) makes the user namespace first and the others inside it, owned by
it (so the pod's root may mount sysfs and write net sysctls of its own
netns, and nothing of the host's); we write its uid and gid maps from here,
as host root (never newuidmap), pin all four, and end it.

Everything a failed ``pin`` made is undone before it raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from crid.network import nsthread, sysctls
from crid.oci import namespaces as oci_namespaces
from crid.oci.linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    Syscalls,
    fs_magic,
)
from crid.oci.runtime_spec import IDMapping

from crid.errors import FailedPrecondition

KINDS = ("net", "ipc", "uts")
PIN_FILES = ("user", *KINDS)  # every name a pod's state dir may hold a pin under
_FLAGS = {"net": CLONE_NEWNET, "ipc": CLONE_NEWIPC, "uts": CLONE_NEWUTS}
_UNSHARE_FLAG = {"net": "--net", "ipc": "--ipc", "uts": "--uts"}
HOLDER_START_SECONDS = 5.0
# The holder ends by itself if we do not end it (a crash of the daemon mid-pin).
HOLDER_SECONDS = 60
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
    id_map: str = "",
) -> Pinned:
    """New namespaces of ``kinds``, pinned as ``pin_dir/<kind>``; with ``id_map``
    (a line of /proc/<pid>/uid_map, used for uids and gids alike) inside a new
    user namespace with that mapping, pinned as ``pin_dir/user``."""
    calls = syscalls or Syscalls()
    if id_map:
        pin_dir.mkdir(parents=True, exist_ok=True)
        return _pin_in_userns(pin_dir, kinds, hostname, pod_sysctls or {}, calls, id_map)
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
    return _pin_here(pin_dir, kinds, f"/proc/self/task/{calls.gettid()}/ns", hostname,
                     pod_sysctls, calls)


def _pin_here(pin_dir: Path, kinds: tuple[str, ...], ns_dir: str, hostname: str,
              pod_sysctls: Mapping[str, str], calls: Syscalls, ns_root: int = 0) -> Pinned:
    """Pin ``ns_dir/<kind>`` for each of ``kinds``, then set up the namespaces
    this thread is in (its uts, net and ipc are those pinned). ``ns_root``: the
    host uid of the root of the user namespace owning them (0: the host's)."""
    made: dict[str, str] = {}
    try:
        for kind in kinds:
            target = pin_dir / kind
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_CLOEXEC, 0o444)
            os.close(fd)
            made[kind] = str(target)
            calls.mount(f"{ns_dir}/{kind}", str(target), None, MS_BIND)
        if "uts" in kinds and hostname:
            calls.sethostname(hostname)
        if "net" in kinds:
            _loopback_up()
        ipc = {k: v for k, v in pod_sysctls.items() if ns_root and sysctls.kind(k) == "ipc"}
        sysctls.apply({k: v for k, v in pod_sysctls.items() if k not in ipc})
        if ipc:
            # An IPC namespace's sysctls are writable by its owner's root only
            # (ipc_permissions, mq_permissions: the euid, not a capability;
            # the net ones want CAP_NET_ADMIN, which this euid drops): written
            # as that uid, by this thread alone. It ends right after.
            calls.thread_seteuid(ns_root)
            try:
                sysctls.apply(ipc)
            finally:
                calls.thread_seteuid(0)
    except BaseException:
        unpin(Pinned(made), calls)
        raise
    return Pinned(made)


def _pin_in_userns(pin_dir: Path, kinds: tuple[str, ...], hostname: str,
                   pod_sysctls: Mapping[str, str], calls: Syscalls, id_map: str) -> Pinned:
    sleep = os.path.realpath(_tool("sleep"))
    holder = subprocess.Popen(
        [_tool("unshare"), "--user", *(_UNSHARE_FLAG[k] for k in kinds), "--", sleep,
         str(HOLDER_SECONDS)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True)
    try:
        # unshare(2) is done once the holder runs sleep (it execs after it).
        deadline = time.monotonic() + HOLDER_START_SECONDS
        while _exe(holder.pid) != sleep:
            if holder.poll() is not None:
                err = holder.stderr.read().decode(errors="replace") if holder.stderr else ""
                raise FailedPrecondition(f"cannot make the pod's user namespace: {err.strip()}")
            if time.monotonic() > deadline:
                raise FailedPrecondition("cannot make the pod's user namespace: unshare did "
                                         "not start")
            time.sleep(0.0005)
        ns_dir = f"/proc/{holder.pid}/ns"
        # Through the host's procfs, proved one, as crid-runtime writes them.
        container_id, host_id, size = (int(n) for n in id_map.split())
        maps: list[IDMapping] = [{"containerID": container_id, "hostID": host_id,
                                  "size": size}]
        oci_namespaces.write_id_maps(calls, holder.pid,
                                     {"uidMappings": maps, "gidMappings": maps})

        def inside() -> Pinned:
            for kind in kinds:  # a thread may join these, never a user namespace
                fd = os.open(f"{ns_dir}/{kind}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    calls.setns(fd, _FLAGS[kind])
                finally:
                    os.close(fd)
            return _pin_here(pin_dir, ("user", *kinds), ns_dir, hostname, pod_sysctls, calls,
                             ns_root=host_id)

        return nsthread.call(inside, name="crid-pin")
    finally:
        holder.kill()
        holder.wait()
        if holder.stderr:
            holder.stderr.close()


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not found:
        raise FailedPrecondition(f"{name} (util-linux, coreutils) is needed to make a pod's "
                                 "user namespace")
    return found


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


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
