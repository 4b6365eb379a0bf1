"""Paths opened and made inside a root never leave it, whatever the symlinks say."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from crid.oci import linux as L
from crid.oci.errors import InvalidArgument
from crid.oci.paths import (
    IN_ROOT,
    check_inside,
    make_in_root,
    open_in_root,
    relative,
    where,
)

# -- by file descriptor: openat2(RESOLVE_IN_ROOT) on a tree with hostile links --

def _root(tmp_path: Path) -> tuple[L.Syscalls, int]:
    (tmp_path / "root").mkdir()
    return L.syscalls(), os.open(tmp_path / "root", os.O_PATH | os.O_DIRECTORY)


def _made(sc: L.Syscalls, root_fd: int, rel: str, is_file: bool = False) -> str:
    fd = make_in_root(sc, root_fd, rel, is_file)
    try:
        return where(fd)
    finally:
        os.close(fd)


def test_fd_absolute_symlink_to_etc_stays_inside(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    os.symlink("/etc", tmp_path / "root" / "link")
    assert _made(sc, root, "link/passwd", is_file=True) == str(tmp_path / "root/etc/passwd")
    assert (tmp_path / "root/etc/passwd").is_file()


def test_fd_dotdot_escapes_stop_at_the_root(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    (tmp_path / "root" / "d").mkdir()
    os.symlink("../../../../..", tmp_path / "root" / "d" / "up")
    assert _made(sc, root, "d/up/x") == str(tmp_path / "root" / "x")
    # ".." spelled in the path itself is cleaned lexically, as runc does
    assert relative("/../../a/./b/../c") == "a/c" and relative("/") == ""
    fd = open_in_root(sc, root, "../../..")
    assert where(fd) == str(tmp_path / "root")
    os.close(fd)


def test_fd_symlink_at_the_last_component(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    outside = tmp_path / "outside"
    outside.write_text("host")
    os.symlink(str(outside), tmp_path / "root" / "target")
    # followed inside the root: the dangling link makes a file in the root, not on the host
    made = _made(sc, root, "target", is_file=True)
    assert made == str(tmp_path / "root" / outside.relative_to("/"))
    assert outside.read_text() == "host"
    # and where a mount must not go through a symlink at all, it is refused
    with pytest.raises(OSError) as e:
        make_in_root(sc, root, "target", True, L.RESOLVE_NO_SYMLINKS)
    assert e.value.errno == errno.ELOOP


def test_fd_magic_link_is_refused(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    os.symlink("/proc/self/root", tmp_path / "root" / "magic")
    (tmp_path / "root" / "proc" / "self").mkdir(parents=True)
    # /proc/self/root inside the root is a plain dir here: no escape...
    assert _made(sc, root, "magic/etc") == str(tmp_path / "root/proc/self/root/etc")
    # ...and a real magic link (a procfs under the root) is never followed
    host_root = os.open("/", os.O_PATH)
    try:
        with pytest.raises(OSError) as e:
            sc.openat2(host_root, "proc/self/root/etc", os.O_PATH, IN_ROOT)
        assert e.value.errno == errno.ELOOP
    finally:
        os.close(host_root)


def test_fd_dangling_chain_and_loops(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    os.symlink("/a/b", tmp_path / "root" / "x")
    assert _made(sc, root, "x/y/z") == str(tmp_path / "root/a/b/y/z")
    os.symlink("q/r", tmp_path / "root" / "p")
    os.symlink("../../../s", tmp_path / "root" / "q")
    assert _made(sc, root, "p/z") == str(tmp_path / "root/s/r/z")
    os.symlink("l2", tmp_path / "root" / "l1")
    os.symlink("l1", tmp_path / "root" / "l2")
    with pytest.raises(OSError) as e:
        make_in_root(sc, root, "l1/x", False)
    assert e.value.errno == errno.ELOOP


def test_fd_swapped_in_symlink_is_not_followed(tmp_path: Path) -> None:
    """A directory the walk made is replaced by a symlink to the host before it is
    reopened (the CVE-2021-30465 race, forced): the reopen refuses it."""
    base = L.syscalls()

    class Swapper(L.Syscalls):
        def __init__(self) -> None:
            super().__init__()
            self.swapped = False

        def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
            if resolve & L.RESOLVE_BENEATH and not self.swapped:
                self.swapped = True
                os.rmdir(path, dir_fd=dirfd)
                os.symlink(str(tmp_path / "host"), path, dir_fd=dirfd)
            return base.openat2(dirfd, path, flags, resolve, mode)

    (tmp_path / "host").mkdir()
    _, root = _root(tmp_path)
    with pytest.raises(OSError) as e:
        make_in_root(Swapper(), root, "new/deeper", False)
    assert e.value.errno == errno.ELOOP
    assert list((tmp_path / "host").iterdir()) == []


def test_check_inside_refuses_the_root_and_outside(tmp_path: Path) -> None:
    sc, root = _root(tmp_path)
    (tmp_path / "root" / "in").mkdir()
    fd = open_in_root(sc, root, "in")
    assert check_inside(where(root), fd, "t") == "in"
    os.close(fd)
    for fd in (os.open(tmp_path, os.O_PATH), open_in_root(sc, root, "")):
        with pytest.raises(InvalidArgument):
            check_inside(where(root), fd, "t")
        os.close(fd)
