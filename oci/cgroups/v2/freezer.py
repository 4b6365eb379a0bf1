"""v2 freezer: cgroup.freeze, then wait for cgroup.events to say so."""

from __future__ import annotations

import time

from crid.oci.cgroups.fs import read, write
from crid.oci.errors import CridError


def is_frozen(d: str) -> bool:
    try:
        return read(d, "cgroup.freeze") == "1"
    except OSError:
        return False


def set_frozen(d: str, frozen: bool, timeout: float = 5.0) -> None:
    write(d, "cgroup.freeze", "1" if frozen else "0")
    want = f"frozen {1 if frozen else 0}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if want in read(d, "cgroup.events").splitlines():
                return
        except FileNotFoundError:
            return
        if time.monotonic() > deadline:
            raise CridError(f"cgroup {d} did not reach '{want}'")
        time.sleep(0.001)
