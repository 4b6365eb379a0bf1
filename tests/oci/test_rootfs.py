"""Rootfs mount steps, recorded through a Syscalls stand-in (no host changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crid.oci import linux as L
from crid.oci.rootfs import Rootfs


class Recorder(L.Syscalls):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self.calls.append(("mount", source, target, fstype, flags, data))

    def mount_setattr(self, path: str, flags: int, attr_set: int, attr_clr: int,
                      propagation: int = 0) -> None:
        self.calls.append(("mount_setattr", path, flags, attr_set, attr_clr))


def _rootfs(tmp_path: Path, mounts: list[dict[str, Any]], **linux: Any) -> tuple[Recorder, Rootfs]:
    (tmp_path / "rootfs").mkdir()
    rec = Recorder()
    cfg = {"mounts": mounts, "linux": linux, "process": {}}
    return rec, Rootfs(rec, cfg, str(tmp_path / "rootfs"), str(tmp_path), {}, False)


def test_bind_then_remount_with_flags(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    rec, fs = _rootfs(tmp_path, [{"destination": "/data", "type": "bind", "source": "src",
                                  "options": ["rbind", "ro", "nosuid", "rslave"]}])
    fs.mount_all()
    dest = str(tmp_path / "rootfs" / "data")
    assert rec.calls == [
        ("mount", str(tmp_path / "src"), dest, None, L.MS_BIND | L.MS_REC, None),
        ("mount", None, dest, None,
         L.MS_BIND | L.MS_REC | L.MS_RDONLY | L.MS_NOSUID | L.MS_REMOUNT, None),
        ("mount", None, dest, None, L.MS_SLAVE | L.MS_REC, None),
    ]
    assert (tmp_path / "rootfs" / "data").is_dir()


def test_file_bind_creates_a_file_target(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("x")
    rec, fs = _rootfs(tmp_path, [{"destination": "/etc/hosts", "source": str(tmp_path / "hosts"),
                                  "options": ["bind"]}])
    fs.mount_all()
    assert (tmp_path / "rootfs" / "etc" / "hosts").is_file()
    assert len(rec.calls) == 1


def test_tmpfs_with_data_and_rro(tmp_path: Path) -> None:
    rec, fs = _rootfs(tmp_path, [{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
                                  "options": ["nosuid", "size=1m", "rro"]}])
    fs.mount_all()
    dest = str(tmp_path / "rootfs" / "t")
    assert rec.calls == [
        ("mount", "tmpfs", dest, "tmpfs", L.MS_NOSUID, "size=1m"),
        ("mount_setattr", dest, L.AT_RECURSIVE, L.MOUNT_ATTR_RDONLY, 0),
    ]


def test_masked_paths_choose_tmpfs_for_dirs(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    rec, fs = _rootfs(tmp_path, [], maskedPaths=[str(tmp_path / "adir"),
                                                 str(tmp_path / "afile")])
    fs.masked_paths()
    assert rec.calls == [
        ("mount", "tmpfs", str(tmp_path / "adir"), "tmpfs", L.MS_RDONLY, None),
        ("mount", "/dev/null", str(tmp_path / "afile"), None, L.MS_BIND, None),
    ]
