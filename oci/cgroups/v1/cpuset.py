"""v1 cpuset: cpus and mems."""

from __future__ import annotations

from typing import Any

from crid.oci.cgroups.fs import write


def apply(resources: dict[str, Any], d: str) -> None:
    cpu = resources.get("cpu") or {}
    if cpu.get("cpus"):
        write(d, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        write(d, "cpuset.mems", cpu["mems"])
