"""v2 io: weight (converted from the blkio range) and io.max throttles."""

from __future__ import annotations

from crid.oci.cgroups.fs import exists, write

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from typing import Any


def blkio_to_io_weight(w: int) -> int:
    # blkio [10, 1000] -> io [1, 10000]
    return 1 + (w - 10) * 9999 // 990


def apply(resources: dict[str, Any], d: str) -> None:
    b = resources.get("blockIO") or {}
    if b.get("weight"):
        if exists(d, "io.bfq.weight"):
            write(d, "io.bfq.weight", str(b["weight"]))
        else:
            write(d, "io.weight", str(blkio_to_io_weight(int(b["weight"]))))
    for dev in b.get("weightDevice") or []:
        if dev.get("weight"):
            write(d, "io.weight", f"{dev['major']}:{dev['minor']} "
                  f"{blkio_to_io_weight(int(dev['weight']))}")
    for key, word in (
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ):
        for dev in b.get(key) or []:
            rate = dev["rate"] if dev["rate"] > 0 else "max"
            write(d, "io.max", f"{dev['major']}:{dev['minor']} {word}={rate}")
