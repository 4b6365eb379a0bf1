"""v1 blkio: weight, leaf weight, per-device weights and throttles."""

from __future__ import annotations

from crid.oci.cgroups.block_io import throttled, weighted
from crid.oci.cgroups.fs import exists, write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


_THROTTLE_FILES = {
    "rbps": "blkio.throttle.read_bps_device",
    "wbps": "blkio.throttle.write_bps_device",
    "riops": "blkio.throttle.read_iops_device",
    "wiops": "blkio.throttle.write_iops_device",
}


def apply(resources: Resources, d: str) -> None:
    b = resources.get("blockIO") or {}
    weight_file = "blkio.weight" if exists(d, "blkio.weight") or not exists(
        d, "blkio.bfq.weight") else "blkio.bfq.weight"
    if b.get("weight"):
        write(d, weight_file, str(b["weight"]))
    if b.get("leafWeight"):
        write(d, "blkio.leaf_weight", str(b["leafWeight"]))
    for dev, weight in weighted(b):
        write(d, weight_file + "_device", f"{dev} {weight}")
    for kind, dev, rate in throttled(b):
        write(d, _THROTTLE_FILES[kind], f"{dev} {rate}")
