"""v2 io: weight (converted from the blkio range) and io.max throttles."""

from __future__ import annotations

from crid.oci.cgroups.block_io import throttled, weighted
from crid.oci.cgroups.fs import exists, write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from crid.oci.runtime_spec import Resources


def blkio_to_io_weight(w: int) -> int:
    # blkio [10, 1000] -> io [1, 10000]
    return 1 + (w - 10) * 9999 // 990


def apply(resources: Resources, d: str) -> None:
    b = resources.get("blockIO") or {}
    if b.get("weight"):
        if exists(d, "io.bfq.weight"):
            write(d, "io.bfq.weight", str(b["weight"]))
        else:
            write(d, "io.weight", str(blkio_to_io_weight(int(b["weight"]))))
    for dev, weight in weighted(b):
        write(d, "io.weight", f"{dev} {blkio_to_io_weight(int(weight))}")
    for kind, dev, rate in throttled(b):
        write(d, "io.max", f"{dev} {kind}={rate if rate > 0 else 'max'}")
