"""Host facts the security tests rely on, checked (never assumed) with a clear
failure when the machine is not what they need."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

UNIFIED = "/sys/fs/cgroup/unified"
V1_DEVICES = "/sys/fs/cgroup/devices"


def _fstype(path: str) -> str | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                return parts[parts.index("-") + 1]
    return None


@pytest.fixture(scope="session")
def hybrid_cgroups() -> None:
    """v1 ``devices`` controller and a cgroup2 tree at /sys/fs/cgroup/unified (HOST.md)."""
    assert os.geteuid() == 0, "the device tests run containers: they need root"
    assert _fstype(V1_DEVICES) == "cgroup", (
        f"{V1_DEVICES} is not a cgroup v1 mount: this host is not the v1-hybrid machine "
        "of HOST.md")
    assert _fstype(UNIFIED) == "cgroup2", (
        f"{UNIFIED} is not a cgroup2 mount: the v2 device program cannot be checked here")


@pytest.fixture(scope="session")
def root_disk() -> tuple[int, int]:
    """(major, minor) of the block device that holds this machine's root filesystem."""
    dev = os.stat("/").st_dev
    major, minor = os.major(dev), os.minor(dev)
    assert os.path.exists(f"/sys/dev/block/{major}:{minor}"), (
        f"/ is on device {major}:{minor}, which is not a block device "
        "(an overlay or tmpfs root?): the host-disk attack needs a real disk under /")
    return major, minor


class HostDisk:
    """A block device of the host: ``number`` is (major, minor); ``host_can_open``
    says whether the host itself may open it (this VM's own root disk refuses
    even host root, so only the loop disk proves the container's EPERM comes
    from the device cgroup)."""

    def __init__(self, name: str, number: tuple[int, int], host_can_open: bool) -> None:
        self.name, self.number, self.host_can_open = name, number, host_can_open


@pytest.fixture(scope="session")
def loop_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostDisk]:
    """A host disk whose content we know: a loop device over a 1 MiB file of a
    known pattern, checked unchanged at the end (nothing was written to it)."""
    backing = tmp_path_factory.mktemp("disk") / "disk.img"
    data = b"crid-host-disk\n" * (1 << 16)
    backing.write_bytes(data[: 1 << 20])
    digest = hashlib.sha256(backing.read_bytes()).hexdigest()
    r = subprocess.run(["losetup", "--find", "--show", str(backing)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, f"cannot attach a loop device (the host-disk stand-in): {r.stderr}"
    dev = r.stdout.strip()
    try:
        st = os.stat(dev)
        with open(dev, "rb") as f:
            assert f.read(14) == b"crid-host-disk", f"{dev} does not read back its backing file"
        yield HostDisk(dev, (os.major(st.st_rdev), os.minor(st.st_rdev)), host_can_open=True)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)
    assert hashlib.sha256(backing.read_bytes()).hexdigest() == digest, (
        "the host disk's content changed: a container wrote to it")


@pytest.fixture(scope="session")
def root_disk_dev(root_disk: tuple[int, int]) -> HostDisk:
    uevent = Path(f"/sys/dev/block/{root_disk[0]}:{root_disk[1]}/uevent").read_text()
    name = "/dev/" + next(line.split("=", 1)[1] for line in uevent.splitlines()
                          if line.startswith("DEVNAME="))
    try:
        with open(name, "rb"):
            can = True
    except PermissionError:
        can = False
    return HostDisk(name, root_disk, can)


@pytest.fixture(params=["loop-disk", "root-disk"])
def host_disk(request: pytest.FixtureRequest) -> HostDisk:
    disk: HostDisk = request.getfixturevalue(
        "loop_disk" if request.param == "loop-disk" else "root_disk_dev")
    return disk


def mknod(path: str, kind: str, major: int, minor: int, *, host_can_open: bool = True) -> None:
    """A device node as an image layer would carry it; unless the host itself is
    refused the device, a check that the host can open it (the filesystem is not
    nodev, the device exists), so an EPERM inside is the device cgroup's doing."""
    mode = (stat.S_IFBLK if kind == "b" else stat.S_IFCHR) | 0o666
    os.mknod(path, mode, os.makedev(major, minor))
    if host_can_open:
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            raise AssertionError(
                f"the host cannot open the node {Path(path).name} ({major}:{minor}) it made: "
                f"{e.strerror}; a denial inside the container would prove nothing") from None
