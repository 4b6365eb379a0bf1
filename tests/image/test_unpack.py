"""Unpacking real tars into a temp dir, including hostile ones."""

import contextlib
import gzip
import hashlib
import io
import os
import re
import signal
import stat
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from crid.image import unpack
from crid.image.unpack import UnsafeLayer
from crid.image.unpack_worker import MEMORY_LIMIT, Unpackers, unpack_isolated

from crid.errors import ResourceExhausted

MTIME = 1_600_000_000


Entry = tuple[tarfile.TarInfo, bytes]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: object) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def tar(*entries: Entry) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for info, data in entries:
            out.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return buf.getvalue()


def run(raw: bytes, dest: Path, isolated: bool = False,
        limit: int = 1 << 30) -> unpack.Unpacked:
    dest.mkdir(exist_ok=True)
    if isolated:
        return unpack_isolated(io.BytesIO(raw), dest, limit)
    return unpack.unpack(io.BytesIO(raw), dest, limit=limit)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "none": lambda b: b,
    "gzip": lambda b: gzip.compress(b, mtime=0),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "worker"])
@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_entries_and_metadata(tmp_path: Path, compression: str, isolated: bool) -> None:
    plain = tar(
        entry("etc", tarfile.DIRTYPE, mode=0o750, uid=5, gid=6),
        entry("etc/file", data=b"hello", mode=0o4755, uid=7, gid=8,
              pax_headers={"SCHILY.xattr.user.note": "hi",
                           "SCHILY.xattr.trusted.overlay.redirect": "/x"}),
        entry("etc/hard", tarfile.LNKTYPE, linkname="etc/file"),
        entry("etc/sym", tarfile.SYMTYPE, linkname="/etc/file", uid=3, gid=4),
        entry("etc/fifo", tarfile.FIFOTYPE, mode=0o600),
        entry("etc/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        entry("deep/missing/parents/f", data=b"x"),
        entry("ro", data=b"r", mode=0o444),
    )
    result = run(COMPRESSORS[compression](plain), tmp_path / "layer", isolated)
    root = tmp_path / "layer"
    assert result.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert result.size == 7
    assert stat.S_IMODE(os.stat(root / "ro").st_mode) == 0o444
    info = os.stat(root / "etc/file")
    assert (root / "etc/file").read_bytes() == b"hello"
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o4755, 7, 8)
    assert info.st_mtime == MTIME
    assert info.st_nlink == 2 and os.stat(root / "etc/hard").st_ino == info.st_ino
    assert os.getxattr(root / "etc/file", "user.note") == b"hi"
    assert "trusted.overlay.redirect" not in os.listxattr(root / "etc/file")
    assert os.readlink(root / "etc/sym") == "/etc/file"
    assert os.lstat(root / "etc/sym").st_uid == 3
    assert stat.S_ISFIFO(os.stat(root / "etc/fifo").st_mode)
    null = os.stat(root / "etc/null")
    assert stat.S_ISCHR(null.st_mode)
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    etc = os.stat(root / "etc")
    assert (stat.S_IMODE(etc.st_mode), etc.st_uid, etc.st_mtime) == (0o750, 5, MTIME)
    assert (root / "deep/missing/parents/f").read_bytes() == b"x"


