"""v1 memory: limit, reservation (soft limit), memory+swap, swappiness, OOM killer."""

from __future__ import annotations

from crid.oci.cgroups.fs import exists, write
from crid.oci.errors import InvalidArgument

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    mem = resources.get("memory") or {}
    limit, swap = mem.get("limit"), mem.get("swap")
    if limit is not None and limit != 0:
        try:
            write(d, "memory.limit_in_bytes", str(limit))
            if swap is not None and swap != 0 and exists(d, "memory.memsw.limit_in_bytes"):
                write(d, "memory.memsw.limit_in_bytes", str(swap))
        except InvalidArgument:
            # Raising the limit above the current memsw limit: memsw goes first.
            if swap is None or swap == 0:
                raise
            write(d, "memory.memsw.limit_in_bytes", str(swap))
            write(d, "memory.limit_in_bytes", str(limit))
    elif swap is not None and swap != 0 and exists(d, "memory.memsw.limit_in_bytes"):
        write(d, "memory.memsw.limit_in_bytes", str(swap))
    if mem.get("reservation") is not None and mem["reservation"] != 0:
        write(d, "memory.soft_limit_in_bytes", str(mem["reservation"]))
    if mem.get("swappiness") is not None and 0 <= mem["swappiness"] <= 100:
        write(d, "memory.swappiness", str(mem["swappiness"]))
    if mem.get("disableOOMKiller"):
        write(d, "memory.oom_control", "1")
