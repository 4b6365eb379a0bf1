"""v1 freezer: FROZEN / THAWED, waiting until the kernel has finished."""

from __future__ import annotations

import time

from crid.oci.cgroups.fs import read, write
from crid.oci.errors import CridError


def is_frozen(d: str) -> bool:
    try:
        return read(d, "freezer.state") in ("FROZEN", "FREEZING")
    except OSError:
        return False


def set_frozen(d: str, frozen: bool, timeout: float = 5.0) -> None:
    want = "FROZEN" if frozen else "THAWED"
    deadline = time.monotonic() + timeout
    while True:
        write(d, "freezer.state", want)
        if read(d, "freezer.state") == want:
            return
        if time.monotonic() > deadline:
            raise CridError(f"freezer {d} did not reach {want}")
        time.sleep(0.001)
