"""cgroup v1 controllers, one module each; ``apply`` routes a hierarchy to them."""

from __future__ import annotations

from crid.oci.cgroups.v1 import blkio, cpu, cpuset, devices, hugetlb, memory, pids

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources

_BY_NAME = {
    "cpu": cpu.apply,
    "cpuset": cpuset.apply,
    "memory": memory.apply,
    "pids": pids.apply,
    "hugetlb": hugetlb.apply,
    "blkio": blkio.apply,
}


def apply(controllers: list[str], resources: Resources, d: str, on_create: bool) -> None:
    for c in controllers:
        if c in _BY_NAME:
            _BY_NAME[c](resources, d)
        elif c == "devices" and (on_create or resources.get("devices") is not None):
            devices.apply(resources, d, on_create)
