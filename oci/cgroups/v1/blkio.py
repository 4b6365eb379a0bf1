"""v1 blkio: weight, leaf weight, per-device weights and throttles."""

from __future__ import annotations

from crid.oci.cgroups.fs import exists, write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any


def apply(resources: dict[str, Any], d: str) -> None:
    b = resources.get("blockIO") or {}
    weight_file = "blkio.weight" if exists(d, "blkio.weight") or not exists(
        d, "blkio.bfq.weight") else "blkio.bfq.weight"
    if b.get("weight"):
        write(d, weight_file, str(b["weight"]))
    if b.get("leafWeight"):
        write(d, "blkio.leaf_weight", str(b["leafWeight"]))
    for dev in b.get("weightDevice") or []:
        if dev.get("weight"):
            write(d, weight_file + "_device", f"{dev['major']}:{dev['minor']} {dev['weight']}")
    for key, name in (
        ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
        ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
        ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
        ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
    ):
        for dev in b.get(key) or []:
            write(d, name, f"{dev['major']}:{dev['minor']} {dev['rate']}")