def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    run(tar(
        entry("data", tarfile.DIRTYPE),
        entry("data/.wh.gone"),
        entry("opt/app", tarfile.DIRTYPE),
        entry("opt/app/.wh..wh..opq"),
        entry("opt/app/new", data=b"n"),
    ), tmp_path / "layer")
    root = tmp_path / "layer"
    gone = os.stat(root / "data/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert not (root / "data/.wh.gone").exists()
    assert os.getxattr(root / "opt/app", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(root / "opt/app")) == ["new"]


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    run(tar(
        entry("a", data=b"first"),
        entry("a", data=b"second"),
        entry("d/x", data=b"x"),
        entry("d", tarfile.SYMTYPE, linkname="a"),
    ), tmp_path / "layer")
    root = tmp_path / "layer"
    assert (root / "a").read_bytes() == b"second"
    assert os.readlink(root / "d") == "a"


def test_absolute_names_are_contained(tmp_path: Path) -> None:
    run(tar(entry("/abs/file", data=b"in")), tmp_path / "layer")
    assert (tmp_path / "layer/abs/file").read_bytes() == b"in"


@pytest.mark.parametrize(
    "entries",
    [
        [entry("../escape", data=b"x")],
        [entry("a/../../escape", data=b"x")],
        [entry("link", tarfile.SYMTYPE, linkname="/"), entry("link/escape", data=b"x")],
        [entry("link", tarfile.SYMTYPE, linkname=".."), entry("link/escape", data=b"x")],
        [entry("hard", tarfile.LNKTYPE, linkname="../outside")],
        [entry("link", tarfile.SYMTYPE, linkname=".."),
         entry("hard", tarfile.LNKTYPE, linkname="link/outside")],
        [entry("link", tarfile.SYMTYPE, linkname=".."), entry("link", tarfile.DIRTYPE),
         entry("link/escape", data=b"x")],
    ],
    ids=["dotdot", "inner-dotdot", "symlink-root", "symlink-parent", "hardlink-out",
         "hardlink-through-symlink", "dir-over-symlink-is-fine"],
)
def test_nothing_is_written_outside(tmp_path: Path, entries: list[Entry]) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"secret")
    layer = tmp_path / "layer"
    with contextlib.suppress(UnsafeLayer):
        run(tar(*entries), layer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer", "outside"]
    assert outside.read_bytes() == b"secret" and os.stat(outside).st_nlink == 1
    assert not Path("/escape").exists()


def test_worker_reports_refusals(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayer, match=r"'\.\.'"):
        run(tar(entry("../escape", data=b"x")), tmp_path / "layer", isolated=True)


def test_escapes_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayer, match=r"'\.\.'"):
        run(tar(entry("../escape", data=b"x")), tmp_path / "l1")
    with pytest.raises(UnsafeLayer, match="symlink"):
        run(tar(entry("link", tarfile.SYMTYPE, linkname="/"), entry("link/etc/x", data=b"x")),
            tmp_path / "l2")
    with pytest.raises(UnsafeLayer, match="not in this layer"):
        run(tar(entry("hard", tarfile.LNKTYPE, linkname="nothere")), tmp_path / "l3")


def test_garbage_is_not_a_tar(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayer, match="not a valid"):
        run(gzip.compress(b"this is not a tar archive" * 40), tmp_path / "layer")
    with pytest.raises(UnsafeLayer, match="not a valid"):
        run(gzip.compress(tar(entry("f", data=b"x" * 5000)))[:-300], tmp_path / "layer2")


def gnu_tar(tree: Path, *options: str) -> bytes:
    """A tar of ``tree`` made by GNU tar itself (what docker and buildah layers use)."""
    done = subprocess.run(["tar", *options, "-C", str(tree), "-cf", "-", "."],
                          check=True, capture_output=True)
    return done.stdout


SPARSE_FORMATS = {
    "gnu-old": ("--sparse", "--format=gnu"),
    "pax-0.1": ("--sparse", "--format=posix"),
    "pax-1.0": ("--sparse", "--format=posix", "--sparse-version=1.0"),
}


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "worker"])
@pytest.mark.parametrize("form", sorted(SPARSE_FORMATS))
def test_sparse_entries_are_written_sparsely(tmp_path: Path, form: str, isolated: bool) -> None:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    claimed = 8 << 30  # 8 GiB of holes, a few KiB of data
    with open(tree / "etc/passwd", "wb") as f:
        f.write(b"root:x:0:0:root:/root:/bin/sh\n")
        f.seek(1 << 30)
        f.write(b"middle")
        f.truncate(claimed)
    raw = gnu_tar(tree, *SPARSE_FORMATS[form])
    assert len(raw) < 64 * 1024
    result = run(raw, tmp_path / "out", isolated)
    out = tmp_path / "out/etc/passwd"
    st = out.stat()
    assert st.st_size == claimed
    assert st.st_blocks * 512 < 1 << 20  # holes stayed holes
    with open(out, "rb") as f:
        assert f.read(30) == b"root:x:0:0:root:/root:/bin/sh\n"
        f.seek(1 << 30)
        assert f.read(6) == b"middle"
    assert result.size < 64 * 1024  # the data counts, not the holes


