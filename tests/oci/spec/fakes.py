"""Test doubles and builders shared by the spec tests."""

from __future__ import annotations

import os
from pathlib import Path

from cri_api.v1 import api_pb2
from crid.oci.spec.host import DeviceNode, Host

# A mountinfo with / private, /mnt/shared shared, /mnt/slave a slave, and a
# path with a space escaped as the kernel does.
MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:40 / /mnt/shared rw,relatime shared:5 - tmpfs tmpfs rw
31 22 0:41 / /mnt/slave rw,relatime master:5 - tmpfs tmpfs rw
32 30 0:42 / /mnt/shared/private rw,relatime - tmpfs tmpfs rw
33 22 0:43 / /mnt/with\\040space rw shared:9 - tmpfs tmpfs rw
"""

NULL = DeviceNode("/dev/null", "c", 1, 3, 0o666, 0, 0)
FUSE = DeviceNode("/dev/fuse", "c", 10, 229, 0o666, 0, 0)
SDA = DeviceNode("/dev/sda", "b", 8, 0, 0o660, 0, 6)
DRI = (
    DeviceNode("/dev/dri/card0", "c", 226, 0, 0o660, 0, 44),
    DeviceNode("/dev/dri/renderD128", "c", 226, 128, 0o660, 0, 109),
)


class FakeHost(Host):
    """A node with fixed facts; records the host paths it was asked to create."""

    def __init__(self, *, mountinfo: str = MOUNTINFO, oom_score_adj: int = -999,
                 cgroup2: bool = False, capability_mask: int = (1 << 41) - 1,
                 swap: bool = True, hugetlb: bool = True) -> None:
        self._swap = swap
        self._hugetlb = hugetlb
        self._capability_mask = capability_mask
        self._mountinfo = mountinfo
        self._oom = oom_score_adj
        self._cgroup2 = cgroup2
        self.created: list[str] = []
        self.devices: dict[str, list[DeviceNode]] = {
            "/dev": [NULL, FUSE, SDA, *DRI],
            "/dev/fuse": [FUSE],
            "/dev/sda": [SDA],
            "/dev/dri": list(DRI),
            "/dev/dri/card0": [DRI[0]],
            "/etc/passwd": [],
        }

    def mountinfo(self) -> str:
        return self._mountinfo

    def realpath(self, path: str) -> str:
        return os.path.normpath(path)

    def ensure_dir(self, path: str) -> None:
        self.created.append(path)

    def device_nodes(self, path: str) -> list[DeviceNode]:
        if path not in self.devices:
            raise FileNotFoundError(path)
        return self.devices[path]

    def oom_score_adj(self) -> int:
        return self._oom

    def nofile_limit(self) -> int:
        return 1048576

    def capability_mask(self) -> int:
        return self._capability_mask

    def swap_controller(self) -> bool:
        return self._swap

    def hugetlb_controller(self) -> bool:
        return self._hugetlb

    def cgroup2(self) -> bool:
        return self._cgroup2


PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment line
broken line
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100:Bob:/home/bob:/bin/sh
"""

GROUP = """\
root:x:0:
daemon:x:1:
users:x:100:alice
alice:x:1000:
wheel:x:10:root,alice
audio:x:29:bob,alice
video:x:44:bob
"""


def make_rootfs(root: Path, passwd: str | None = PASSWD, group: str | None = GROUP) -> Path:
    (root / "etc").mkdir(parents=True, exist_ok=True)
    if passwd is not None:
        (root / "etc/passwd").write_text(passwd)
    if group is not None:
        (root / "etc/group").write_text(group)
    return root


def container_config(**fields: object) -> api_pb2.ContainerConfig:
    config = api_pb2.ContainerConfig(**fields)  # type: ignore[arg-type]
    if not config.metadata.name:
        config.metadata.name = "app"
    return config


def security_context(**fields: object) -> api_pb2.LinuxContainerSecurityContext:
    return api_pb2.LinuxContainerSecurityContext(**fields)  # type: ignore[arg-type]
