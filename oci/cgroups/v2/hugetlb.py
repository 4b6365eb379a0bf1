"""v2 hugetlb: hugetlb.<size>.max."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    for h in resources.get("hugepageLimits") or []:
        write(d, f"hugetlb.{h['pageSize']}.max", str(h["limit"]))
