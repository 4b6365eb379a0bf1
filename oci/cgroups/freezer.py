"""Pausing a container's cgroup: v1's ``freezer.state`` (FROZEN / THAWED) or
v2's ``cgroup.freeze``, waiting until the kernel says it is done.

Apart from the controller packages (``v1``, ``v2``) on purpose: ``start``,
``kill``, ``delete`` and ``exec`` all ask whether a container is paused, and
importing every controller for that costs them ~1 ms each.
"""

from __future__ import annotations

import time

from crid.oci.cgroups.fs import read, write
from crid.oci.errors import CridError


def is_frozen(d: str, *, v2: bool) -> bool:
    try:
        if v2:
            return read(d, "cgroup.freeze") == "1"
        return read(d, "freezer.state") in ("FROZEN", "FREEZING")
    except OSError:
        return False


def set_frozen(d: str, frozen: bool, *, v2: bool, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    if v2:
        write(d, "cgroup.freeze", "1" if frozen else "0")
    want = f"frozen {int(frozen)}" if v2 else ("FROZEN" if frozen else "THAWED")
    while True:
        if not v2:
            write(d, "freezer.state", want)
        if _reached(d, v2, want):
            return
        if time.monotonic() > deadline:
            raise CridError(f"cgroup {d} did not reach {want!r}")
        time.sleep(0.001)


def _reached(d: str, v2: bool, want: str) -> bool:
    if not v2:
        return read(d, "freezer.state") == want
    try:
        return want in read(d, "cgroup.events").splitlines()
    except FileNotFoundError:
        return True
