"""v1 hugetlb: a byte limit per page size."""

from __future__ import annotations

from typing import Any

from crid.oci.cgroups.fs import write


def apply(resources: dict[str, Any], d: str) -> None:
    for h in resources.get("hugepageLimits") or []:
        write(d, f"hugetlb.{h['pageSize']}.limit_in_bytes", str(h["limit"]))
