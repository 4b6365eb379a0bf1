"""Reaping the monitors crid starts, even where the node's PID 1 does not reap.

conmon daemonises: the process crid starts forks the monitor and exits, so
the monitor is an orphan, adopted by the nearest *child subreaper* above it,
else by PID 1. An init that never waits (a container's shell as PID 1, a
minimal init) then keeps one zombie per exited container for ever. So crid
makes itself a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``) and
adopts them, and reaps what it adopts without taking an exit status that
someone else waits for: asyncio's child watcher waits on the pids it
started, so nothing here waits on ``-1``.

- A container's monitor is reaped the moment its pidfd turns readable
  (``reap_pidfd``, from ``crid.containers.context``'s exit watch).
- Everything else adopted (the monitor of a create the runtime refused,
  never watched; a monitor outliving its watch; a process a runtime left
  behind) is found by ``Reaper``'s sweep:
  every ``interval`` seconds it lists crid's children (``/proc/self/task/*/
  children``) and reaps by pid those that were zombies at the previous sweep
  too. A child crid started itself is reaped by its waiter (asyncio's watcher
  thread blocks in ``waitpid`` on it) the moment it exits, so a zombie that
  outlives a whole interval has no waiter.

After a restart, the monitors the previous crid adopted are not this one's
children: the kernel moved them to the next subreaper up, else to PID 1,
when the previous crid exited. Only that ancestor can reap them, so under
an init that never reaps, each of those containers leaves one zombie when
it exits; the monitors this crid starts are reaped as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from crid import logs
from crid.oci import linux
from crid.oci.state import read_proc_stat, stat_state

log = logs.get("crid.reaper")
SWEEP_SECONDS = 2.0


def become_subreaper(sc: linux.Syscalls) -> None:
    """Orphans below crid (daemonised monitors) become crid's children from now on."""
    sc.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)


def reap_pidfd(pidfd: int) -> bool:
    """Reap the process of ``pidfd`` if it is crid's child and has exited."""
    try:
        return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG) is not None
    except ChildProcessError:  # not ours (adopted by an earlier crid's ancestor)
        return False


def reap_pid(pid: int) -> bool:
    """Reap ``pid`` if it is crid's child and has exited."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:  # reaped meanwhile by its own waiter
        return False


def zombie_children() -> set[int]:
    """crid's children (of any of its threads) that have exited and wait to be reaped."""
    children: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            children.update(int(pid) for pid in (task / "children").read_text().split())
    return {pid for pid in children if _is_zombie(pid)}


def _is_zombie(pid: int) -> bool:
    stat = read_proc_stat(pid)
    return stat is not None and stat_state(stat) == "Z"


class Reaper:
    """Reaps crid's children that stay zombies for a whole sweep interval."""

    def __init__(self, interval: float = SWEEP_SECONDS,
                 zombies: Callable[[], set[int]] = zombie_children,
                 reap: Callable[[int], bool] = reap_pid) -> None:
        self.interval = interval
        self._zombies = zombies
        self._reap = reap
        self._seen: set[int] = set()  # zombies at the previous sweep

    def sweep(self) -> list[int]:
        """One pass (blocking: reads /proc); the pids reaped."""
        now = self._zombies()
        reaped = sorted(pid for pid in now & self._seen if self._reap(pid))
        self._seen = now - set(reaped)
        if reaped:
            log.debug("reaped adopted processes", pids=reaped)
        return reaped

    async def run(self) -> None:
        """Sweep every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(self.sweep)
            except OSError as exc:  # /proc unreadable: try again next time
                log.warning("cannot list children to reap", error=str(exc))
