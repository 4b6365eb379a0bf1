"""Detecting v1, hybrid and v2, from mountinfo text and fake trees in a tmp dir."""

from __future__ import annotations

from pathlib import Path

from crid.oci.cgroups import layout

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_mounted_names_hierarchies_by_their_controllers() -> None:
    assert layout.mounted(HYBRID) == {
        "cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "cpuset": "/sys/fs/cgroup/cpuset",
        "memory": "/sys/fs/cgroup/memory", "name=systemd": "/sys/fs/cgroup/systemd",
        "": "/sys/fs/cgroup/unified"}


def test_mode(tmp_path: Path) -> None:
    v1_only = "".join(line + "\n" for line in HYBRID.splitlines() if "cgroup2" not in line)
    assert layout.mode(str(tmp_path), HYBRID) == layout.HYBRID
    assert layout.mode(str(tmp_path), v1_only) == layout.V1
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert layout.mode(str(tmp_path), HYBRID) == layout.V2
    assert layout.hierarchies(str(tmp_path)) == {"": str(tmp_path)}


def test_own_paths() -> None:
    assert layout.own_paths("4:memory:/a/b\n1:name=systemd:/\n0::/c\n") == {
        "memory": "/a/b", "name=systemd": "/", "": "/c"}


def test_controllers_of() -> None:
    assert layout.controllers_of("cpu,cpuacct") == ["cpu", "cpuacct"]
    assert layout.controllers_of("") == []


def test_what_a_v1_tree_offers(tmp_path: Path) -> None:
    assert not layout.can_limit_swap(str(tmp_path))
    assert not layout.can_limit_hugetlb(str(tmp_path))
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory/memory.memsw.limit_in_bytes").write_text("")
    (tmp_path / "hugetlb").mkdir()
    assert layout.can_limit_swap(str(tmp_path))
    assert layout.can_limit_hugetlb(str(tmp_path))


def test_what_a_v2_tree_offers(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory hugetlb\n")
    assert layout.can_limit_hugetlb(str(tmp_path))
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert not layout.can_limit_hugetlb(str(tmp_path))


def test_this_node_agrees_with_its_mounts() -> None:
    kinds = {line.split()[1]: line.split()[2]
             for line in Path("/proc/self/mounts").read_text().splitlines()}
    found = layout.mode()
    if kinds.get("/sys/fs/cgroup") == "cgroup2":
        assert found == layout.V2
    else:
        assert found == (layout.HYBRID if "cgroup2" in kinds.values() else layout.V1)
        assert set(layout.hierarchies()) == set(layout.mounted())
