"""Making and removing one cgroup in every hierarchy it lives in.

A cgroup is ``{hierarchy key: dir}`` (see :mod:`crid.oci.cgroups.layout`):
the same path under each v1 hierarchy, once in a cgroup2 tree. This module
is the one place that makes and removes those dirs, for containers
(crid-runtime) and for pods (the daemon) alike.

- :func:`make` creates the missing dirs top down. A new v1 ``cpuset`` dir
  starts with no cpus and mems, and no task can join it, so it gets its
  parent's; in a cgroup2 tree every controller an ancestor offers is enabled
  down the path (as runc does), so limits can be written.
- :func:`remove` takes each dir and any cgroup left below it (a runtime's,
  a container's own), deepest first; gone already is fine; a dir still busy
  with exiting tasks is retried until a deadline.
- :func:`kill_and_remove` first SIGKILLs whatever is still inside or below.
"""

from __future__ import annotations

import errno
import os
import time

from crid.oci.cgroups import fs
from crid.oci.cgroups.layout import controllers_of
from crid.oci.errors import FailedPrecondition, InvalidArgument
from crid.oci.signals import SIGKILL  # not `signal`: its enums cost crid-runtime ~4 ms

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Protocol

    class Clock(Protocol):
        """What waiting needs of a clock (the ``time`` module, ``crid.clock.Clock``)."""

        def monotonic(self) -> float: ...

        def sleep(self, seconds: float, /) -> None: ...

REMOVE_WAIT_SECONDS = 5.0
KILL_WAIT_SECONDS = 5.0


def make(paths: dict[str, str]) -> list[str]:
    """Make the dirs; return the ones made (for rollback), deepest last."""
    made: list[str] = []
    for key, d in paths.items():
        missing = []
        cur = d
        while not os.path.isdir(cur):
            missing.append(cur)
            cur = os.path.dirname(cur)
        for m in reversed(missing):
            try:
                os.mkdir(m)
            except FileExistsError:  # a concurrent create made it meanwhile: not ours
                pass
            else:
                made.append(m)
            if "cpuset" in controllers_of(key):
                fill_cpuset(m)
        if not key:
            enable_v2_controllers(d)
    return made


def fill_cpuset(d: str) -> None:
    """Give ``d`` its parent's cpus and mems, filling the parent first when it is
    still empty: a concurrent create may have made it and not filled it yet,
    and a v1 cpuset left empty takes no process (ENOSPC), for good."""
    parent = os.path.dirname(d)
    if fs.exists(parent, "cpuset.cpus") and not fs.read(parent, "cpuset.cpus") \
            and os.path.dirname(parent) != parent:
        fill_cpuset(parent)
    copy_cpuset_from_parent(d)


def copy_cpuset_from_parent(d: str) -> None:
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if fs.exists(parent, name) and (not fs.exists(d, name) or not fs.read(d, name)):
            fs.write(d, name, fs.read(parent, name))


def enable_v2_controllers(d: str) -> None:
    """Enable every available controller in each ancestor's subtree_control,
    top down, so ``d`` gets them all (v2 needs that before limits can be set)."""
    ancestors = []
    cur = os.path.dirname(d)
    while cur != os.path.dirname(cur):
        if fs.exists(cur, "cgroup.controllers"):
            ancestors.append(cur)
        cur = os.path.dirname(cur)
    for a in reversed(ancestors):
        ctls = fs.read(a, "cgroup.controllers").split()
        if ctls:
            try:
                fs.write(a, "cgroup.subtree_control", " ".join("+" + c for c in ctls))
            except InvalidArgument:
                pass  # e.g. a controller busy in a threaded subtree: use what we have


def remove(paths: dict[str, str], timeout: float = REMOVE_WAIT_SECONDS,
           clock: Clock = time) -> None:
    """Remove each dir and every cgroup below it, deepest first, waiting up to
    ``timeout`` for exiting tasks to leave; parents stay."""
    deadline = clock.monotonic() + timeout
    for d in paths.values():
        _remove(d, deadline, clock)


def _remove(d: str, deadline: float, clock: Clock) -> None:
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            # cgroupfs says EBUSY for children and for tasks alike; a plain dir ENOTEMPTY
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            below = _subdirs(d)
            if below:
                for sub in below:
                    _remove(sub, deadline, clock)
                continue
            if e.errno != errno.EBUSY or clock.monotonic() > deadline:
                raise
        clock.sleep(0.005)


def _subdirs(d: str) -> list[str]:
    try:
        with os.scandir(d) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def procs_below(paths: dict[str, str]) -> set[int]:
    """Every process in the cgroup or any cgroup below it, in any hierarchy."""
    pids: set[int] = set()
    for d in paths.values():
        for top, subdirs, _ in os.walk(d):
            subdirs[:] = [s for s in subdirs if not os.path.islink(os.path.join(top, s))]
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    pids.update(int(pid) for pid in f.read().split())
            except FileNotFoundError:
                pass
    return pids


def kill_and_remove(paths: dict[str, str], name: str = "", timeout: float = KILL_WAIT_SECONDS,
                    clock: Clock = time) -> None:
    """Remove a cgroup that may still hold processes, in it or below: SIGKILL
    them, wait up to ``timeout`` for the kernel to take them out, then remove it."""
    deadline = clock.monotonic() + timeout
    while pids := procs_below(paths):
        for pid in pids:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        if clock.monotonic() > deadline:
            raise FailedPrecondition(
                f"cgroup {name or sorted(paths.values())} still holds processes "
                f"{sorted(pids)} after SIGKILL")
        clock.sleep(0.01)
    remove(paths, timeout, clock)
