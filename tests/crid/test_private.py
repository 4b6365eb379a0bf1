"""Files and dirs only root may read: made so from the start, tightened if looser."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from crid import private


@pytest.fixture(autouse=True)
def no_umask() -> Iterator[None]:
    """Umask 0: the modes seen are the ones crid asked for, not the umask's doing."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_directory_is_made_and_tightened(tmp_path: Path) -> None:
    made = tmp_path / "a" / "root"
    private.directory(made)
    assert mode(made) == 0o700
    older = tmp_path / "older"
    older.mkdir(0o711)
    private.directory(older)
    assert mode(older) == 0o700


def test_a_passable_directory_is_tightened_to_0711(tmp_path: Path) -> None:
    open_to_all = tmp_path / "pods"
    open_to_all.mkdir(0o777)  # what a daemon started with umask 0 made
    private.directory(open_to_all, private.PASSABLE_DIR_MODE)
    assert mode(open_to_all) == 0o711


def test_a_file_is_owner_only_from_its_creation(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    private.write_text(path, '{"env": ["TOKEN=secret"]}')
    assert mode(path) == 0o600 and path.read_text() == '{"env": ["TOKEN=secret"]}'
    path.chmod(0o644)
    private.write_text(path, "{}")
    assert mode(path) == 0o600 and path.read_text() == "{}"


def test_create_keeps_what_a_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "crid.db"
    path.write_text("rows")
    path.chmod(0o644)
    private.create(path)
    assert mode(path) == 0o600 and path.read_text() == "rows"


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not ours")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        private.write_text(tmp_path / "link", "secret")
    with pytest.raises(OSError):
        private.directory(tmp_path / "link")
    assert target.read_text() == "not ours" and mode(target) == 0o644
