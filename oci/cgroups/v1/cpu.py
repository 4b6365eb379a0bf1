"""v1 cpu: shares, CFS quota/period/burst, realtime runtime/period, idle."""

from __future__ import annotations

from crid.oci.cgroups.fs import write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def apply(resources: Resources, d: str) -> None:
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        write(d, "cpu.shares", str(cpu["shares"]))
    period, quota = cpu.get("period"), cpu.get("quota")
    if period:
        try:
            write(d, "cpu.cfs_period_us", str(period))
        except Exception:
            # A smaller period can be refused until the quota shrinks: retry after it.
            if quota is None:
                raise
            write(d, "cpu.cfs_quota_us", str(quota))
            write(d, "cpu.cfs_period_us", str(period))
    if quota is not None and quota != 0:
        write(d, "cpu.cfs_quota_us", str(quota))
    if cpu.get("burst") is not None:
        write(d, "cpu.cfs_burst_us", str(cpu["burst"]))
    if cpu.get("realtimePeriod"):
        write(d, "cpu.rt_period_us", str(cpu["realtimePeriod"]))
    if cpu.get("realtimeRuntime"):
        write(d, "cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))
    if cpu.get("idle") is not None:
        write(d, "cpu.idle", str(cpu["idle"]))
