"""v1 cpuset: cpus and mems."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    cpu = resources.get("cpu") or {}
    if cpu.get("cpus"):
        write(d, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        write(d, "cpuset.mems", cpu["mems"])
