"""Pod cgroups against a fake cgroupfs tree in a tmp dir (v1 and v2 layouts), and a real
cgroup2 tree."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from crid.oci.cgroups import layout
from crid.oci.cgroups.pod import Cgroup, check_path

from crid.errors import InvalidArgument

V1 = ("cpu", "memory", "cpuset", "pids")


def v1_root(tmp_path: Path) -> Path:
    for ctl in V1:
        (tmp_path / ctl).mkdir()
    (tmp_path / "cpuset" / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset" / "cpuset.mems").write_text("0\n")
    return tmp_path


def v1_hierarchies(root: Path, *extra: str) -> dict[str, str]:
    return {ctl: str(root / ctl) for ctl in V1} | {key: str(root / name) for key, name in
                                                    (("name=systemd", "systemd"), ("", "unified"))
                                                    if name in extra}


def test_v1_create_apply_remove(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    cgroup = Cgroup("/kubepods/pod1", v1_hierarchies(root))
    cgroup.create()
    assert sorted(cgroup.dirs()) == ["cpu", "cpuset", "memory", "pids"]
    # cpuset levels inherit cpus and mems so tasks can join.
    assert (root / "cpuset/kubepods/cpuset.cpus").read_text() == "0-1"
    assert (root / "cpuset/kubepods/pod1/cpuset.mems").read_text() == "0"
    for name in ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us"):
        (root / "cpu/kubepods/pod1" / name).write_text("")
    (root / "memory/kubepods/pod1/memory.limit_in_bytes").write_text("")
    cgroup.apply([api_pb2.LinuxContainerResources(cpu_shares=256, cpu_quota=20000,
                                                  memory_limit_in_bytes=100),
                  api_pb2.LinuxContainerResources(cpu_shares=2, cpu_quota=5000,
                                                  memory_limit_in_bytes=10),
                  None])
    assert (root / "cpu/kubepods/pod1/cpu.shares").read_text() == "258"
    assert (root / "cpu/kubepods/pod1/cpu.cfs_quota_us").read_text() == "25000"
    assert (root / "cpu/kubepods/pod1/cpu.cfs_period_us").read_text() == "100000"
    assert (root / "memory/kubepods/pod1/memory.limit_in_bytes").read_text() == "110"
    # the same writers as a container's: nothing set, nothing written
    assert list((root / "pids/kubepods/pod1").iterdir()) == []
    assert sorted(f.name for f in (root / "cpuset/kubepods/pod1").iterdir()) == [
        "cpuset.cpus", "cpuset.mems"]
    for directory in cgroup.dirs().values():
        for child in Path(directory).iterdir():
            child.unlink()  # a real cgroupfs has no files to delete
    cgroup.remove()
    assert not cgroup.exists()
    assert (root / "memory/kubepods").is_dir()  # parents stay
    cgroup.remove()


def test_v1_remove_takes_the_dirs_in_hierarchies_without_limits(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    cgroup = Cgroup("/kubepods/pod1", v1_hierarchies(root, "systemd", "unified"))
    for other in ("systemd", "unified"):  # a runtime made these for a container of the pod
        (root / other / "kubepods/pod1").mkdir(parents=True)
    (root / "unrelated").write_text("")
    cgroup.remove()
    assert not (root / "systemd/kubepods/pod1").exists()
    assert not (root / "unified/kubepods/pod1").exists()
    assert (root / "systemd/kubepods").is_dir()


def test_v2_single_tree(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cgroup = Cgroup("/crid/pod2", {"": str(tmp_path)})
    # each new level needs its own controllers file on a real cgroup2; fake them
    (tmp_path / "crid").mkdir()
    (tmp_path / "crid" / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "crid" / "cgroup.subtree_control").write_text("")
    cgroup.create()
    assert cgroup.dirs() == {"": str(tmp_path / "crid/pod2")}
    assert (tmp_path / "crid/cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    (tmp_path / "crid/pod2/memory.max").write_text("")
    (tmp_path / "crid/pod2/cpu.weight").write_text("")
    cgroup.apply([api_pb2.LinuxContainerResources(memory_limit_in_bytes=4096, cpu_shares=1024)])
    assert (tmp_path / "crid/pod2/memory.max").read_text() == "4096"
    assert (tmp_path / "crid/pod2/cpu.weight").read_text() == "39"


@pytest.mark.parametrize("bad", ["relative", "/a/../b", "/kubepods.slice"])
def test_bad_paths(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        check_path(bad)


def test_real_cgroup2_tree_create_join_remove() -> None:
    """On this machine cgroup2 (no controllers) is at /sys/fs/cgroup/unified."""
    root = Path("/sys/fs/cgroup/unified")
    if not (root / "cgroup.procs").exists():
        root = Path("/sys/fs/cgroup")  # a pure v2 node
    parent = f"/crid-unit-{uuid.uuid4().hex[:8]}"
    assert layout.is_v2(root)
    cgroup = Cgroup(f"{parent}/pod", {"": str(root)})
    cgroup.create()
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        cgroup.add_process(sleeper.pid)
        assert f"{parent}/pod" in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    finally:
        sleeper.kill()
        sleeper.wait()
    cgroup.remove()
    assert not cgroup.exists()
    (root / parent.lstrip("/")).rmdir()


def test_remove_takes_a_child_left_below(tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    cgroup = Cgroup("/kubepods/pod1", v1_hierarchies(root))
    for directory in cgroup.dirs().values():  # a real cgroupfs has no files to delete
        (Path(directory) / "leftover/deeper").mkdir(parents=True)
    cgroup.remove()
    assert not cgroup.exists()


def test_real_kill_and_remove_takes_the_processes_in_and_below() -> None:
    root = Path("/sys/fs/cgroup/unified")
    if not (root / "cgroup.procs").exists():
        root = Path("/sys/fs/cgroup")
    parent = f"/crid-unit-{uuid.uuid4().hex[:8]}"
    cgroup = Cgroup(f"{parent}/pod", {"": str(root)})
    # Processes live in leaves (cgroup v2's rule), as containers below a pod.
    leaves = [Cgroup(f"{parent}/pod/c1", {"": str(root)}),
              Cgroup(f"{parent}/pod/c2/deeper", {"": str(root)})]
    sleepers = [subprocess.Popen(["sleep", "30"]) for _ in leaves]
    try:
        for leaf, sleeper in zip(leaves, sleepers, strict=True):
            leaf.create()
            leaf.add_process(sleeper.pid)
        cgroup.kill_and_remove()
        assert [s.wait(timeout=5) for s in sleepers] == [-9, -9]
        assert not cgroup.exists()
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()
        (root / parent.lstrip("/")).rmdir()


def test_hybrid_pod_is_made_in_the_cgroup2_tree_without_limits_or_device_program(
        tmp_path: Path) -> None:
    root = v1_root(tmp_path)
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("\n")  # a hybrid tree: none
    cgroup = Cgroup("/kubepods/pod1", v1_hierarchies(root, "unified"))
    cgroup.create()
    cgroup.apply([api_pb2.LinuxContainerResources(memory_limit_in_bytes=100)])
    assert (root / "memory/kubepods/pod1/memory.limit_in_bytes").read_text() == "100"
    assert list((root / "unified/kubepods/pod1").iterdir()) == []
    assert not (root / "unified/cgroup.subtree_control").exists()
