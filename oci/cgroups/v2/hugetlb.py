"""v2 hugetlb: hugetlb.<size>.max."""

from __future__ import annotations

from typing import Any

from crid.oci.cgroups.fs import write


def apply(resources: dict[str, Any], d: str) -> None:
    for h in resources.get("hugepageLimits") or []:
        write(d, f"hugetlb.{h['pageSize']}.max", str(h["limit"]))
