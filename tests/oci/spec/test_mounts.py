"""Mount assembly, propagation checks against mountinfo, ordering."""

from __future__ import annotations

import pytest
from cri_api.v1 import api_pb2
from crid.oci.runtime_spec import IDMapping, Mount
from crid.oci.spec import mounts
from crid.oci.spec.facts import PodFacts

from crid.errors import FailedPrecondition, InvalidArgument, Unimplemented
from tests.oci.spec.fakes import MOUNTINFO, FakeHost

P = api_pb2.MountPropagation


def _mount(host_path: str, container_path: str, **kw: object) -> api_pb2.Mount:
    return api_pb2.Mount(host_path=host_path, container_path=container_path,
                         **kw)  # type: ignore[arg-type]


def _by_dest(found: list[Mount]) -> dict[str, Mount]:
    return {m["destination"]: m for m in found}


def test_parse_mountinfo() -> None:
    points = mounts.parse_mountinfo(MOUNTINFO)
    assert [(p.mount_point, p.shared, p.slave) for p in points] == [
        ("/", False, False), ("/mnt/shared", True, False), ("/mnt/slave", False, True),
        ("/mnt/shared/private", False, False), ("/mnt/with space", True, False),
    ]


@pytest.mark.parametrize(
    ("path", "mount_point"),
    [("/", "/"), ("/etc", "/"), ("/mnt/shared", "/mnt/shared"), ("/mnt/shared/x/y", "/mnt/shared"),
     ("/mnt/sharedx", "/"), ("/mnt/shared/private/z", "/mnt/shared/private"),
     ("/mnt/with space/a", "/mnt/with space")],
)
def test_mount_of(path: str, mount_point: str) -> None:
    assert mounts.mount_of(path, mounts.parse_mountinfo(MOUNTINFO)).mount_point == mount_point


def test_later_mount_on_same_point_wins() -> None:
    text = MOUNTINFO + "40 22 0:50 / /mnt/shared rw - tmpfs tmpfs rw\n"
    assert not mounts.mount_of("/mnt/shared/a", mounts.parse_mountinfo(text)).shared


@pytest.mark.parametrize(
    ("propagation", "option"),
    [(P.PROPAGATION_PRIVATE, "rprivate"), (P.PROPAGATION_HOST_TO_CONTAINER, "rslave"),
     (P.PROPAGATION_BIDIRECTIONAL, "rshared")],
)
def test_propagation_options_on_shared_source(propagation: int, option: str) -> None:
    found, rootfs = mounts.cri_mounts([_mount("/mnt/shared/data", "/data",
                                              propagation=propagation)], FakeHost())
    assert found == [{"destination": "/data", "type": "bind", "source": "/mnt/shared/data",
                      "options": ["rbind", option, "rw"]}]
    assert rootfs == {"rprivate": "", "rslave": "rslave", "rshared": "rshared"}[option]


def test_rslave_accepted_from_slave_mount() -> None:
    _, rootfs = mounts.cri_mounts(
        [_mount("/mnt/slave/x", "/x", propagation=P.PROPAGATION_HOST_TO_CONTAINER)], FakeHost())
    assert rootfs == "rslave"


@pytest.mark.parametrize("source", ["/var/lib/data", "/mnt/shared/private/d"])
def test_rslave_refused_from_private_mount(source: str) -> None:
    with pytest.raises(FailedPrecondition, match="not a shared or slave mount"):
        mounts.cri_mounts([_mount(source, "/x", propagation=P.PROPAGATION_HOST_TO_CONTAINER)],
                          FakeHost())


@pytest.mark.parametrize("source", ["/var/lib/data", "/mnt/slave/d"])
def test_rshared_refused_unless_shared(source: str) -> None:
    with pytest.raises(FailedPrecondition, match="is not a shared mount"):
        mounts.cri_mounts([_mount(source, "/x", propagation=P.PROPAGATION_BIDIRECTIONAL)],
                          FakeHost())


def test_private_mounts_never_read_mountinfo() -> None:
    host = FakeHost(mountinfo="garbage")
    mounts.cri_mounts([_mount("/anywhere", "/x")], host)


def test_rshared_beats_rslave_for_rootfs() -> None:
    _, rootfs = mounts.cri_mounts([
        _mount("/mnt/shared/a", "/a", propagation=P.PROPAGATION_BIDIRECTIONAL),
        _mount("/mnt/slave/b", "/b", propagation=P.PROPAGATION_HOST_TO_CONTAINER),
    ], FakeHost())
    assert rootfs == "rshared"


def test_readonly_and_recursive_readonly() -> None:
    found, _ = mounts.cri_mounts([
        _mount("/h/ro", "/ro", readonly=True),
        _mount("/h/rro", "/rro", readonly=True, recursive_read_only=True),
    ], FakeHost())
    assert [m["options"] for m in found] == [
        ["rbind", "rprivate", "ro"], ["rbind", "rprivate", "ro", "rro"]]


def test_recursive_readonly_needs_readonly_and_private() -> None:
    with pytest.raises(InvalidArgument, match="must also be read-only"):
        mounts.cri_mounts([_mount("/h", "/c", recursive_read_only=True)], FakeHost())
    with pytest.raises(InvalidArgument, match="private propagation"):
        mounts.cri_mounts([_mount("/mnt/shared/h", "/c", readonly=True, recursive_read_only=True,
                                  propagation=P.PROPAGATION_BIDIRECTIONAL)], FakeHost())


@pytest.mark.parametrize(("host_path", "container_path"),
                         [("/h", "relative"), ("/h", ""), ("relative", "/c"), ("", "/c")])
