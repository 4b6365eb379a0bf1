"""The spec's ``linux.resources.blockIO`` device lists, read once for v1 and v2.

v1 ``blkio`` and v2 ``io`` take the same per-device weights and throttles and
differ only in the files they write and how a value is spelled there; each
controller module formats what these yield.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; mypy still sees it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Literal

    from crid.oci.runtime_spec import BlockIO

# (spec key, kind): the kind is cgroup v2's io.max word; v1 has a file per kind.
THROTTLES: tuple[tuple[Literal["throttleReadBpsDevice", "throttleWriteBpsDevice",
                               "throttleReadIOPSDevice", "throttleWriteIOPSDevice"], str], ...] = (
    ("throttleReadBpsDevice", "rbps"),
    ("throttleWriteBpsDevice", "wbps"),
    ("throttleReadIOPSDevice", "riops"),
    ("throttleWriteIOPSDevice", "wiops"),
)


def weighted(b: BlockIO) -> Iterator[tuple[str, int]]:
    """``("major:minor", weight)`` of each ``weightDevice`` entry that has a weight."""
    for dev in b.get("weightDevice") or []:
        if dev.get("weight"):
            yield f"{dev['major']}:{dev['minor']}", dev["weight"]


def throttled(b: BlockIO) -> Iterator[tuple[str, str, int]]:
    """``(kind, "major:minor", rate)`` of each throttle entry, in the spec's order."""
    for key, kind in THROTTLES:
        for dev in b.get(key) or []:
            yield kind, f"{dev['major']}:{dev['minor']}", dev["rate"]
