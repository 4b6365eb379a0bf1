"""Paths inside an image's rootfs never resolve to files outside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from crid.oci.spec import rootfs

from crid.errors import FailedPrecondition


def test_plain_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/:/bin/sh\n")
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") == "root:x:0:0::/:/bin/sh\n"


def test_missing_file_is_none(tmp_path: Path) -> None:
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") is None


def test_absolute_symlink_restarts_at_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "host-passwd"
    outside.write_text("evil:x:0:0::/:/bin/sh\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink(str(outside), root / "etc/passwd")
    assert rootfs.read_text(str(root), "/etc/passwd") is None


def test_absolute_symlink_to_a_file_in_the_rootfs_is_followed(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "real").mkdir()
    (tmp_path / "real/passwd").write_text("inside\n")
    os.symlink("/real/passwd", tmp_path / "etc/passwd")
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") == "inside\n"


def test_dotdot_symlink_stops_at_the_rootfs(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.symlink("../../../../secret", root / "etc/passwd")
    assert rootfs.read_text(str(root), "/etc/passwd") is None
    (root / "secret").write_text("rootfs file\n")
    assert rootfs.read_text(str(root), "/etc/passwd") == "rootfs file\n"


def test_symlinked_directory_outside_is_scoped(tmp_path: Path) -> None:
    host_etc = tmp_path / "host-etc"
    host_etc.mkdir()
    (host_etc / "group").write_text("evil:x:0:root\n")
    root = tmp_path / "rootfs"
    root.mkdir()
    os.symlink(str(host_etc), root / "etc")
    assert rootfs.read_text(str(root), "/etc/group") is None


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/b", tmp_path / "etc/a")
    os.symlink("/etc/a", tmp_path / "etc/b")
    assert rootfs.read_text(str(tmp_path), "/etc/a") is None


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "etc/passwd").mkdir(parents=True)
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") is None


def test_fifo_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mkfifo(tmp_path / "etc/passwd")
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") is None


def test_magic_link_out_of_the_rootfs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/proc/self/root/etc/passwd", tmp_path / "etc/passwd")
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") is None


def test_device_is_not_opened(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.mknod(tmp_path / "etc/passwd", 0o600 | 0o020000, os.makedev(1, 3))  # /dev/null
    assert rootfs.read_text(str(tmp_path), "/etc/passwd") is None


def test_a_file_over_the_limit_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    with open(tmp_path / "etc/passwd", "wb") as f:
        f.truncate(8 << 30)  # sparse: costs no disk, would cost 8 GiB of memory
    with pytest.raises(FailedPrecondition, match=r"/etc/passwd.*max_passwd_group_bytes"):
        rootfs.read_text(str(tmp_path), "/etc/passwd")
    (tmp_path / "etc/group").write_text("x" * 101)
    with pytest.raises(FailedPrecondition, match="/etc/group"):
        rootfs.read_text(str(tmp_path), "/etc/group", limit=100)
    assert rootfs.read_text(str(tmp_path), "/etc/group", limit=101) == "x" * 101
