"""Rootfs mount steps, recorded through a Syscalls stand-in (no host changes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from crid.oci import linux as L
from crid.oci.errors import InvalidArgument
from crid.oci.rootfs import Rootfs
from crid.oci.runtime_spec import Linux, Mount, Spec


def _named(path: str | None) -> str | None:
    """Mounts are made on /proc/self/fd/N: record the path N stands for."""
    if path and path.startswith("/proc/self/fd/"):
        return os.readlink(path)
    return path


class Recorder(L.Syscalls):
    """Real lookups (openat2 on a tmp tree), recorded mounts. Every mount id
    asked for is a new one, as if each reopen found the mount just made."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []
        self.ids = 0

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int,
              data: str | None = None) -> None:
        self.calls.append(("mount", _named(source), _named(target), fstype, flags, data))

    def mount_setattr(self, path: str, flags: int, attr_set: int, attr_clr: int,
                      propagation: int = 0) -> None:
        self.calls.append(("mount_setattr", _named(path), flags, attr_set, attr_clr))

    def mount_id(self, fd: int) -> int:
        self.ids += 1
        return self.ids


def _rootfs(tmp_path: Path, mounts: list[Mount], root: Path | None = None,
            linux: Linux | None = None) -> tuple[Recorder, Rootfs]:
    (tmp_path / "rootfs").mkdir()
    rec = Recorder()
    cfg: Spec = {"mounts": mounts, "linux": linux or {}, "process": {}}
    fs = Rootfs(rec, cfg, str(tmp_path / "rootfs"), str(tmp_path), {}, False)
    fs._open_root(str(root or tmp_path / "rootfs"))
    return rec, fs


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
    # After pivot_root the root is "/": here the tmp dir stands for it.
    (tmp_path / "dev").mkdir()
    os.mknod(tmp_path / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    rec, fs = _rootfs(tmp_path, [], root=tmp_path,
                      linux={"maskedPaths": ["/adir", "/afile", "/missing"]})
    fs.masked_paths()
    assert rec.calls == [
        ("mount", "tmpfs", str(tmp_path / "adir"), "tmpfs", L.MS_RDONLY, None),
        ("mount", str(tmp_path / "dev" / "null"), str(tmp_path / "afile"), None, L.MS_BIND,
         None),
    ]


@pytest.mark.parametrize("dest,kind", [
    ("/proc/sys/kernel/core_pattern", "bind"), ("/proc/self/attr/exec", "bind"),
    ("/proc", "tmpfs"), ("/proc", "bind"), ("/x/../proc/sys", "tmpfs"),
])
def test_mounts_in_proc_are_refused(tmp_path: Path, dest: str, kind: str) -> None:
    (tmp_path / "src").mkdir()
    rec, fs = _rootfs(tmp_path, [{"destination": dest, "type": kind,
                                  "source": str(tmp_path / "src"),
                                  "options": ["rbind"] if kind == "bind" else []}])
    with pytest.raises(InvalidArgument, match="proc"):
        fs.mount_all()
    assert rec.calls == []


def test_a_symlink_into_proc_counts_where_it_lands(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    rec, fs = _rootfs(tmp_path, [{"destination": "/etc/kernel", "type": "bind",
                                  "source": str(tmp_path / "src"), "options": ["rbind"]}])
    (tmp_path / "rootfs" / "proc" / "sys" / "kernel").mkdir(parents=True)
    os.symlink("/proc/sys", tmp_path / "rootfs" / "etc")
    with pytest.raises(InvalidArgument, match="inside /proc"):
        fs.mount_all()
    assert rec.calls == []


@pytest.mark.parametrize("kind,dest", [("proc", "proc"), ("sysfs", "sys")])
def test_procfs_and_sysfs_never_go_through_a_symlink(tmp_path: Path, kind: str, dest: str) -> None:
    rec, fs = _rootfs(tmp_path, [{"destination": "/" + dest, "type": kind, "source": kind}])
    (tmp_path / "rootfs" / "elsewhere").mkdir()
    os.symlink("/elsewhere", tmp_path / "rootfs" / dest)
    with pytest.raises(OSError):
        fs.mount_all()
    assert rec.calls == []


def test_mounts_land_inside_the_root_through_hostile_links(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    rec, fs = _rootfs(tmp_path, [
        {"destination": "/etc/hosts", "type": "bind", "source": str(tmp_path / "hosts"),
         "options": ["rbind"]},
        {"destination": "/data/sub", "type": "tmpfs", "source": "tmpfs", "options": []},
    ])
    os.symlink(str(outside), tmp_path / "rootfs" / "etc")  # absolute, to the host's path
    os.symlink("../../../..", tmp_path / "rootfs" / "data")  # up and out
    fs.mount_all()
    root = tmp_path / "rootfs"
    assert [c[2] for c in rec.calls] == [str(root / str(outside).lstrip("/") / "hosts"),
                                         str(root / "sub")]
    assert list(outside.iterdir()) == []
