"""Pinning real namespaces (we are root): files, hostname, sysctls, undo on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from crid.network import namespaces
from crid.oci.linux import Syscalls

from crid.errors import InvalidArgument


@pytest.fixture
def pin_dir(tmp_path: Path) -> Path:
    return tmp_path / "pod"


def test_pin_and_unpin(pin_dir: Path) -> None:
    pinned = namespaces.pin(pin_dir, ("net", "ipc", "uts"), hostname="unit-pod",
                            pod_sysctls={"net.ipv4.ip_unprivileged_port_start": "77"})
    try:
        for kind in ("net", "ipc", "uts"):
            path = pinned.paths[kind]
            assert namespaces.is_pinned(path)
            assert os.stat(path).st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino
        seen = namespaces.run_inside(
            {"uts": pinned.paths["uts"], "net": pinned.paths["net"]},
            lambda: (os.uname().nodename,
                     Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text().strip()))
        assert seen == ("unit-pod", "77")
        # The calling thread was never moved.
        assert os.uname().nodename != "unit-pod"
    finally:
        namespaces.unpin(pinned)
    assert not any(namespaces.is_pinned(p) for p in pinned.paths.values())
    assert list(pin_dir.iterdir()) == []
    namespaces.unpin(pinned)  # twice is fine


def test_failure_part_way_leaves_nothing(pin_dir: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist"):
        namespaces.pin(pin_dir, ("net", "uts"), pod_sysctls={"net.ipv4.no_such": "1"})
    assert list(pin_dir.iterdir()) == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(pin_dir) not in mounts


class Recording(Syscalls):
    def __init__(self) -> None:
        super().__init__()
        self.unshared: list[int] = []

    def unshare(self, flags: int) -> None:
        self.unshared.append(flags)
        super().unshare(flags)


def test_only_the_requested_kinds_are_unshared(pin_dir: Path) -> None:
    calls = Recording()
    pinned = namespaces.pin(pin_dir, ("ipc",), syscalls=calls)
    try:
        assert sorted(pinned.paths) == ["ipc"]
        assert calls.unshared == [0x08000000]
    finally:
        namespaces.unpin(pinned)
    assert namespaces.pin(pin_dir, ()).paths == {}
