"""The infra process of a pod that shares one PID namespace: ``catatonit -P``.

Only such pods get a process (the others are pinned files, see
``crid.network.namespaces``). It is started as::

    nsenter --net=… --ipc=… --uts=… -- unshare --pid --fork --kill-child -- catatonit -P

so catatonit is PID 1 of a new PID namespace inside the pod's other
namespaces, and ``unshare`` (its parent, a child of crid) reaps it and kills
it if it is itself killed. Neither is Python. The host pid of catatonit is
what containers join (``/proc/<pid>/ns/pid``); its start time is recorded
with it so a recycled pid is never mistaken for it after a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping

from crid.errors import FailedPrecondition
from crid.oci.state import proc_start_time

CATATONIT = "/usr/bin/catatonit"
START_TIMEOUT = 5.0
STOP_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True)
class Infra:
    pid: int  # catatonit, PID 1 of the pod's PID namespace
    start_time: int  # field 22 of /proc/<pid>/stat, to detect pid reuse
    parent_pid: int  # the unshare process holding it


def _tool(name: str) -> str:
    found = shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not found:
        raise FailedPrecondition(f"{name} (util-linux) is needed to start a pod's infra process")
    return found


class InfraProcesses:
    """Starts and stops infra processes; keeps their parents to reap them."""

    def __init__(self, catatonit: str = CATATONIT) -> None:
        self.catatonit = catatonit
        self._parents: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, namespaces: Mapping[str, str]) -> Infra:
        if not os.access(self.catatonit, os.X_OK):
            raise FailedPrecondition(
                f"{self.catatonit} is missing; a pod sharing its PID namespace needs catatonit "
                "(Debian package catatonit)"
            )
        joins = [f"--{kind}={path}" for kind, path in sorted(namespaces.items())]
        command = [_tool("nsenter"), *joins, "--", _tool("unshare"), "--pid", "--fork",
                   "--kill-child", "--", self.catatonit, "-P"]
        parent = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            child = _first_child(parent.pid)
            if child and _exe(child) == os.path.realpath(self.catatonit):
                break
            if parent.poll() is not None:
                err = parent.stderr.read().decode(errors="replace") if parent.stderr else ""
                raise FailedPrecondition(f"infra process did not start: {err.strip()}")
            if time.monotonic() > deadline:
                parent.kill()
                parent.wait()
                raise FailedPrecondition("infra process did not start in time")
            time.sleep(0.001)
        if parent.stderr:
            parent.stderr.close()
        self._parents[parent.pid] = parent
        return Infra(pid=child, start_time=proc_start_time(child) or 0, parent_pid=parent.pid)

    def stop(self, infra: Infra) -> None:
        """Kill the PID namespace (and so everything in it); gone already is fine."""
        if is_alive(infra):
            with contextlib.suppress(ProcessLookupError):
                os.kill(infra.pid, signal.SIGKILL)
        parent = self._parents.pop(infra.parent_pid, None)
        if parent is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                parent.wait(timeout=STOP_TIMEOUT)
            _pidfds.forget(infra)
            return
        # Started by an earlier crid: not our child; wait until it is gone or a zombie.
        deadline = time.monotonic() + STOP_TIMEOUT
        while is_alive(infra) and time.monotonic() < deadline:
            time.sleep(0.005)
        _pidfds.forget(infra)


class _Pidfds:
    """pidfds held open on live infra processes. Whether one has exited is then
    one poll (~1 µs) instead of a read of ``/proc/<pid>/stat`` (~12 µs), and
    ListPodSandbox asks it of every ready pod on each call. A pidfd turns
    readable when its process exits, zombie or not, and cannot be fooled by a
    recycled pid; the start time is checked once, when it is opened."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # stop() runs in worker threads
        self._open: dict[Infra, int] = {}

    def alive(self, infra: Infra) -> bool:
        with self._lock:
            fd = self._open.get(infra)
            if fd is None:
                fd = pidfd_if_alive(infra)
                if fd is None:
                    return False
                self._open[infra] = fd
            poller = select.poll()  # not select(): crid's fds go past FD_SETSIZE
            poller.register(fd, select.POLLIN)
            if not poller.poll(0):
                return True
            del self._open[infra]
            os.close(fd)
            return False

    def forget(self, infra: Infra) -> None:
        with self._lock:
            fd = self._open.pop(infra, None)
        if fd is not None:
            os.close(fd)


_pidfds = _Pidfds()


def pidfd_if_alive(infra: Infra) -> int | None:
    """A pidfd on the infra process (the caller closes it), None when it is gone
    (or a zombie, or its pid now names another process)."""
    try:
        fd = os.pidfd_open(infra.pid)
    except ProcessLookupError:
        return None
    # Checked after opening: the pidfd then holds the process whose start time matched.
    if proc_start_time(infra.pid) != infra.start_time:  # None for a zombie
        os.close(fd)
        return None
    return fd


def is_alive(infra: Infra) -> bool:
    return _pidfds.alive(infra)


def _first_child(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = handle.read().split()
    except OSError:
        return 0
    return int(children[0]) if children else 0


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""
