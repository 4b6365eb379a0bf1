"""The cgroups crid itself makes or cleans up on cgroupfs, v1 (one tree per
controller) and v2 (one tree): pods', and a container's that a runtime left
behind after a failed create.

The pod's cgroup is created under every controller (v1) or once with the
controllers enabled down the path (v2), its pod-level limits written, and
removed again on RemovePodSandbox. The version is detected from the
filesystem at ``/sys/fs/cgroup``, never assumed: nodes run both.

Pod limits are ``resources`` plus ``overhead`` (what the RuntimeClass adds),
as the kubelet computes them for the pod cgroup.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from crid.clock import Clock
from crid.errors import FailedPrecondition, InvalidArgument
from crid.oci.cgroups import v2
from crid.oci.cgroups.v1 import cpu as v1_cpu
from crid.oci.cgroups.v1 import cpuset as v1_cpuset
from crid.oci.cgroups.v1 import memory as v1_memory
from crid.oci.linux import fs_magic

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_MAGIC = 0x63677270
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices",
                  "freezer", "hugetlb", "net_cls", "perf_event")
V2_CONTROLLERS = ("cpu", "cpuset", "memory", "pids", "io", "hugetlb")
CPU_PERIOD_DEFAULT = 100_000
KILL_WAIT_SECONDS = 5.0


class Resources(Protocol):
    """The CRI ``LinuxContainerResources`` fields a pod cgroup uses."""

    cpu_period: int
    cpu_quota: int
    cpu_shares: int
    memory_limit_in_bytes: int
    cpuset_cpus: str
    cpuset_mems: str


def is_v2(root: Path = CGROUP_ROOT) -> bool:
    return fs_magic(str(root)) == CGROUP2_MAGIC


def check_path(path: str) -> str:
    """A cgroupfs path: absolute, no '..'; returned without a trailing slash."""
    if not path.startswith("/") or ".." in path.split("/"):
        raise InvalidArgument(
            f"cgroup_parent {path!r} must be an absolute cgroupfs path without '..'"
        )
    if path.endswith(".slice"):
        raise InvalidArgument(
            f"cgroup_parent {path!r} is a systemd slice; crid uses the cgroupfs driver"
        )
    return path.rstrip("/") or "/"


class Cgroup:
    """One cgroup; ``path`` is the cgroupfs path (``/kubepods/pod<uid>``)."""

    def __init__(self, path: str, root: Path = CGROUP_ROOT, v2: bool | None = None) -> None:
        self.path = check_path(path)
        self.root = root
        self.v2 = is_v2(root) if v2 is None else v2

    def dirs(self) -> list[Path]:
        relative = self.path.lstrip("/")
        if self.v2:
            return [self.root / relative]
        return [self.root / ctl / relative for ctl in V1_CONTROLLERS
                if (self.root / ctl).is_dir() and not (self.root / ctl).is_symlink()]

    def create(self) -> None:
        for directory in self.dirs():
            self._make(directory)

    def _make(self, directory: Path) -> None:
        missing = []
        cursor = directory
        while not cursor.exists():
            missing.append(cursor)
            cursor = cursor.parent
        for new in reversed(missing):
            if self.v2:
                _enable_controllers(new.parent)
            new.mkdir()
            if not self.v2 and _controller_of(new, self.root) == "cpuset":
                # v1 cpuset starts empty; a task cannot join until cpus and mems are set.
                for name in ("cpuset.cpus", "cpuset.mems"):
                    (new / name).write_text((new.parent / name).read_text())

    def apply(self, resources: Iterable[Resources | None]) -> None:
        """Write the sum of ``resources`` (pod resources and overhead) as the pod's limits,
        through crid-runtime's controller writers (the same files and conversions)."""
        given = [r for r in resources if r is not None]
        quota = sum(r.cpu_quota for r in given if r.cpu_quota > 0)
        cpu: dict[str, Any] = {
            "shares": sum(r.cpu_shares for r in given),
            "quota": quota or None,
            "period": (next((r.cpu_period for r in given if r.cpu_period), 0)
                       or CPU_PERIOD_DEFAULT) if quota else None,
            "cpus": next((r.cpuset_cpus for r in given if r.cpuset_cpus), ""),
            "mems": next((r.cpuset_mems for r in given if r.cpuset_mems), ""),
        }
        limits = {"cpu": cpu, "memory": {"limit": sum(r.memory_limit_in_bytes for r in given)}}
        if self.v2:
            v2.apply(limits, str(self.dirs()[0]))
            return
        rel = self.path.lstrip("/")
        for controller, writer in (("cpu", v1_cpu), ("cpuset", v1_cpuset), ("memory", v1_memory)):
            writer.apply(limits, str(self.root / controller / rel))

    def add_process(self, pid: int) -> None:
        for directory in self.dirs():
            _write(directory / "cgroup.procs", pid)

    def remove(self) -> None:
        """Remove the cgroup's dirs, deepest first (not its parents); gone already is
        fine. A child left below (a runtime's, after a failure) goes too."""
        for directory in self._all_dirs():
            for below in sorted(_tree(directory), key=lambda d: len(d.parts), reverse=True):
                with contextlib.suppress(FileNotFoundError):
                    below.rmdir()

    def kill_and_remove(self, clock: Clock | None = None) -> None:
        """Remove a cgroup that may still hold processes, in it or below: SIGKILL
        them, wait up to ``KILL_WAIT_SECONDS`` for the kernel to take them out,
        then remove it."""
        clock = clock or Clock()
        deadline = clock.monotonic() + KILL_WAIT_SECONDS
        while pids := self._pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if clock.monotonic() > deadline:
                raise FailedPrecondition(
                    f"cgroup {self.path} still holds processes {sorted(pids)} after SIGKILL")
            clock.sleep(0.01)
        self.remove()

    def _all_dirs(self) -> list[Path]:
        """:meth:`dirs`, and on a v1 node the same path in hierarchies crid does not
        manage (``name=systemd``, the hybrid ``unified`` tree), where runtimes make
        it too when they put a container below it: each pod would leave them."""
        relative = self.path.lstrip("/")
        extra = [] if self.v2 else [
            top / relative for top in sorted(self.root.iterdir())
            if top.name not in V1_CONTROLLERS and top.is_dir() and not top.is_symlink()]
        return [*self.dirs(), *extra]

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for directory in self._all_dirs():
            for below in _tree(directory):
                with contextlib.suppress(FileNotFoundError):
                    pids.update(int(pid) for pid in (below / "cgroup.procs").read_text().split())
        return pids

    def exists(self) -> bool:
        return any(d.is_dir() for d in self.dirs())


def _controller_of(directory: Path, root: Path) -> str:
    return directory.relative_to(root).parts[0]


def _enable_controllers(directory: Path) -> None:
    available = (directory / "cgroup.controllers").read_text().split()
    wanted = [c for c in V2_CONTROLLERS if c in available]
    if wanted:
        with contextlib.suppress(OSError):  # the root may refuse some; children still work
            _write(directory / "cgroup.subtree_control", " ".join("+" + c for c in wanted))


def _write(path: Path, value: int | str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise InvalidArgument(f"cannot open {path}: {exc.strerror}") from None
    try:
        os.write(fd, str(value).encode())
    except OSError as exc:
        raise InvalidArgument(f"cannot write {value!r} to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _tree(directory: Path) -> list[Path]:
    """``directory`` and every cgroup below it; none if it is gone."""
    found = []
    for top, subdirs, _ in os.walk(directory):
        found.append(Path(top))
        subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(top, d))]
    return found
