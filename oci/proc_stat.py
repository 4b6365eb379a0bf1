"""``/proc/<pid>/stat``: read it and the two facts crid takes from it.

Field 2 (``comm``) is the process's name in parentheses and may itself hold
spaces and ``)``, so the fields are split after the *last* ``)``. A process is
gone once it is a zombie (``Z``) or dead (``X``) even while its entry is still
there; its start time (field 22, clock ticks since boot) tells a live process
from a later one that got the same pid. Imports only ``os``: the runtime
reads it on every ``state`` and ``kill``.
"""

from __future__ import annotations

import os


def read(pid: int, proc_dir: int | None = None) -> bytes | None:
    """The stat line of ``pid``, None once it is unreadable (gone).

    With ``proc_dir`` (an fd of its /proc/<pid>), read through that fd: it
    keeps naming the process it was opened for, and fails once that is gone.
    """
    try:
        if proc_dir is None:
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read()
        fd = os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_dir)
        try:
            return os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None


def _after_comm(raw: bytes) -> list[bytes]:
    """Fields 3 (state) onward."""
    return raw[raw.rindex(b")") + 2 :].split()


def is_running(raw: bytes) -> bool:
    """Not yet a zombie or dead."""
    return _after_comm(raw)[0] not in (b"Z", b"X")


def start_time(raw: bytes) -> int | None:
    """Start time (clock ticks since boot) of a process that still runs, else None."""
    fields = _after_comm(raw)
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])
