"""Counting a container's threads, open files and sockets from /proc.

For each process in the container's cgroup: ``Threads:`` of its status file,
and the entries of its ``fd`` directory (a socket's link reads ``socket:[N]``).
That is one listing and one small read per process plus a readlink per open
file, no tree walk. A process that exits meanwhile is skipped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


@dataclasses.dataclass(frozen=True)
class Counts:
    processes: int
    threads: int
    file_descriptors: int
    sockets: int


def _threads(status: str) -> int:
    for line in status.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def count(pids: Iterable[int], proc: Path = PROC) -> Counts:
    processes = threads = fds = sockets = 0
    for pid in pids:
        directory = proc / str(pid)
        try:
            status = (directory / "status").read_text(encoding="ascii", errors="replace")
            names = os.listdir(directory / "fd")
        except OSError:  # gone, or a zombie without an fd directory
            continue
        processes += 1
        threads += _threads(status)
        fds += len(names)
        for name in names:
            try:
                sockets += os.readlink(directory / "fd" / name).startswith("socket:")
            except OSError:
                continue
    return Counts(processes, threads, fds, sockets)
