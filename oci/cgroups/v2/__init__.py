"""cgroup v2 controllers, one module each, over the container's single dir."""

from __future__ import annotations

from typing import Any

from crid.oci.cgroups.v2 import cpu, cpuset, hugetlb, io, memory, pids, unified


def apply(resources: dict[str, Any], d: str) -> None:
    for mod in (cpu, cpuset, memory, pids, hugetlb, io, unified):
        mod.apply(resources, d)
