"""v1 pids: the task limit ("max" when zero or negative)."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    p = resources.get("pids") or {}
    if p.get("limit") is not None:
        write(d, "pids.max", str(p["limit"]) if p["limit"] > 0 else "max")
