"""The cgroup the daemon makes for a pod: named by its cgroupfs path, made in
every hierarchy on RunPodSandbox, its pod-level limits written, removed on
RemovePodSandbox (or after a create that failed part-way, for a container's
cgroup a runtime left behind).

Pod limits are ``resources`` plus ``overhead`` (what the RuntimeClass adds),
as the kubelet computes them for the pod cgroup; they go through the same
controller writers as a container's (:func:`crid.oci.cgroups.apply`).
Daemon-side only: crid-runtime never imports this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Protocol

from crid.oci import cgroups
from crid.oci.cgroups import layout, tree
from crid.oci.runtime_spec import CPU
from crid.oci.runtime_spec import Resources as SpecResources

from crid.errors import InvalidArgument

CPU_PERIOD_DEFAULT = 100_000


class Resources(Protocol):
    """The CRI ``LinuxContainerResources`` fields a pod cgroup uses."""

    cpu_period: int
    cpu_quota: int
    cpu_shares: int
    memory_limit_in_bytes: int
    cpuset_cpus: str
    cpuset_mems: str


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


def limits(resources: Iterable[Resources | None]) -> SpecResources:
    """The runtime-spec ``linux.resources`` for the sum of ``resources``."""
    given = [r for r in resources if r is not None]
    cpu: CPU = {
        "shares": sum(r.cpu_shares for r in given),
        "cpus": next((r.cpuset_cpus for r in given if r.cpuset_cpus), ""),
        "mems": next((r.cpuset_mems for r in given if r.cpuset_mems), ""),
    }
    quota = sum(r.cpu_quota for r in given if r.cpu_quota > 0)
    if quota:  # else no quota and no period: the writers leave both alone
        cpu["quota"] = quota
        cpu["period"] = (next((r.cpu_period for r in given if r.cpu_period), 0)
                         or CPU_PERIOD_DEFAULT)
    return {"cpu": cpu, "memory": {"limit": sum(r.memory_limit_in_bytes for r in given)}}


class Cgroup:
    """One pod cgroup; ``path`` is the cgroupfs path (``/kubepods/pod<uid>``).
    ``hierarchies`` is ``{key: mount point}`` (tests pass a tmp tree); this
    node's (:func:`layout.hierarchies`) when None, read when first needed."""

    def __init__(self, path: str, hierarchies: dict[str, str] | None = None) -> None:
        self.path = check_path(path)
        self._hierarchies = hierarchies

    def dirs(self) -> dict[str, str]:
        """``{key: dir}``: the pod's dir in every hierarchy."""
        if self._hierarchies is None:
            self._hierarchies = layout.hierarchies()
        return cgroups.place(self.path, {}, self._hierarchies)

    def create(self) -> None:
        tree.make(self.dirs())

    def apply(self, resources: Iterable[Resources | None]) -> None:
        """Write the sum of ``resources`` (pod resources and overhead) as the pod's limits."""
        cgroups.apply(self.dirs(), limits(resources), on_create=False)

    def add_process(self, pid: int) -> None:
        cgroups.join(self.dirs(), pid)

    def remove(self) -> None:
        """Remove the cgroup's dirs, and any child left below (a runtime's, after
        a failure), deepest first, not its parents; gone already is fine."""
        tree.remove(self.dirs())

    def kill_and_remove(self, clock: tree.Clock | None = None) -> None:
        """Remove a cgroup that may still hold processes, in it or below: SIGKILL
        them, wait for the kernel to take them out, then remove it."""
        if clock is None:
            tree.kill_and_remove(self.dirs(), self.path)
        else:
            tree.kill_and_remove(self.dirs(), self.path, clock=clock)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs().values())
