"""Pod sysctls: which are namespaced (allowed), and writing them.

Only sysctls the kernel keeps per network or IPC namespace can be set for a
pod; anything else would change the node for everyone. ``check`` refuses the
rest, and network ones on a host-network pod (or IPC ones on a host-IPC
pod), with a message naming the offender. ``apply`` writes them through
``/proc/sys``, which resolves per-namespace entries against the *calling
thread's* namespaces, so it runs on the thread that is inside the pod.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from crid.errors import InvalidArgument

_NAME = re.compile(r"^[a-z0-9_]+([./][a-z0-9_\-]+)*$")
_IPC_EXACT = {"kernel.sem"}
_IPC_PREFIXES = ("kernel.shm", "kernel.msg", "fs.mqueue.")


def kind(name: str) -> str | None:
    """'net', 'ipc', or None when the sysctl is not namespaced."""
    name = normalize(name)
    if name.startswith("net."):
        return "net"
    if name in _IPC_EXACT or name.startswith(_IPC_PREFIXES):
        return "ipc"
    return None


def normalize(name: str) -> str:
    """Sysctl names may use '/' as the separator (``net/ipv4/ip_forward``)."""
    return name.replace("/", ".") if "." not in name else name


def check(sysctls: Mapping[str, str], *, host_network: bool, host_ipc: bool) -> None:
    for name in sysctls:
        if not _NAME.match(name):
            raise InvalidArgument(f"sysctl {name!r} is not a valid sysctl name")
        found = kind(name)
        if found is None:
            raise InvalidArgument(
                f"sysctl {name!r} is not namespaced: only net.*, kernel.shm*, kernel.msg*, "
                "kernel.sem and fs.mqueue.* can be set for a pod"
            )
        if found == "net" and host_network:
            raise InvalidArgument(
                f"sysctl {name!r} cannot be set on a pod that uses the host's network namespace"
            )
        if found == "ipc" and host_ipc:
            raise InvalidArgument(
                f"sysctl {name!r} cannot be set on a pod that uses the host's IPC namespace"
            )


def path(name: str, proc_sys: Path = Path("/proc/sys")) -> Path:
    return proc_sys / normalize(name).replace(".", "/")


def apply(sysctls: Mapping[str, str], proc_sys: Path = Path("/proc/sys")) -> None:
    """Write every sysctl; call on a thread inside the pod's namespaces."""
    for name, value in sysctls.items():
        target = path(name, proc_sys)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)  # never create: unknown is an error
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except FileNotFoundError:
            raise InvalidArgument(f"sysctl {name!r} does not exist on this kernel") from None
        except OSError as exc:
            raise InvalidArgument(
                f"cannot set sysctl {name}={value!r}: {exc.strerror}"
            ) from None