def test_sparse_map_out_of_range_is_refused(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with open(tree / "f", "wb") as f:
        f.write(b"data")
        f.truncate(1 << 20)
    raw = bytearray(gnu_tar(tree, "--sparse", "--format=gnu"))
    # Old GNU header: realsize (octal, 12 bytes at 483) shrunk below the data's end.
    header = raw.index(b"./f\0") // 512 * 512
    raw[header + 483:header + 495] = b"00000000001\0"
    raw[header + 148:header + 156] = b" " * 8
    raw[header + 148:header + 155] = b"%06o\0" % sum(raw[header:header + 512])
    with pytest.raises(UnsafeLayer, match="sparse map"):
        run(bytes(raw), tmp_path / "out")


@pytest.mark.parametrize("isolated", [False, True], ids=["in-process", "worker"])
def test_a_layer_over_the_limit_stops_there(tmp_path: Path, isolated: bool) -> None:
    bomb = gzip.compress(tar(entry("zeros", data=bytes(4 << 20))))
    assert len(bomb) < 16 * 1024
    with pytest.raises(ResourceExhausted, match="max_image_bytes"):
        run(bomb, tmp_path / "out", isolated, limit=1 << 20)
    assert run(bomb, tmp_path / "ok", isolated, limit=8 << 20).size == 4 << 20


def _wait_for_spares(unpackers: Unpackers, count: int) -> list[int]:
    deadline = time.monotonic() + 30
    while len(ready := unpackers.ready()) < count:
        assert time.monotonic() < deadline, "no spare unpacker started"
        time.sleep(0.02)
    return ready


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_spare_unpacker_waits_with_its_limits_set_and_unpacks_one_layer(
        tmp_path: Path) -> None:
    raw = tar(entry("a", data=b"hello"))
    unpackers = Unpackers(spares=1)
    unpackers.open()
    try:
        unpackers.expect_pulls()
        [spare] = _wait_for_spares(unpackers, 1)
        # Set first thing as it starts, before it reads a byte of its stdin.
        capped = rf"Max address space\s+{MEMORY_LIMIT}\s+{MEMORY_LIMIT}"
        deadline = time.monotonic() + 30
        while not re.search(capped, Path(f"/proc/{spare}/limits").read_text()):
            assert time.monotonic() < deadline, "the spare's address space is not capped"
            time.sleep(0.02)
        (tmp_path / "d").mkdir()
        result = unpackers.unpack(io.BytesIO(gzip.compress(raw)), tmp_path / "d", 1 << 20)
        assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        assert (tmp_path / "d" / "a").read_bytes() == b"hello"
        assert not _alive(spare)  # one layer each: the spare was used and is gone
        [replacement] = _wait_for_spares(unpackers, 1)
        assert replacement != spare
    finally:
        unpackers.close()
    assert not _alive(replacement)


def test_a_spare_that_died_idle_is_passed_over(tmp_path: Path) -> None:
    unpackers = Unpackers(spares=1)
    unpackers.open()
    try:
        unpackers.expect_pulls()
        [spare] = _wait_for_spares(unpackers, 1)
        os.kill(spare, signal.SIGKILL)
        while _alive(spare):
            time.sleep(0.01)
        (tmp_path / "d").mkdir()
        result = unpackers.unpack(io.BytesIO(tar(entry("a"))), tmp_path / "d", 1 << 20)
        assert result.inodes == 1
    finally:
        unpackers.close()


def test_spares_are_kept_only_while_pulls_come() -> None:
    """An idle node keeps no spare interpreter: none before a pull, and the
    ones started for pulls are ended once the warm window has passed."""
    unpackers = Unpackers(spares=1, warm_seconds=1.0)
    unpackers.open()
    try:
        time.sleep(0.5)
        assert unpackers.ready() == []
        unpackers.expect_pulls()
        [spare] = _wait_for_spares(unpackers, 1)
        deadline = time.monotonic() + 10
        while _alive(spare):
            assert time.monotonic() < deadline, "the spare outlived the warm window"
            time.sleep(0.05)
        assert unpackers.ready() == []
    finally:
        unpackers.close()
