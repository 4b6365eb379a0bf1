"""The real Host seam against this node."""

from __future__ import annotations

import resource
from pathlib import Path

from crid.oci.spec import mounts
from crid.oci.spec.host import Host
from crid.oci.spec.security import from_mask


def test_mountinfo_has_root() -> None:
    points = mounts.parse_mountinfo(Host().mountinfo())
    assert mounts.mount_of("/proc/self", points).mount_point == "/proc"
    assert any(p.mount_point == "/" for p in points)


def test_nofile_limit_is_our_hard_limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert Host().nofile_limit() == (hard if hard != resource.RLIM_INFINITY
                                     else int(Path("/proc/sys/fs/nr_open").read_text()))


def test_capabilities_and_oom_score_adj() -> None:
    host = Host()
    status = Path("/proc/self/status").read_text()
    eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    assert host.capability_mask() == int(eff.split()[1], 16)
    assert "CAP_KILL" in from_mask(host.capability_mask())  # tests run as root
    assert host.oom_score_adj() == int(Path("/proc/self/oom_score_adj").read_text())


def test_cgroup2_matches_the_mount_type() -> None:
    kinds = {line.split()[1]: line.split()[2]
             for line in Path("/proc/self/mounts").read_text().splitlines()}
    assert Host().cgroup2() == (kinds.get("/sys/fs/cgroup") == "cgroup2")


def test_ensure_dir(tmp_path: Path) -> None:
    Host().ensure_dir(str(tmp_path / "a/b"))
    assert (tmp_path / "a/b").is_dir()
    (tmp_path / "file").write_text("x")
    Host().ensure_dir(str(tmp_path / "file"))  # an existing file is left alone
    assert (tmp_path / "file").read_text() == "x"
    assert Host().realpath(str(tmp_path / "a/../a/b")) == str(tmp_path / "a/b")

