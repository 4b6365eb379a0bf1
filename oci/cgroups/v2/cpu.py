"""v2 cpu: weight (converted from v1 shares), max (quota period), max.burst, idle."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def shares_to_weight(shares: int) -> int:
    # The mapping runc and the kernel docs use: [2, 262144] -> [1, 10000].
    return 1 + ((shares - 2) * 9999) // 262142


def apply(resources: Resources, d: str) -> None:
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        write(d, "cpu.weight", str(shares_to_weight(int(cpu["shares"]))))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota is not None or period:
        q = "max" if quota is None or quota <= 0 else str(quota)
        write(d, "cpu.max", f"{q} {period or 100000}")
    if cpu.get("burst") is not None:
        write(d, "cpu.max.burst", str(cpu["burst"]))
    if cpu.get("idle") is not None:
        write(d, "cpu.idle", str(cpu["idle"]))
