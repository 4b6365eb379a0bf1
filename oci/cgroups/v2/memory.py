"""v2 memory: max, low (reservation), swap.max (the spec's swap is memory+swap)."""

from __future__ import annotations

from crid.oci.cgroups.fs import write
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def _bytes(v: int) -> str:
    return "max" if v < 0 else str(v)


def apply(resources: Resources, d: str) -> None:
    mem = resources.get("memory") or {}
    limit, swap = mem.get("limit"), mem.get("swap")
    if swap is not None and swap != 0:
        if swap < 0:
            write(d, "memory.swap.max", "max")
        elif limit is None or limit <= 0:
            raise InvalidArgument("memory.swap is set without memory.limit")
        elif swap < limit:
            raise InvalidArgument("memory.swap must be at least memory.limit (it is memory+swap)")
        else:
            write(d, "memory.swap.max", str(swap - limit))
    if limit is not None and limit != 0:
        write(d, "memory.max", _bytes(limit))
    if mem.get("reservation") is not None and mem["reservation"] != 0:
        write(d, "memory.low", _bytes(mem["reservation"]))
