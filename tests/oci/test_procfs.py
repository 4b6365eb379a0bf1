"""crid.oci.procfs on the host's /proc: only a procfs root is accepted, and
nothing below it is reached through a symlink, a '..' or another mount."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from crid.oci import linux as L
from crid.oci import procfs
from crid.oci.errors import InvalidArgument


@pytest.fixture
def proc() -> int:
    return procfs.open_root(L.syscalls())


def test_reads_below_the_root(proc: int) -> None:
    sc = L.syscalls()
    assert procfs.read(sc, proc, f"{os.getpid()}/status").startswith("Name:")
    os.close(proc)


@pytest.mark.parametrize("rel,code", [("self/status", errno.ELOOP),
                                      ("thread-self/status", errno.ELOOP),
                                      ("../etc/passwd", errno.EXDEV)])
def test_no_symlink_and_no_way_up(proc: int, rel: str, code: int) -> None:
    with pytest.raises(OSError) as e:
        procfs.read(L.syscalls(), proc, rel)
    assert e.value.errno == code
    os.close(proc)


def test_a_sysctl_key_cannot_leave_proc_sys(proc: int) -> None:
    with pytest.raises(OSError) as e:
        procfs.write_sysctl(L.syscalls(), proc, "../1/oom_score_adj", "0")
    assert e.value.errno == errno.EXDEV
    os.close(proc)


def test_only_a_procfs_root(tmp_path: Path) -> None:
    sc = L.syscalls()
    with pytest.raises(InvalidArgument, match="not the root of a procfs"):
        procfs.open_root(sc, str(tmp_path))
    with pytest.raises(InvalidArgument, match="not the root of a procfs"):
        procfs.open_root(sc, "/proc/sys")  # procfs, but not its root
    os.symlink("/proc", tmp_path / "proc")
    with pytest.raises(OSError) as e:
        procfs.open_root(sc, str(tmp_path / "proc"))
    assert e.value.errno == errno.ELOOP
