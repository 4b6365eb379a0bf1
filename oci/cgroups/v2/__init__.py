"""cgroup v2 controllers, one module each, over the container's single dir.

Imported lazily by ``apply``: a hybrid node loads this package only for the
device program (``v2.devices``), and should not pay for the other controllers.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    from crid.oci.cgroups.v2 import cpu, cpuset, hugetlb, io, memory, pids, unified

    for mod in (cpu, cpuset, memory, pids, hugetlb, io, unified):
        mod.apply(resources, d)
