"""secure_join never leaves the root, whatever the symlinks say."""

from __future__ import annotations

import os
from pathlib import Path

from crid.oci.paths import ensure_target, secure_join


def test_plain(tmp_path: Path) -> None:
    assert secure_join(str(tmp_path), "/a/b") == str(tmp_path / "a" / "b")


def test_dotdot_is_clamped(tmp_path: Path) -> None:
    assert secure_join(str(tmp_path), "/../../etc") == str(tmp_path / "etc")


def test_absolute_symlink_resolves_inside(tmp_path: Path) -> None:
    os.symlink("/etc", tmp_path / "link")
    assert secure_join(str(tmp_path), "/link/passwd") == str(tmp_path / "etc" / "passwd")


def test_relative_symlink_escape_is_clamped(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.symlink("../../../../tmp", tmp_path / "d" / "up")
    assert secure_join(str(tmp_path), "/d/up/x") == str(tmp_path / "tmp" / "x")


def test_symlink_loop_is_an_error(tmp_path: Path) -> None:
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    try:
        secure_join(str(tmp_path), "/a")
    except Exception as e:
        assert "too many symlinks" in str(e)
    else:
        raise AssertionError("expected an error")


def test_ensure_target_file_and_dir(tmp_path: Path) -> None:
    os.symlink("/elsewhere", tmp_path / "etc")
    f = ensure_target(str(tmp_path), "/etc/hosts", True)
    assert f == str(tmp_path / "elsewhere" / "hosts") and os.path.isfile(f)
    d = ensure_target(str(tmp_path), "/x/y", False)
    assert os.path.isdir(d)
