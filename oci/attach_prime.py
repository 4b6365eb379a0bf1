"""Start the kernel's wait for a cgroup move early, so that it overlaps our
start-up instead of delaying the container (``create``, ``run``, ``exec``).

The first write to any ``cgroup.procs`` in a while blocks for an RCU grace
period (~10-20 ms here) while the kernel switches its global threadgroup lock
to writer mode; runc pays it in line on every create and exec. Moving
ourselves into the cgroup we are already in is a no-op that starts that wait
at once, in a thread, while the main thread imports and reads the bundle; the
real move a little later finds it over. Making cgroup dirs waits behind it
too, which is why ``create`` forks the container's children first. crid's
daemon calls it as well, just before it starts conmon (for create) or the
runtime's exec, so the wait also overlaps their start-up.

Best effort: on any failure we only lose the head start. Imports nothing
beyond ``os`` (it runs before everything else), so it finds our cgroup dir
from ``/proc/self/cgroup`` and the usual mount points rather than mountinfo.
"""

from __future__ import annotations

import _thread
import os

CGROUP_ROOT = "/sys/fs/cgroup"


def start() -> None:
    _thread.start_new_thread(_move_into_own_cgroup, ())


def candidates(proc_self_cgroup: str) -> list[str]:
    """``cgroup.procs`` files of our own cgroups: v1 hierarchies, then v2."""
    v1, v2 = [], []
    for line in proc_self_cgroup.splitlines():
        hid, ctl, path = line.split(":", 2)
        if hid == "0":
            v2 += [f"{CGROUP_ROOT}{path}", f"{CGROUP_ROOT}/unified{path}"]
        elif ctl:
            v1.append(f"{CGROUP_ROOT}/{ctl.removeprefix('name=')}{path}")
    return [os.path.join(os.path.normpath(d), "cgroup.procs") for d in v1 + v2]


def _move_into_own_cgroup() -> None:
    try:
        with open("/proc/self/cgroup") as f:
            files = candidates(f.read())
    except OSError:
        return
    pid = str(os.getpid()).encode()
    for path in files:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            os.write(fd, pid)
            return
        except OSError:
            continue
        finally:
            os.close(fd)
