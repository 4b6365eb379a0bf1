"""The files every container of a pod mounts: resolv.conf, hosts, hostname, /dev/shm.

Content is built by pure functions (unit-tested); ``write_*`` put it in the
pod's state dir. ``/dev/shm`` is a tmpfs per pod so containers of one pod
share POSIX shared memory and nothing else does; a pod in the host's IPC
namespace uses the host's ``/dev/shm`` instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from crid.oci.linux import MNT_DETACH, Syscalls

HOST_RESOLV_CONF = Path("/etc/resolv.conf")
HOST_SHM = "/dev/shm"
DEFAULT_SHM_BYTES = 64 * 1024 * 1024
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8


def resolv_conf(servers: Sequence[str], searches: Sequence[str], options: Sequence[str],
                host_text: str) -> str:
    """The pod's resolv.conf: from the request when it says anything, else the host's.
    Each entry is one word (``crid.api.names.check_dns`` refused the rest)."""
    if not (servers or searches or options):
        return host_text
    lines = [f"nameserver {server}" for server in servers]
    if searches:
        lines.append("search " + " ".join(searches))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hosts(hostname: str, ips: Sequence[str]) -> str:
    """An /etc/hosts naming the pod by its hostname on each of its IPs."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    if hostname:
        lines.extend(f"{ip}\t{hostname}" for ip in ips)
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Write atomically (temp + rename): containers may be reading the old one."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.chmod(temp, 0o644)
    os.replace(temp, path)


def host_resolv_conf() -> str:
    try:
        return HOST_RESOLV_CONF.read_text()
    except OSError:
        return ""


def mount_shm(target: Path, size_bytes: int = DEFAULT_SHM_BYTES,
              syscalls: Syscalls | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    (syscalls or Syscalls()).mount(
        "shm", str(target), "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
        f"mode=1777,size={size_bytes}",
    )


def unmount_shm(target: Path, syscalls: Syscalls | None = None) -> None:
    with contextlib.suppress(OSError):  # not mounted: nothing to do
        (syscalls or Syscalls()).umount2(str(target), MNT_DETACH)
    with contextlib.suppress(OSError):
        target.rmdir()