def test_paths_must_be_absolute(host_path: str, container_path: str) -> None:
    with pytest.raises(InvalidArgument, match="not absolute"):
        mounts.cri_mounts([_mount(host_path, container_path)], FakeHost())


def test_unsupported_mount_kinds() -> None:
    with pytest.raises(Unimplemented, match="image volume"):
        mounts.cri_mounts([_mount("", "/c", image=api_pb2.ImageSpec(image="busybox"))],
                          FakeHost())



def test_idmapped_mounts() -> None:
    own = api_pb2.IDMapping(host_id=1000, container_id=0, length=1)
    with pytest.raises(InvalidArgument, match="both uid and gid"):
        mounts.cri_mounts([_mount("/h", "/c", uidMappings=[own])], FakeHost())
    pod: list[IDMapping] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    found, _ = mounts.cri_mounts([_mount("/h", "/c", uidMappings=[own], gidMappings=[own]),
                                  _mount("/h2", "/d")], FakeHost(), pod)
    assert found[0]["uidMappings"] == [{"containerID": 0, "hostID": 1000, "size": 1}]
    assert found[0]["gidMappings"] == found[0]["uidMappings"]
    assert found[1]["uidMappings"] == pod and found[1]["gidMappings"] == pod
    plain, _ = mounts.cri_mounts([_mount("/h2", "/d")], FakeHost())
    assert "uidMappings" not in plain[0]


def test_destinations_cleaned() -> None:
    found, _ = mounts.cri_mounts([_mount("/new/dir", "/data/./x/")], FakeHost())
    assert found[0]["destination"] == "/data/x"


def test_defaults_privileged_and_not() -> None:
    plain = _by_dest(mounts.default_mounts(privileged=False))
    assert set(plain) == {"/proc", "/dev", "/dev/pts", "/dev/mqueue", "/dev/shm", "/sys",
                          "/sys/fs/cgroup"}
    assert "ro" in plain["/sys"]["options"]
    assert "ro" in plain["/sys/fs/cgroup"]["options"]
    privileged = _by_dest(mounts.default_mounts(privileged=True))
    assert "rw" in privileged["/sys"]["options"]
    assert "ro" not in privileged["/sys"]["options"]


def test_pod_files() -> None:
    pod = PodFacts("sb", resolv_conf_path="/run/p/resolv.conf", hosts_path="/run/p/hosts",
                   hostname_path="/run/p/hostname", shm_path="/run/p/shm")
    found = _by_dest(mounts.pod_mounts(pod, readonly_rootfs=True))
    assert found["/etc/resolv.conf"]["source"] == "/run/p/resolv.conf"
    assert found["/etc/hosts"]["options"] == ["rbind", "rprivate", "ro"]
    assert found["/etc/hostname"]["source"] == "/run/p/hostname"
    assert "rw" in found["/dev/shm"]["options"]
    writable = _by_dest(mounts.pod_mounts(pod, readonly_rootfs=False))
    assert writable["/etc/hosts"]["options"] == ["rbind", "rprivate", "rw"]
    assert mounts.pod_mounts(PodFacts("sb"), readonly_rootfs=False) == []


def test_assemble_overrides_and_orders_parents_first() -> None:
    pod = mounts.pod_mounts(PodFacts("sb", hosts_path="/run/p/hosts", shm_path="/run/p/shm"),
                            False)
    requested, _ = mounts.cri_mounts([
        _mount("/h/deep", "/data/sub/deep"),
        _mount("/h/hosts", "/etc/hosts"),
        _mount("/h/data", "/data"),
    ], FakeHost())
    found = mounts.assemble(mounts.default_mounts(False), pod, requested)
    by = _by_dest(found)
    assert by["/etc/hosts"]["source"] == "/h/hosts"  # kubelet's file beats the pod's
    assert by["/dev/shm"]["source"] == "/run/p/shm"  # the pod's shm beats the tmpfs
    assert len(found) == len(by)
    destinations = [str(m["destination"]) for m in found]
    for i, d in enumerate(destinations):
        for parent in destinations[i + 1:]:
            assert not d.startswith(parent.rstrip("/") + "/"), (d, parent)


def test_requested_dev_replaces_every_default_below_it() -> None:
    requested, _ = mounts.cri_mounts([_mount("/dev", "/dev")], FakeHost())
    found = mounts.assemble(mounts.default_mounts(False), [], requested)
    assert [m["destination"] for m in found if str(m["destination"]).startswith("/dev")] == [
        "/dev"]
    assert _by_dest(found)["/dev"]["type"] == "bind"


@pytest.mark.parametrize("container_path", [
    "/proc/sys/kernel/core_pattern", "/proc/self/attr/exec", "/proc/1/../sys/x", "/proc/",
    "/proc", "/proc/sysrq-trigger", "/./proc/kcore",
])
def test_mounts_in_proc_are_refused(container_path: str) -> None:
    with pytest.raises(InvalidArgument, match="proc"):
        mounts.cri_mounts([_mount("/h", container_path)], FakeHost())


@pytest.mark.parametrize("container_path", ["/proc/cpuinfo", "/proc/meminfo", "/proc/uptime",
                                            "/proc/sys/kernel/ns_last_pid", "/procfs/x",
                                            "/sys/kernel/x", "/sys/fs/cgroup/x"])
def test_lxcfs_files_and_sys_are_allowed(container_path: str) -> None:
    # runc's allow-list below /proc; /sys is the container's own read-only sysfs
    found, _ = mounts.cri_mounts([_mount("/h", container_path)], FakeHost())
    assert found[0]["destination"] == container_path


def test_a_real_procfs_may_go_on_proc() -> None:
    found, _ = mounts.cri_mounts([_mount("/proc", "/proc")], FakeHost())
    assert found[0]["destination"] == "/proc"
