"""cgroup v2 controllers, one module each, over the container's single dir."""

from __future__ import annotations

from crid.oci.cgroups.v2 import cpu, cpuset, hugetlb, io, memory, pids, unified

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any


def apply(resources: dict[str, Any], d: str) -> None:
    for mod in (cpu, cpuset, memory, pids, hugetlb, io, unified):
        mod.apply(resources, d)
