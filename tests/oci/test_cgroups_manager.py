"""Where a container's cgroup goes, and making it (v2 on a tmp tree)."""

from __future__ import annotations

from pathlib import Path

import pytest
from crid.oci import cgroups
from crid.oci.cgroups import tree


def test_place_absolute_and_relative_v1() -> None:
    own = {"memory": "/machine/slice", "pids": "/", "name=systemd": "/init.scope"}
    mounts = {"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
              "name=systemd": "/sys/fs/cgroup/systemd"}
    assert cgroups.place("/pods/c1", own, mounts) == {
        "memory": "/sys/fs/cgroup/memory/pods/c1", "pids": "/sys/fs/cgroup/pids/pods/c1",
        "name=systemd": "/sys/fs/cgroup/systemd/pods/c1"}
    assert cgroups.place("c1", own, mounts) == {
        "memory": "/sys/fs/cgroup/memory/machine/slice/c1", "pids": "/sys/fs/cgroup/pids/c1",
        "name=systemd": "/sys/fs/cgroup/systemd/init.scope/c1"}


def test_place_v2() -> None:
    assert cgroups.place("c1", {"": "/user.slice"}, {"": "/sys/fs/cgroup"}) == {
        "": "/sys/fs/cgroup/user.slice/c1"}


def test_create_v2_enables_controllers_in_ancestors(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    target = tmp_path / "pods" / "c1"
    made = tree.make({"": str(target)})
    assert made == [str(tmp_path / "pods"), str(target)]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert target.is_dir()


def test_create_v1_copies_cpuset_from_parent(tmp_path: Path) -> None:
    (tmp_path / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    target = tmp_path / "c1"
    tree.make({"cpuset": str(target)})
    assert (target / "cpuset.cpus").read_text() == "0-3"
    assert (target / "cpuset.mems").read_text() == "0"


def test_create_v1_fills_a_parent_a_concurrent_create_left_empty(tmp_path: Path) -> None:
    # Found by e2e/chaos: two pods' creates racing on their common parent; the
    # second saw the parent the first had just made, before the first filled
    # it, and copied its empty cpuset: no process could join it (ENOSPC).
    (tmp_path / "cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    parent = tmp_path / "pods"
    parent.mkdir()
    (parent / "cpuset.cpus").write_text("")
    (parent / "cpuset.mems").write_text("")
    made = tree.make({"cpuset": str(parent / "c1")})
    assert made == [str(parent / "c1")]  # the parent is the other create's
    for d in (parent, parent / "c1"):
        assert ((d / "cpuset.cpus").read_text(), (d / "cpuset.mems").read_text()) == ("0-3", "0")


def test_apply_routes_v1_hierarchies(tmp_path: Path) -> None:
    mem, pids = tmp_path / "memory", tmp_path / "pids"
    mem.mkdir()
    pids.mkdir()
    cgroups.apply({"memory": str(mem), "pids": str(pids)},
                  {"memory": {"limit": 1000}, "pids": {"limit": 9}}, on_create=False)
    assert (mem / "memory.limit_in_bytes").read_text() == "1000"
    assert (pids / "pids.max").read_text() == "9"
    assert not (mem / "pids.max").exists()


def test_remove_takes_cgroups_below_and_leaves_parents(tmp_path: Path) -> None:
    target = tmp_path / "pods" / "c1"
    (target / "sub" / "deeper").mkdir(parents=True)
    (target / "other").mkdir()
    tree.remove({"memory": str(target), "pids": str(tmp_path / "gone")})
    assert not target.exists()
    assert (tmp_path / "pods").is_dir()


def test_remove_refuses_a_dir_with_files(tmp_path: Path) -> None:
    """Not a cgroup (cgroupfs files cannot be deleted, rmdir takes them): left alone."""
    (tmp_path / "c1").mkdir()
    (tmp_path / "c1" / "data").write_text("x")
    with pytest.raises(OSError):
        tree.remove({"": str(tmp_path / "c1")})
    assert (tmp_path / "c1" / "data").exists()
